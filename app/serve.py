"""`wordvec serve`: run the HTTP API under uvicorn on one model bundle, or on
the active version of a data directory (see docs/models.md)."""

import argparse
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from app.core.config import Settings, get_settings
from app.registry import ModelRegistry
from training.bundle import read_manifest
from training.errors import ConfigError

logger = logging.getLogger(__name__)

# Set by `serve` before any worker imports prometheus_client (see app.core.metrics).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds a uvicorn worker may take to start (imports, model load and checks).
WORKER_STARTUP_SECONDS = 120


def add_serve_parser(subparsers: Any) -> None:
    """Register `wordvec serve` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "serve",
        help="serve a bundle or a data directory over HTTP (API docs at /docs)",
        description="Serve a model bundle's vectors over HTTP with uvicorn, or the "
        "active version of a data directory, following its activations. Settings "
        "not given as flags come from WORDVEC_* environment variables or .env.",
    )
    p.add_argument(
        "bundle",
        type=Path,
        nargs="?",
        metavar="BUNDLE_DIR",
        help="bundle to serve as it is (give this or --data-dir; default: "
        "WORDVEC_BUNDLE_PATH when neither is given nor WORDVEC_DATA_DIR set)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="data directory whose active version to serve, switching when it "
        "changes (default: WORDVEC_DATA_DIR when no BUNDLE_DIR is given)",
    )
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
    """Check what is to be served, then run uvicorn until interrupted; return
    the exit status. Raises ConfigError unless exactly one of BUNDLE_DIR and
    --data-dir is given or, without either, the settings name a bundle or a
    data directory; a bad WORDVEC_* setting raises pydantic's ValidationError."""
    import uvicorn

    source = _choose_source(args, _fresh_settings())
    settings = _settings_for(args)
    if settings.data_dir is not None:
        _check_job_table(settings)
    metrics_dir = _share_metrics_between_workers()
    logger.info(
        "serving %s on http://%s:%d with %d worker(s)",
        source, settings.host, settings.port, settings.workers,
    )  # fmt: skip
    # Models switch inside each worker (ModelHolder.swap), never by restarting
    # workers, so uvicorn's 5 s limit (timeout_worker_healthcheck) on a new
    # worker's startup only bites on SIGHUP, and then the old workers keep
    # serving. The same limit applies to uvicorn's pings of running workers;
    # those are answered on a thread of their own, so a model loading on the
    # watcher thread delays them only while it holds the GIL.
    try:
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level.lower(),
            access_log=args.access_log,
            # A worker reports healthy once its app has started, model loaded
            # and checked; uvicorn's 5 s default kills slow starters on a busy
            # machine or with a large model.
            timeout_worker_healthcheck=WORKER_STARTUP_SECONDS,
            timeout_keep_alive=settings.keep_alive_seconds,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _check_job_table(settings: Settings) -> None:
    """Open the job table once (creating it if new), so an unreachable job
    database stops `serve` here with one line rather than in every worker."""
    from app.jobs.queue import warn_if_single_host
    from app.jobs.store import open_job_store

    assert settings.data_dir is not None
    store = open_job_store(settings.data_dir, settings.database_url)
    logger.info("job table in %s", store.database.describe())
    warn_if_single_host(settings.queue_url, settings.database_url)


def _fresh_settings() -> Settings:
    """Read the settings again from the environment and .env."""
    get_settings.cache_clear()
    return get_settings()


def _settings_for(args: argparse.Namespace) -> Settings:
    # Workers are new processes that read settings from the environment, so
    # the flags travel there rather than as arguments. Only one of the two
    # sources is left set: the data directory would win over the bundle.
    if args.data_dir is not None:
        os.environ["WORDVEC_DATA_DIR"] = str(args.data_dir.resolve())
        os.environ.pop("WORDVEC_BUNDLE_PATH", None)
    else:
        os.environ["WORDVEC_BUNDLE_PATH"] = str(args.bundle.resolve())
        os.environ.pop("WORDVEC_DATA_DIR", None)
    for name in ("host", "port", "workers"):
        value = getattr(args, name)
        if value is not None:
            os.environ[f"WORDVEC_{name.upper()}"] = str(value)
    # `wordvec --log-level` applies when given; otherwise WORDVEC_LOG_LEVEL does.
    if args.log_level != "INFO" or "WORDVEC_LOG_LEVEL" not in os.environ:
        os.environ["WORDVEC_LOG_LEVEL"] = args.log_level
    settings = _fresh_settings()
    if args.data_dir is None and settings.data_dir is not None:
        # Only a .env file can still name it (the variable was just removed),
        # and the workers would serve it instead of the bundle.
        raise ConfigError(
            f"WORDVEC_DATA_DIR={settings.data_dir} in .env would be served "
            "instead of BUNDLE_DIR; remove it from .env, or serve with --data-dir"
        )
    return settings


def _choose_source(args: argparse.Namespace, settings: Settings) -> Path:
    """Settle `args.bundle` or `args.data_dir` (exactly one), check it, return it.

    Flags win; without them, `settings.data_dir` and then `settings.bundle_path`
    (WORDVEC_DATA_DIR, WORDVEC_BUNDLE_PATH, from the environment or .env) name
    what to serve, in the order the app itself follows.
    """
    if args.bundle is not None and args.data_dir is not None:
        raise ConfigError(
            "give BUNDLE_DIR or --data-dir, not both: a bundle is served as it "
            "is, a data directory serves its active version"
        )
    if args.bundle is None and args.data_dir is None:
        if settings.data_dir is not None:
            args.data_dir = settings.data_dir
        elif settings.bundle_path is not None:
            args.bundle = settings.bundle_path
        else:
            raise ConfigError(
                "nothing to serve: give a BUNDLE_DIR, or --data-dir DIR (or set "
                "WORDVEC_BUNDLE_PATH or WORDVEC_DATA_DIR)"
            )
    if args.bundle is not None:
        read_manifest(args.bundle)  # fail here, with the reason, not in a worker
        return Path(args.bundle)
    registry = ModelRegistry(args.data_dir)
    if registry.active_version() is None:
        logger.warning(
            "no version is active in %s; queries answer 503 until one is "
            "(`wordvec models add BUNDLE_DIR --data-dir %s --activate`)",
            registry.data_dir,
            registry.data_dir,
        )
    return Path(args.data_dir)


def _share_metrics_between_workers() -> str | None:
    """Give the workers a fresh directory for their metrics; return it, or None
    when PROMETHEUS_MULTIPROC_DIR was set by the caller (theirs to clean)."""
    if os.environ.get(MULTIPROC_ENV):
        return None
    directory = tempfile.mkdtemp(prefix="wordvec-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    return directory
