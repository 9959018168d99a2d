"""The task queue that carries "run job X" from the API to the workers: Huey,
on SQLite in DATA_DIR by default or on Redis. The SQLite queue keeps every
process on the data directory's host, whatever holds the job table; several
machines need Redis here and PostgreSQL for the table (docs/jobs.md).

A queue message holds nothing but a job id; everything else about the job
is in the job table (app/jobs/store.py), which also repairs what a queue
can get wrong (a message lost with a killed worker, or delivered twice).
Messages are JSON, not Huey's default pickle, so whoever can write to the
queue's storage still cannot make a worker run code.
"""

import json
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey
from huey.registry import Message
from huey.serializer import Serializer

from training.errors import ConfigError

logger = logging.getLogger(__name__)

QUEUE_NAME = "wordvec-jobs"
QUEUE_FILE = "queue.db"
TASK_NAME = "wordvec.run_job"


class JsonMessageSerializer(Serializer):
    """Huey messages as JSON: the fields of `Message`, with an ISO 8601 `eta`."""

    def _serialize(self, data: Any) -> bytes:
        if not isinstance(data, Message):
            raise TypeError(
                f"the wordvec queue carries task messages only, not {type(data)}"
            )
        fields = data._asdict()
        for name in ("eta", "expires_resolved"):
            if isinstance(fields[name], datetime):
                fields[name] = {"datetime": fields[name].isoformat()}
        return json.dumps(fields, allow_nan=False).encode()

    def _deserialize(self, data: bytes) -> Any:
        fields = json.loads(data)
        for name in ("eta", "expires_resolved"):
            if isinstance(fields.get(name), dict):
                fields[name] = datetime.fromisoformat(fields[name]["datetime"])
        fields["args"] = tuple(fields.get("args") or ())
        known = {name: fields.get(name) for name in Message._fields}
        return Message(**known)


class JobQueue:
    """The Huey queue with wordvec's one task, "run job X".

    The API process only calls `enqueue`; the worker process also calls
    `set_runner` with the function that runs a job, then consumes. Both
    register the same task name, so messages match on both sides.
    """

    def __init__(self, huey: Huey) -> None:
        self.huey = huey
        self._runner: Callable[[str], None] | None = None
        self._task = huey.task(retries=0, name=TASK_NAME)(self._run)

    def enqueue(self, job_id: str) -> None:
        """Send "run job `job_id`" to the workers."""
        self._task(job_id)

    def set_runner(self, runner: Callable[[str], None]) -> None:
        self._runner = runner

    def _run(self, job_id: str) -> None:
        if self._runner is None:
            raise RuntimeError("this process enqueues jobs but does not run them")
        self._runner(job_id)


def make_queue(data_dir: Path, url: str | None = None) -> JobQueue:
    """Return the job queue for `data_dir`: SQLite in DATA_DIR/queue.db, or
    Redis when `url` is `redis://...`. Raises ConfigError for other URLs.

    Huey's own retries stay off: the job table counts attempts.
    """
    serializer = JsonMessageSerializer()
    huey: Huey
    if url is None or not url.strip():
        huey = SqliteHuey(
            QUEUE_NAME,
            filename=str(Path(data_dir) / QUEUE_FILE),
            results=False,
            serializer=serializer,
            fsync=True,
        )
    elif url.startswith(("redis://", "rediss://", "unix://")):
        huey = RedisHuey(QUEUE_NAME, url=url, results=False, serializer=serializer)
    else:
        raise ConfigError(
            f"WORDVEC_QUEUE_URL {url!r} is not supported; leave it unset for SQLite "
            "in the data directory or give redis://HOST:PORT/DB"
        )
    return JobQueue(huey)


def warn_if_single_host(queue_url: str | None, database_url: str | None) -> None:
    """Log a warning when the job table is shared (PostgreSQL) but the queue
    is still the SQLite file in DATA_DIR, which only one host may open."""
    sqlite_queue = queue_url is None or not queue_url.strip()
    if database_url and sqlite_queue:
        logger.warning(
            "the job table is in PostgreSQL but the queue is SQLite in the data "
            "directory: run every API server and worker on this one host, or "
            "set WORDVEC_QUEUE_URL=redis://HOST:PORT/DB to use several machines"
        )
