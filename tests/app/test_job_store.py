"""The job table on a real SQLite file and on a real PostgreSQL server:
claims, leases, sweeps, cancels, limits."""

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from app.jobs.database import ADDED_COLUMNS, INDEXES, JobTableBusy, table_ddl
from app.jobs.store import (
    _SCHEMA,
    JobStore,
    LeaseLost,
    LimitReached,
    SubmissionLimits,
    UploadOwner,
)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> JobStore:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        return JobStore(tmp_path / "jobs.db", database_url=url)
    return JobStore(tmp_path / "jobs.db")


@pytest.fixture
def sqlite_store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "jobs.db")


def run_sql(store: JobStore, sql: str, args: tuple[Any, ...]) -> None:
    """Change the table behind the store's back, on whichever backend it uses."""
    with store.database.connect() as db:
        db.execute(sql, args)


def queued(store: JobStore, key: str | None = None, attempts: int = 3) -> str:
    job, created = store.create(
        kind="finetune",
        params={"epochs": 1},
        upload={"file": "x.txt", "sha256": "ab"},
        max_attempts=attempts,
        idempotency_key=key,
    )
    assert created
    return job.id


def active_jobs(store: JobStore) -> int:
    """Count queued and running jobs, as the submission limit counts them."""
    try:
        store.check_limits("nobody", SubmissionLimits(max_active=1, per_hour=1))
    except LimitReached as exc:
        assert exc.kind == "queue"
        return exc.count
    return 0


def succeed(store: JobStore, job_id: str, lease: str, version: str) -> None:
    with store.fenced_success(job_id, lease, version, {"activated": False}):
        pass


def age_heartbeat(store: JobStore, job_id: str, seconds: float) -> None:
    run_sql(
        store,
        "UPDATE jobs SET heartbeat_at = heartbeat_at - ?, enqueued_at = "
        "enqueued_at - ? WHERE id = ?",
        (seconds, seconds, job_id),
    )


def test_database_uses_wal(sqlite_store: JobStore) -> None:
    with sqlite3.connect(sqlite_store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_job_is_claimed_once(store: JobStore) -> None:
    job_id = queued(store)
    first = store.claim(job_id, "w1")
    assert first is not None and first.status == "running" and first.attempts == 1
    assert store.claim(job_id, "w2") is None


def test_idempotency_key_returns_the_first_job(store: JobStore) -> None:
    job_id = queued(store, key="k1")
    again, created = store.create(
        kind="finetune", params={}, upload={}, max_attempts=3, idempotency_key="k1"
    )
    assert not created and again.id == job_id


def test_writes_need_the_current_lease(store: JobStore) -> None:
    job = store.claim(queued(store), "w1")
    assert job is not None and job.lease is not None
    with pytest.raises(LeaseLost):
        store.heartbeat(job.id, "not-the-lease")
    with pytest.raises(LeaseLost):
        succeed(store, job.id, "not-the-lease", "v2")
    succeed(store, job.id, job.lease, "v2")
    done = store.get(job.id)
    assert done.status == "succeeded" and done.result_version == "v2"
    assert done.progress is not None and done.progress["fraction"] == 1.0


def test_sweep_requeues_a_silent_job_and_fences_its_old_worker(
    store: JobStore,
) -> None:
    job = store.claim(queued(store), "w1")
    assert job is not None and job.lease is not None
    age_heartbeat(store, job.id, 60)
    assert store.sweep(lease_seconds=30) == [job.id]
    assert store.get(job.id).status == "queued"
    retry = store.claim(job.id, "w2")
    assert retry is not None and retry.attempts == 2
    with pytest.raises(LeaseLost):
        store.heartbeat(job.id, job.lease)  # the stopped worker woke up
    with pytest.raises(LeaseLost):
        store.fail(job.id, job.lease, "late", retry=False)
    assert store.get(job.id).worker == "w2"


def test_sweep_fails_a_job_after_its_last_attempt(store: JobStore) -> None:
    job_id = queued(store, attempts=1)
    assert store.claim(job_id, "w1") is not None
    age_heartbeat(store, job_id, 60)
    assert store.sweep(lease_seconds=30) == []
    job = store.get(job_id)
    assert job.status == "failed"
    assert job.error is not None and "gave up after 1 attempts" in job.error


def test_sweep_resends_a_queued_job_nobody_took(store: JobStore) -> None:
    job_id = queued(store)
    assert store.sweep(lease_seconds=30) == []
    age_heartbeat(store, job_id, 60)
    assert store.sweep(lease_seconds=30) == [job_id]
    assert store.sweep(lease_seconds=30) == []  # not again within the lease


def test_fail_retries_until_attempts_are_used(store: JobStore) -> None:
    job_id = queued(store, attempts=2)
    for expected in ("queued", "failed"):
        job = store.claim(job_id, "w1")
        assert job is not None and job.lease is not None
        assert store.fail(job_id, job.lease, "boom", retry=True) == expected
    assert store.get(job_id).finished_at is not None


def test_cancel_queued_is_immediate_and_running_is_a_request(store: JobStore) -> None:
    waiting = queued(store)
    assert store.cancel(waiting).status == "cancelled"
    assert store.claim(waiting, "w1") is None
    job = store.claim(queued(store), "w1")
    assert job is not None and job.lease is not None
    assert store.cancel(job.id).status == "running"
    assert store.heartbeat(job.id, job.lease) is True
    store.cancelled(job.id, job.lease)
    assert store.get(job.id).status == "cancelled"


def test_recent_lists_newest_first_and_counts_active(store: JobStore) -> None:
    first = queued(store)
    time.sleep(0.01)
    second = queued(store)
    assert [j.id for j in store.recent()] == [second, first]
    assert active_jobs(store) == 2
    store.cancel(first)
    assert [j.id for j in store.recent(status="cancelled")] == [first]
    assert active_jobs(store) == 1


def test_submissions_are_counted_per_submitter(store: JobStore) -> None:
    for submitter in ("key-a", "key-a", "key-b"):
        store.create(
            kind="finetune", params={}, upload={}, max_attempts=1, submitter=submitter
        )
    two_per_hour = SubmissionLimits(max_active=100, per_hour=2)
    with pytest.raises(LimitReached) as too_many:
        store.check_limits("key-a", two_per_hour)
    assert too_many.value.kind == "rate" and too_many.value.count == 2
    store.check_limits("key-b", two_per_hour)
    # Submissions older than the window no longer count.
    run_sql(store, "UPDATE jobs SET created_at = created_at - 7200", ())
    store.check_limits("key-a", two_per_hour)


def test_a_table_from_before_the_submitter_column_gains_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA.replace(",\n    submitter TEXT", ""))
        assert "submitter" not in {r[1] for r in db.execute("PRAGMA table_info(jobs)")}
    JobStore(path)
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    assert "submitter" in columns


def test_sweep_cancels_a_job_whose_worker_died_with_a_cancel_pending(
    store: JobStore,
) -> None:
    job = store.claim(queued(store), "w1")
    assert job is not None
    store.cancel(job.id)
    age_heartbeat(store, job.id, 60)
    assert store.sweep(lease_seconds=30) == []
    swept = store.get(job.id)
    assert swept.status == "cancelled" and swept.error == "cancelled by request"
    assert store.claim(job.id, "w2") is None


def test_sweep_fails_an_attempt_past_the_time_limit_though_it_beats(
    store: JobStore,
) -> None:
    job = store.claim(queued(store), "w1")
    assert job is not None and job.lease is not None
    run_sql(
        store,
        "UPDATE jobs SET attempt_started_at = attempt_started_at - 100 WHERE id = ?",
        (job.id,),
    )
    store.heartbeat(job.id, job.lease)
    assert store.sweep(lease_seconds=30, time_limit=100) == []
    assert store.get(job.id).status == "running"
    assert store.sweep(lease_seconds=30, time_limit=60) == []
    swept = store.get(job.id)
    assert swept.status == "failed" and swept.attempts == 1
    assert swept.error is not None and "WORDVEC_JOB_TIME_LIMIT" in swept.error
    with pytest.raises(LeaseLost):
        store.heartbeat(job.id, job.lease)


def test_limits_are_checked_in_the_insert_and_refuse_past_them(
    store: JobStore,
) -> None:
    limits = SubmissionLimits(max_active=2, per_hour=3)

    def submit() -> str:
        job, _ = store.create(
            kind="finetune",
            params={},
            upload={},
            max_attempts=1,
            submitter="key-a",
            limits=limits,
        )
        return job.id

    first = submit()
    submit()
    with pytest.raises(LimitReached) as queue_full:
        submit()
    assert queue_full.value.kind == "queue" and queue_full.value.retry_after == 30
    store.cancel(first)
    submit()
    with pytest.raises(LimitReached) as too_many:
        store.check_limits("key-a", limits)
    assert too_many.value.kind == "rate" and too_many.value.count == 3
    assert 3590 <= too_many.value.retry_after <= 3600
    assert len(store.recent()) == 3


def test_a_postgres_table_from_before_attempt_started_at_gains_it(
    postgres_url: str, tmp_path: Path
) -> None:
    old = table_ddl("DOUBLE PRECISION").replace(
        ",\n    attempt_started_at DOUBLE PRECISION", ""
    )
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(old)
    store = JobStore(tmp_path / "unused.db", database_url=postgres_url)
    job = store.claim(queued(store), "w1")
    assert job is not None
    with psycopg.connect(postgres_url) as db:
        rows = db.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'jobs'"
        ).fetchall()
    assert set(ADDED_COLUMNS) <= {row[0] for row in rows}
    assert not (tmp_path / "unused.db").exists()


def test_concurrent_submissions_never_pass_the_queue_limit(store: JobStore) -> None:
    limits = SubmissionLimits(max_active=3, per_hour=100)
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def submit() -> None:
        # A store per thread, as separate API processes have.
        mine = JobStore(store.path, database_url=_url_of(store))
        start.wait()
        try:
            mine.create(
                kind="finetune", params={}, upload={}, max_attempts=1, limits=limits
            )
            outcomes.append("created")
        except LimitReached as exc:
            outcomes.append(exc.kind)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created"] * 3 + ["queue"] * 5
    assert active_jobs(store) == 3


def _url_of(store: JobStore) -> str | None:
    return getattr(store.database, "url", None)


def test_upload_owners_names_the_job_of_every_upload(store: JobStore) -> None:
    def with_upload(job_id: str) -> str:
        upload = {"file": f"{job_id}.txt"}
        store.create(
            kind="finetune", params={}, upload=upload, max_attempts=1, job_id=job_id
        )
        return job_id

    waiting, done = with_upload("a" * 32), with_upload("b" * 32)
    store.create(kind="finetune", params={}, upload={}, max_attempts=1)
    job = store.claim(done, "w1")
    assert job is not None and job.lease is not None
    succeed(store, done, job.lease, "v2")
    finished_at = store.get(done).finished_at
    owners = store.upload_owners()
    assert owners == {
        f"{waiting}.txt": UploadOwner(waiting, "queued", None),
        f"{done}.txt": UploadOwner(done, "succeeded", finished_at),
    }
    assert owners[f"{done}.txt"].terminal and not owners[f"{waiting}.txt"].terminal


def test_postgres_start_up_takes_no_table_lock_when_the_schema_is_complete(
    postgres_url: str, tmp_path: Path
) -> None:
    store = JobStore(tmp_path / "unused.db", database_url=postgres_url)
    job_id = queued(store)
    with psycopg.connect(postgres_url) as holder:
        holder.execute("LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE")
        # Any ALTER TABLE or CREATE INDEX would wait for the holder and give
        # up after the lock wait.
        again = JobStore(tmp_path / "unused.db", database_url=postgres_url, lock_wait=1)
        assert again.get(job_id).status == "queued"


def test_a_postgres_table_missing_an_index_gains_it(
    postgres_url: str, tmp_path: Path
) -> None:
    JobStore(tmp_path / "unused.db", database_url=postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("DROP INDEX jobs_submitter")
    JobStore(tmp_path / "unused.db", database_url=postgres_url)
    with psycopg.connect(postgres_url) as db:
        rows = db.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'jobs'"
        ).fetchall()
    assert set(INDEXES) <= {row[0] for row in rows}


def test_a_write_that_waits_out_a_held_sqlite_lock_is_job_table_busy(
    tmp_path: Path,
) -> None:
    store = JobStore(tmp_path / "jobs.db", lock_wait=0.2)
    holder = sqlite3.connect(tmp_path / "jobs.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(JobTableBusy, match="stayed locked"):
            queued(store)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert queued(store)
