"""`wordvec worker`: the process that runs fine-tune jobs.

It consumes the Huey queue (one job at a time per worker: training uses all
the threads it is given) and, beside it, sweeps the job table so that a job
whose worker died is re-queued or failed and a queued job whose message was
lost is sent again. Several workers can share a data directory and a
queue: on one host as they come, on several with the job table in
PostgreSQL and the queue on Redis (docs/jobs.md, "Several machines").
"""

import argparse
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from app.core.config import get_settings
from app.jobs.queue import JobQueue, make_queue, warn_if_single_host
from app.jobs.runner import JobRunner, worker_name
from app.jobs.store import JobStore, open_job_store
from app.jobs.uploads import remove_expired_uploads
from app.registry import ModelRegistry
from training.errors import ConfigError

logger = logging.getLogger(__name__)

# Seconds between two deletions of expired uploads: retention is counted in
# days, and each pass reads the whole job table.
RETENTION_CHECK_INTERVAL = 600.0


def add_worker_parser(subparsers: Any) -> None:
    """Register `wordvec worker` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "worker",
        help="run fine-tune jobs from a data directory's queue",
        description="Run fine-tune jobs queued by `POST /finetune` against the models "
        "in DATA_DIR, until interrupted. Settings not given as flags come from "
        "WORDVEC_* environment variables (docs/jobs.md).",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="data directory shared with `wordvec serve --data-dir` "
        "(default: WORDVEC_DATA_DIR)",
    )
    p.add_argument(
        "--alive-file",
        type=Path,
        help="touch this file after each sweep of the job table (every few "
        "seconds while the worker and its database are fine), for a health "
        "check that tests its age; keep it local to the worker, not shared",
    )
    p.set_defaults(handler=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    """Consume jobs until SIGINT or SIGTERM; return the exit status."""
    from huey.consumer import Consumer

    if args.data_dir is not None:
        os.environ["WORDVEC_DATA_DIR"] = str(args.data_dir.resolve())
    get_settings.cache_clear()
    settings = get_settings()
    if settings.data_dir is None:
        raise ConfigError("give the data directory: --data-dir DIR or WORDVEC_DATA_DIR")
    registry = ModelRegistry(settings.data_dir)
    # Only leftovers no running job can own: another worker may be mid-job.
    registry.clean_staging(older_than=settings.job_time_limit + settings.job_lease)
    store = open_job_store(settings.data_dir, settings.database_url)
    queue = make_queue(settings.data_dir, settings.queue_url)
    warn_if_single_host(settings.queue_url, settings.database_url)
    queue.set_runner(JobRunner(settings, registry, store, queue.enqueue).run)
    sweeper = Sweeper(
        store,
        queue,
        settings.job_lease,
        alive_file=args.alive_file,
        time_limit=settings.job_time_limit,
        uploads_dir=registry.uploads_dir,
        upload_retention_days=settings.upload_retention_days,
    )
    sweeper.start()
    logger.info("worker %s taking jobs from %s", worker_name(), settings.data_dir)
    try:
        # One job at a time; the consumer installs SIGINT/SIGTERM handlers
        # that let a running job finish (SIGINT) or stop at once (SIGTERM).
        Consumer(queue.huey, workers=1, worker_type="thread", periodic=False).run()
    finally:
        sweeper.stop()
    return 0


class Sweeper(threading.Thread):
    """Every few seconds, recovers jobs whose worker died or hung past the
    time limit or whose queue message was lost (see `JobStore.sweep`) and
    sends those that should run again to the queue.

    With `alive_file`, it touches that file after each sweep that worked, so
    that a health check can tell a live worker (a recent file) from one
    whose process hangs or whose job table cannot be reached (a stale one).

    With `uploads_dir` and a positive `upload_retention_days`, it also
    deletes the uploads of jobs finished longer ago than that, at its first
    sweep and then every RETENTION_CHECK_INTERVAL seconds.
    """

    def __init__(
        self,
        store: JobStore,
        queue: JobQueue,
        lease: float,
        alive_file: Path | None = None,
        time_limit: float | None = None,
        uploads_dir: Path | None = None,
        upload_retention_days: float = 0.0,
    ) -> None:
        super().__init__(name="job-sweeper", daemon=True)
        self.store = store
        self.queue = queue
        self.lease = lease
        self.time_limit = time_limit
        self.alive_file = alive_file
        self.interval = min(max(lease / 4, 0.5), 10.0)
        self.uploads_dir = uploads_dir
        self.upload_retention_days = upload_retention_days
        self._next_expiry = time.monotonic()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            try:
                for job_id in self.store.sweep(self.lease, self.time_limit):
                    logger.info("job %s sent to the queue again", job_id)
                    self.queue.enqueue(job_id)
                self._touch()
            except Exception:
                logger.exception("sweeping the job table failed; retrying")
            self._expire_uploads()
            if self._stop_event.wait(self.interval):
                return

    def _expire_uploads(self) -> None:
        if self.uploads_dir is None or self.upload_retention_days <= 0:
            return
        if time.monotonic() < self._next_expiry:
            return
        self._next_expiry = time.monotonic() + RETENTION_CHECK_INTERVAL
        try:
            remove_expired_uploads(
                self.uploads_dir, self.store, self.upload_retention_days
            )
        except Exception:
            logger.exception("deleting expired uploads failed; retrying later")

    def _touch(self) -> None:
        if self.alive_file is None:
            return
        try:
            # Creates the file, or sets its times to now.
            self.alive_file.touch()
        except OSError as exc:
            logger.warning("cannot touch %s: %s", self.alive_file, exc)

    def stop(self) -> None:
        self._stop_event.set()
