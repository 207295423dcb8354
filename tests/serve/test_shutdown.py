"""SIGTERM (and Ctrl-C) on a real uvicorn process (the fake scorer, loopback): every accepted request gets its
200, new connections are refused, and the process then ends by the signal (docs/serving.md, "Stopping")."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from serve_fakes import request

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
IN_FLIGHT = 8

# The child serves the fake scorer through server.serve_app (the code path of `behaviorlm serve`); every batch
# waits until the parent writes a line to the child's stdin, so requests stay in flight as long as the test needs.
CHILD = f"""
import signal, sys, threading
# A foreground process's Ctrl-C, even when the suite runs as a background job (which starts with SIGINT ignored).
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {str(HERE)!r})
from serve_fakes import FakeScorer, make_app
from behaviorlm_plugin.hparams.serve_args import ServeArguments
from behaviorlm_plugin.serve.server import serve_app

released = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), released.set()), daemon=True).start()
args = dict(max_batch=1, max_wait_ms=0, max_queue=16, shutdown_timeout_s=60)
serve_app(make_app(FakeScorer(released), **args), ServeArguments(model="fake", port=int(sys.argv[1]), **args))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def _until(predicate, what: str, limit_s: float = 60) -> None:
    """Poll ``predicate`` (a bound on how long a broken server may take; a working one is far quicker)."""
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def _health(url: str) -> dict | None:
    try:
        return httpx.get(f"{url}/health", timeout=5).json()
    except httpx.TransportError:
        return None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_answers_every_accepted_request_then_ends_by_that_signal(sig):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(port)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        _until(lambda: _health(url) is not None or proc.poll() is not None, "the server answers /health")
        assert proc.poll() is None, "".join(log)
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            body = request()
            answers = [pool.submit(httpx.post, f"{url}/v1/predict", json=body, timeout=60) for _ in range(IN_FLIGHT)]
            # One request in the (held) scorer, the other seven queued behind it: eight in flight.
            _until(lambda: (_health(url) or {}).get("queued") == IN_FLIGHT - 1, "eight requests in flight")
            proc.send_signal(sig)
            _until(lambda: _refuses_connections(port), "the server stops accepting connections")
            proc.stdin.write("release\n")
            proc.stdin.flush()
            statuses = [a.result().status_code for a in answers]
        assert statuses == [200] * IN_FLIGHT
        assert proc.wait(60) == -sig  # by the signal, as documented: not 0
        reader.join(10)
        text = "".join(log)
        assert "Traceback" not in text, text  # Ctrl-C included: no KeyboardInterrupt trace
        assert "Finished server process" in text, text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
