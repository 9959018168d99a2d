"""`wordvec serve`: run the HTTP API under uvicorn on one model bundle."""

import argparse
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from app.core.config import Settings, get_settings
from training.bundle import read_manifest

logger = logging.getLogger(__name__)

# Set by `serve` before any worker imports prometheus_client (see app.core.metrics).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def add_serve_parser(subparsers: Any) -> None:
    """Register `wordvec serve` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "serve",
        help="serve a bundle over HTTP (API docs at /docs)",
        description="Serve a model bundle's vectors over HTTP with uvicorn. Settings "
        "not given as flags come from WORDVEC_* environment variables or .env.",
    )
    p.add_argument("bundle", type=Path, metavar="BUNDLE_DIR", help="bundle to serve")
    p.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default: 8000)")
    p.add_argument(
        "--workers",
        type=int,
        help="worker processes, each one search at a time per thread (default: 1)",
    )
    p.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="log one line per request (default: on)",
    )
    p.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Check the bundle, then run uvicorn until interrupted; return the exit status."""
    import uvicorn

    read_manifest(args.bundle)  # fail here, with the reason, rather than in a worker
    settings = _settings_for(args)
    metrics_dir = _share_metrics_between_workers()
    logger.info(
        "serving %s on http://%s:%d with %d worker(s)",
        args.bundle, settings.host, settings.port, settings.workers,
    )  # fmt: skip
    # TODO: on SIGHUP uvicorn gives each new worker timeout_worker_healthcheck
    # (5 s) to finish startup, model load included, and keeps the old workers
    # if it is late; raise it with the bundle size once models are reloaded
    # by restart rather than by ModelHolder.swap.
    try:
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level.lower(),
            access_log=args.access_log,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _settings_for(args: argparse.Namespace) -> Settings:
    # Workers are new processes that read settings from the environment, so
    # the flags travel there rather than as arguments.
    os.environ["WORDVEC_BUNDLE_PATH"] = str(args.bundle.resolve())
    for name in ("host", "port", "workers"):
        value = getattr(args, name)
        if value is not None:
            os.environ[f"WORDVEC_{name.upper()}"] = str(value)
    # `wordvec --log-level` applies when given; otherwise WORDVEC_LOG_LEVEL does.
    if args.log_level != "INFO" or "WORDVEC_LOG_LEVEL" not in os.environ:
        os.environ["WORDVEC_LOG_LEVEL"] = args.log_level
    get_settings.cache_clear()
    return get_settings()


def _share_metrics_between_workers() -> str | None:
    """Give the workers a fresh directory for their metrics; return it, or None
    when PROMETHEUS_MULTIPROC_DIR was set by the caller (theirs to clean)."""
    if os.environ.get(MULTIPROC_ENV):
        return None
    directory = tempfile.mkdtemp(prefix="wordvec-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    return directory
