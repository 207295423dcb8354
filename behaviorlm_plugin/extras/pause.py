"""Deterministic kill points for tests: a long step announces that it reached a named point and waits there.

A kill test sets ``$BEHAVIORLM_TEST_PAUSE_AT`` to a point's name and ``$BEHAVIORLM_TEST_PAUSE_FILE`` to a path,
waits for the file, then sends SIGKILL: the process dies exactly there, never at a time a timer happened to
pick. Unset (always, outside tests), a point costs one environment lookup.

Points: ``writing``, ``unregistered``, ``registered``, ``staged``, ``adopted``, ``versioned``, ``committed``
(prepare and its store); ``selection.scored`` (the pool is scored, nothing written); ``train.step:<yaml stem>``
(the first optimizer step of a training run: ``a_tuning``/``b_tuning`` in a pipeline, ``train`` in the bench);
``evaluate.split`` (one split scored and written, the others not); ``export.merged`` (merged, not yet verified).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_ENV = "BEHAVIORLM_TEST_PAUSE_AT"
PAUSE_FILE_ENV = "BEHAVIORLM_TEST_PAUSE_FILE"


def pause_requested(name: str) -> bool:
    return os.environ.get(PAUSE_ENV) == name


def pause_point(name: str) -> None:
    """Tests only: when ``$BEHAVIORLM_TEST_PAUSE_AT`` names this point, announce it and wait to be killed."""
    if not pause_requested(name):
        return
    Path(os.environ[PAUSE_FILE_ENV]).write_text(name)
    while True:  # pragma: no cover - the test kills us here
        time.sleep(1)
