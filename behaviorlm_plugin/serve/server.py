"""Run the app under uvicorn: one model per process, graceful stop on SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import os

from behaviorlm_plugin.hparams.serve_args import API_KEY_ENV, ServeArguments
from behaviorlm_plugin.serve.app import create_app
from behaviorlm_plugin.serve.loading import load_predictor

log = logging.getLogger(__name__)


def run_server(args: ServeArguments) -> None:
    """Load the model, then serve until stopped (in-flight requests finish, up to ``shutdown_timeout_s``)."""
    import uvicorn

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
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        timeout_graceful_shutdown=args.shutdown_timeout_s,
        log_level="info",
        access_log=False,
    )
    uvicorn.Server(config).run()
