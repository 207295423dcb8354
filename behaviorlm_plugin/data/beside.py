"""Run a piece of work in a second process while this one goes on: the two cores of a small machine.

``prepare`` renders its samples in one Python process, then has ~1.3 GB of JSONL to join, encode, write and
fsync.  That work is pure text: a forked child, which shares the rendered lines with the parent page by page
(joining strings reads them, it does not copy them), writes one half of the files while the parent writes
the other.  Where ``fork`` is not the safe default (anything but Linux), the work runs here, after the body.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class BesideError(RuntimeError):
    """The work in the second process failed; the message carries its traceback's last lines."""

    @property
    def disk_full(self) -> bool:
        """The second process ran out of space (its traceback names ENOSPC)."""
        text = str(self)
        return "DiskFullError" in text or "No space left on device" in text or "[Errno 28]" in text


def can_fork() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "fork")


@contextmanager
def beside(work: Callable[[], None], what: str, fork: bool | None = None) -> Iterator[None]:
    """``work()`` in a forked process while the ``with`` body runs here; at the end of the body, wait for it
    and raise its failure here.  If the body fails, the child is killed.  ``fork=False`` runs it in-process."""
    if not (can_fork() if fork is None else fork):
        yield
        work()
        return
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; coverage does not follow it
        os.close(read)
        code = 0
        try:
            work()
        except BaseException:
            os.write(write, traceback.format_exc()[-4000:].encode())
            code = 1
        finally:
            os._exit(code)  # no atexit handlers, no flushing of the parent's copied buffers
    os.close(write)
    try:
        yield
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read)
        raise
    with os.fdopen(read, "rb") as fh:
        message = fh.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status != 0:
        detail = message.strip() or f"it ended with wait status {status}"
        raise BesideError(f"{what} (in a second process) failed: {detail}")
