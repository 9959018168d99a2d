"""The job table: every fine-tune job's state (DATA_DIR/jobs.db or PostgreSQL).

The table, not the task queue, is the truth about a job. The queue only
carries "run job X" messages, and it can lose one (a worker killed while
running it) or deliver one twice; the table makes both harmless:

- `claim` moves a job from `queued` to `running` in one UPDATE guarded by
  its status, so two deliveries cannot run it twice, and hands the worker
  a fresh lease token;
- every later write of the worker (`heartbeat`, `fail`, ...) is
  guarded by that token, so a worker that lost its job (stopped past the
  lease, then resumed) can no longer change it;
- `sweep` finds running jobs whose heartbeat stopped, that ran past the
  time limit or whose cancel was never honoured, and queued jobs that
  nobody took, and re-queues, fails or cancels them;
- `fenced_success` holds the table's write lock while the worker switches
  the active version, so "lease still held", "version active" and
  "job succeeded" happen as one step that no sweep can cut in two.

The table lives in SQLite in the data directory, or in PostgreSQL when
machines share it (app/jobs/database.py: one SQL text, two backends). Each
call opens its own connection.
"""

import json
import logging
import math
import secrets
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from app.jobs.database import (
    INDEXES,
    LOCK_WAIT_SECONDS,
    Backend,
    Session,
    make_backend,
    table_ddl,
)

logger = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ACTIVE_STATUSES = ("queued", "running")
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
JOB_ID_PATTERN = r"[0-9a-f]{32}"

JOBS_DB = "jobs.db"
# The SQLite table and its first index, as one script (tests build old
# tables from it).
_SCHEMA = f"{table_ddl('REAL')};\n{INDEXES['jobs_status']};\n"


@dataclass
class Job:
    """One row of the job table, JSON columns decoded."""

    id: str
    kind: str
    status: JobStatus
    params: dict[str, Any]
    upload: dict[str, Any]
    idempotency_key: str | None
    created_at: float
    updated_at: float
    enqueued_at: float | None
    started_at: float | None
    finished_at: float | None
    attempts: int
    max_attempts: int
    lease: str | None
    worker: str | None
    heartbeat_at: float | None
    cancel_requested: bool
    progress: dict[str, Any] | None
    base_version: str | None
    result_version: str | None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class UploadOwner:
    """The job that names an upload file, as the upload clean-ups need it."""

    job_id: str
    status: JobStatus
    finished_at: float | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class LeaseLost(Exception):
    """The worker's lease on a job is gone: the sweep gave the job to another
    attempt, or it was cancelled. The worker must stop and write nothing."""


@dataclass(frozen=True)
class SubmissionLimits:
    """Caps on new jobs, counted in the table so they hold across processes."""

    max_active: int
    per_hour: int
    window: float = 3600.0


class LimitReached(Exception):
    """A new job would pass one of its SubmissionLimits.

    `kind` is "rate" (the submitter's jobs in the window) or "queue" (jobs
    queued or running); `retry_after` is whole seconds to wait.
    """

    def __init__(self, kind: Literal["rate", "queue"], count: int, retry_after: int):
        super().__init__(f"{kind} limit reached with {count} jobs")
        self.kind = kind
        self.count = count
        self.retry_after = retry_after


class JobStore:
    """The job table: in the SQLite database at `path` (created on first use),
    or in PostgreSQL at `database_url` when that is given. A write waits up
    to `lock_wait` seconds for the table's write lock."""

    def __init__(
        self,
        path: Path,
        *,
        database_url: str | None = None,
        lock_wait: float = LOCK_WAIT_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.database: Backend = make_backend(self.path, database_url, lock_wait)
        self.database.create_schema()

    def _connect(self) -> AbstractContextManager[Session]:
        return self.database.connect()

    def _transaction(self) -> AbstractContextManager[Session]:
        """A write transaction: no other writer until it commits."""
        return self.database.transaction()

    # -- the API's side ------------------------------------------------------

    def create(
        self,
        *,
        kind: str,
        params: dict[str, Any],
        upload: dict[str, Any],
        max_attempts: int,
        idempotency_key: str | None = None,
        job_id: str | None = None,
        submitter: str | None = None,
        base_version: str | None = None,
        limits: SubmissionLimits | None = None,
    ) -> tuple[Job, bool]:
        """Insert a queued job and return `(job, True)`; with an
        `idempotency_key` already used, return `(that job, False)` instead.

        `base_version` is recorded as the version the job will fine-tune
        (default: the request's `base_version`). With `limits`, raises
        LimitReached instead of inserting a job past them; the count and the
        insert are one write transaction, so concurrent requests cannot all
        slip under a limit.
        """
        now = time.time()
        job_id = job_id or new_job_id()
        with self._transaction() as db:
            if idempotency_key is not None:
                row = db.execute(
                    "SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                if row is not None:
                    return _job(row), False
            if limits is not None:
                _check_limits(db, submitter, limits, now)
            db.execute(
                "INSERT INTO jobs (id, kind, status, params, upload, idempotency_key,"
                " created_at, updated_at, enqueued_at, max_attempts, base_version,"
                " submitter) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    kind,
                    _dumps(params),
                    _dumps(upload),
                    idempotency_key,
                    now,
                    now,
                    now,
                    max_attempts,
                    base_version or params.get("base_version"),
                    submitter,
                ),
            )
        logger.info("job %s queued (%s)", job_id, kind)
        return self.get(job_id), True

    def find_by_idempotency_key(self, key: str) -> Job | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM jobs WHERE idempotency_key = ?", (key,)
            ).fetchone()
        return _job(row) if row is not None else None

    def get(self, job_id: str) -> Job:
        """Return the job; KeyError when there is none with that id."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(job_id)
        return _job(row)

    def recent(self, *, status: str | None = None, limit: int = 50) -> list[Job]:
        """Return up to `limit` jobs, newest first, optionally of one status."""
        query, args = "SELECT * FROM jobs", list[Any]()
        if status is not None:
            query += " WHERE status = ?"
            args.append(status)
        query += " ORDER BY created_at DESC, id LIMIT ?"
        args.append(limit)
        with self._connect() as db:
            return [_job(row) for row in db.execute(query, args)]

    def check_limits(self, submitter: str, limits: SubmissionLimits) -> None:
        """Raise LimitReached if a job by `submitter` would pass `limits` now."""
        with self._connect() as db:
            _check_limits(db, submitter, limits, time.time())

    def upload_owners(self) -> dict[str, UploadOwner]:
        """Return the job of every upload file a job names, keyed by file
        name, read in one query (the clean-ups run over thousands)."""
        with self._connect() as db:
            rows = db.execute("SELECT id, status, finished_at, upload FROM jobs")
            owners = {}
            for row in rows:
                name = (_loads(row["upload"]) or {}).get("file")
                if name:
                    owners[name] = UploadOwner(
                        row["id"], row["status"], row["finished_at"]
                    )
        return owners

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once; ask a running one to stop (its worker
        sees the request within a heartbeat). Returns the job as it is now;
        KeyError for an unknown id. A finished job is returned unchanged."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, updated_at = ?,"
                " cancel_requested = 1, lease = NULL, error = 'cancelled by request'"
                " WHERE id = ? AND status = 'queued'",
                (now, now, job_id),
            )
            db.execute(
                "UPDATE jobs SET cancel_requested = 1, updated_at = ?"
                " WHERE id = ? AND status = 'running'",
                (now, job_id),
            )
        return self.get(job_id)

    # -- the worker's side ---------------------------------------------------

    def claim(self, job_id: str, worker: str) -> Job | None:
        """Start an attempt of a queued job and return it with its new lease;
        None when the job is not queued (taken, cancelled, finished, unknown)."""
        now = time.time()
        lease = secrets.token_hex(8)
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1,"
                " lease = ?, worker = ?, heartbeat_at = ?, updated_at = ?,"
                " started_at = COALESCE(started_at, ?), attempt_started_at = ?,"
                " error = NULL WHERE id = ? AND status = 'queued'",
                (lease, worker, now, now, now, now, job_id),
            ).rowcount
        if not changed:
            return None
        job = self.get(job_id)
        logger.info("job %s attempt %d started by %s", job_id, job.attempts, worker)
        return job

    def heartbeat(
        self, job_id: str, lease: str, progress: dict[str, Any] | None = None
    ) -> bool:
        """Record that the attempt holding `lease` is alive (and its progress).

        Returns whether the job asks to be cancelled. Raises LeaseLost when
        the attempt no longer owns the job.
        """
        now = time.time()
        with self._connect() as db:
            if progress is None:
                changed = db.execute(
                    "UPDATE jobs SET heartbeat_at = ? WHERE id = ? AND lease = ?"
                    " AND status = 'running'",
                    (now, job_id, lease),
                ).rowcount
            else:
                changed = db.execute(
                    "UPDATE jobs SET heartbeat_at = ?, updated_at = ?, progress = ?"
                    " WHERE id = ? AND lease = ? AND status = 'running'",
                    (now, now, _dumps(progress), job_id, lease),
                ).rowcount
            if not changed:
                raise LeaseLost(job_id)
            row = db.execute(
                "SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        return bool(row["cancel_requested"])

    def set_base_version(self, job_id: str, lease: str, version: str) -> None:
        self._guarded(
            job_id, lease, "base_version = ?", (version,), "record its base version"
        )

    @contextmanager
    def fenced_success(
        self, job_id: str, lease: str, version: str, result: dict[str, Any]
    ) -> Iterator[None]:
        """Run the block while the attempt holding `lease` provably still owns
        the job, then mark it succeeded with model `version`.

        Entering raises LeaseLost when the attempt lost the job. The table's
        write lock is held from the lease check to the commit, so no sweep can
        take the job away in between: keep the block to a rename or two. If
        the block raises, the job is left as it was.
        """
        with self._transaction() as db:
            owned = db.execute(
                "SELECT progress FROM jobs WHERE id = ? AND lease = ?"
                " AND status = 'running'",
                (job_id, lease),
            ).fetchone()
            if owned is None:
                logger.warning("job %s: lease lost, cannot succeed", job_id)
                raise LeaseLost(job_id)
            yield
            now = time.time()
            # The write lock is held, so no heartbeat changed progress meanwhile.
            progress = _loads(owned["progress"]) or {}
            progress.update(fraction=1.0, eta_seconds=0, stage="done")
            db.execute(
                "UPDATE jobs SET status = 'succeeded', result_version = ?, result = ?,"
                " finished_at = ?, updated_at = ?, lease = NULL, progress = ?"
                " WHERE id = ?",
                (version, _dumps(result), now, now, _dumps(progress), job_id),
            )
        logger.info("job %s succeeded: version %s", job_id, version)

    def update_result(self, job_id: str, result: dict[str, Any]) -> None:
        """Replace a finished job's result (e.g. to add its activation outcome)."""
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET result = ?, updated_at = ? WHERE id = ?",
                (_dumps(result), time.time(), job_id),
            )

    def fail(self, job_id: str, lease: str, error: str, *, retry: bool) -> JobStatus:
        """End the attempt holding `lease` with `error`: back to `queued` when
        `retry` and attempts remain, else `failed`. Returns the new status."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT attempts, max_attempts FROM jobs WHERE id = ? AND lease = ?"
                " AND status = 'running'",
                (job_id, lease),
            ).fetchone()
            if row is None:
                raise LeaseLost(job_id)
            more = row["attempts"] < row["max_attempts"]
            status: JobStatus = "queued" if retry and more else "failed"
            db.execute(
                "UPDATE jobs SET status = ?, error = ?, lease = NULL, updated_at = ?,"
                " finished_at = CASE WHEN ? = 'failed' THEN ? ELSE NULL END,"
                " enqueued_at = ?"
                " WHERE id = ?",
                (status, error, now, status, now, now, job_id),
            )
        logger.warning("job %s attempt ended (%s): %s", job_id, status, error)
        return status

    def cancelled(self, job_id: str, lease: str) -> None:
        """Mark the attempt holding `lease` as stopped on request."""
        now = time.time()
        self._guarded(
            job_id,
            lease,
            "status = 'cancelled', finished_at = ?, lease = NULL,"
            " error = 'cancelled by request'",
            (now,),
            "cancel",
        )
        logger.info("job %s cancelled while running", job_id)

    def sweep(self, lease_seconds: float, time_limit: float | None = None) -> list[str]:
        """Recover jobs whose worker died or whose queue message was lost.

        A running job whose attempt started more than `time_limit` plus
        `lease_seconds` ago is failed, as its worker would have done had it
        not hung. A running job without a heartbeat for `lease_seconds` goes
        back to `queued` (or to `failed` once its attempts are used up); if
        a cancel was asked for, either way it is `cancelled` instead. A
        queued job not taken within `lease_seconds` of being queued is
        listed again. Returns the ids that need a new queue message.
        """
        now = time.time()
        deadline = now - lease_seconds
        overdue = -math.inf if time_limit is None else deadline - time_limit
        with self._transaction() as db:
            stuck = db.execute(
                "SELECT id, attempts, max_attempts, worker, cancel_requested,"
                " heartbeat_at, attempt_started_at FROM jobs WHERE status = 'running'"
                " AND (heartbeat_at < ? OR attempt_started_at < ?)",
                (deadline, overdue),
            ).fetchall()
            requeued = [
                row["id"]
                for row in stuck
                if _recover(db, row, now, lease_seconds, time_limit) == "queued"
            ]
            stale = db.execute(
                "SELECT id FROM jobs WHERE status = 'queued' AND enqueued_at < ?",
                (deadline,),
            ).fetchall()
            lost = [row["id"] for row in stale]
            db.executemany(
                "UPDATE jobs SET enqueued_at = ? WHERE id = ?",
                [(now, job_id) for job_id in lost],
            )
        return requeued + lost

    def _guarded(
        self,
        job_id: str,
        lease: str,
        assignments: str,
        args: tuple[Any, ...],
        what: str,
    ) -> None:
        with self._connect() as db:
            changed = db.execute(
                f"UPDATE jobs SET {assignments}, updated_at = ?"
                " WHERE id = ? AND lease = ? AND status = 'running'",
                (*args, time.time(), job_id, lease),
            ).rowcount
        if not changed:
            logger.warning("job %s: lease lost, cannot %s", job_id, what)
            raise LeaseLost(job_id)


def _recover(
    db: Session,
    row: Any,
    now: float,
    lease_seconds: float,
    time_limit: float | None,
) -> JobStatus:
    """End the attempt of a running job that `sweep` found stuck; return the
    job's new status."""
    started = row["attempt_started_at"]
    over_time = (
        time_limit is not None
        and started is not None
        and started < now - lease_seconds - time_limit
    )
    status: JobStatus
    if row["cancel_requested"]:
        status, error = "cancelled", "cancelled by request"
        reason = f"worker {row['worker']} stopped before honouring a cancel"
    elif over_time:
        status = "failed"
        error = reason = (
            f"attempt {row['attempts']} ran past the job time limit of "
            f"{time_limit:g} s (WORDVEC_JOB_TIME_LIMIT) without finishing; upload "
            "less text or raise the limit"
        )
    else:
        reason = (
            f"worker {row['worker']} stopped sending heartbeats for "
            f"{lease_seconds:g} s during attempt {row['attempts']}"
        )
        status = "queued" if row["attempts"] < row["max_attempts"] else "failed"
        error = reason
        if status == "failed":
            error = f"{reason}; gave up after {row['attempts']} attempts"
    if status == "queued":
        db.execute(
            "UPDATE jobs SET status = 'queued', lease = NULL, updated_at = ?,"
            " enqueued_at = ?, error = ? WHERE id = ?",
            (now, now, error, row["id"]),
        )
        logger.warning("job %s re-queued: %s", row["id"], reason)
    else:
        db.execute(
            "UPDATE jobs SET status = ?, lease = NULL, finished_at = ?,"
            " updated_at = ?, error = ? WHERE id = ?",
            (status, now, now, error, row["id"]),
        )
        logger.warning("job %s %s: %s", row["id"], status, reason)
    return status


def _check_limits(
    db: Session,
    submitter: str | None,
    limits: SubmissionLimits,
    now: float,
) -> None:
    """Raise LimitReached when one more job by `submitter` would pass `limits`."""
    recent = [
        float(row["created_at"])
        for row in db.execute(
            "SELECT created_at FROM jobs WHERE submitter = ? AND created_at > ?"
            " ORDER BY created_at",
            (submitter, now - limits.window),
        )
    ]
    if len(recent) >= limits.per_hour:
        # The wait until the oldest submission that counts leaves the window.
        oldest = recent[-limits.per_hour]
        wait = max(1, math.ceil(oldest + limits.window - now))
        raise LimitReached("rate", len(recent), wait)
    active = db.execute(
        "SELECT COUNT(*) AS active FROM jobs WHERE status IN ('queued', 'running')"
    ).fetchone()["active"]
    if active >= limits.max_active:
        raise LimitReached("queue", int(active), 30)


def open_job_store(data_dir: Path, database_url: str | None = None) -> JobStore:
    """Return the job table of `data_dir`: DATA_DIR/jobs.db, or PostgreSQL at
    `database_url` when one is given. Raises ConfigError when that database
    cannot be reached."""
    return JobStore(Path(data_dir) / JOBS_DB, database_url=database_url)


def new_job_id() -> str:
    """Return a fresh job id: 32 lower-case hex digits."""
    return secrets.token_hex(16)


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def _job(row: Any) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        status=row["status"],
        params=_loads(row["params"]) or {},
        upload=_loads(row["upload"]) or {},
        idempotency_key=row["idempotency_key"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        enqueued_at=row["enqueued_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        lease=row["lease"],
        worker=row["worker"],
        heartbeat_at=row["heartbeat_at"],
        cancel_requested=bool(row["cancel_requested"]),
        progress=_loads(row["progress"]),
        base_version=row["base_version"],
        result_version=row["result_version"],
        result=_loads(row["result"]) or {},
        error=row["error"],
    )
