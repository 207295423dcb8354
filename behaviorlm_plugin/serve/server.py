"""Run the app under uvicorn: one model per process, graceful stop on SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import sys

from fastapi import FastAPI

from behaviorlm_plugin.hparams.serve_args import API_KEY_ENV, ServeArguments
from behaviorlm_plugin.serve.app import create_app
from behaviorlm_plugin.serve.loading import load_predictor

log = logging.getLogger(__name__)


def run_server(args: ServeArguments) -> None:
    """Load the model, then serve until stopped (in-flight requests finish, up to ``shutdown_timeout_s``)."""
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    predictor = load_predictor(args)
    app = create_app(predictor, args, api_key=api_key)
    if args.host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        log.warning("serving on %s without an API key: anyone who can reach the port can query the model", args.host)
    log.info(
        "serving %s (%d behaviors, alpha=%g) on http://%s:%d (docs at /docs)",
        predictor.model_id,
        len(predictor.manifest.behaviors),
        predictor.alpha,
        args.host,
        args.port,
    )
    serve_app(app, args)


def serve_app(app: FastAPI, args: ServeArguments) -> None:
    """Serve ``app`` on ``args.host:args.port`` until SIGTERM or SIGINT (Ctrl-C).

    On the signal: stop accepting connections, answer every request already accepted (for up to
    ``shutdown_timeout_s``; new work meanwhile gets 503), stop the batcher, then end *by that signal*, as
    uvicorn does: status -15 (SIGTERM) or -2 (SIGINT) as Python's subprocess reports it, 143 or 130 in a
    shell. The status says the server stopped because it was told to (docs/serving.md, "Stopping")."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        timeout_graceful_shutdown=args.shutdown_timeout_s,
        log_level="info",
        access_log=False,
    )
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        # uvicorn re-raises the SIGINT it stopped on, which Python turns into a traceback; end by the signal
        # instead, as after SIGTERM (the drain is over: "Finished server process" is in the log).
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
