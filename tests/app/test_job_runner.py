"""One process, real parts: JobRunner attempts against a real registry and job
table, with a registry that pauses at a chosen step, as a worker stopped
there (SIGSTOP) would, while the lease runs out and another attempt runs,
or while the job table in a real PostgreSQL is locked or unreachable."""

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from app.core.config import Settings
from app.jobs.runner import JobRunner
from app.jobs.store import JobStatus, JobStore
from app.registry import ModelRegistry, VersionInfo
from tests.app.conftest import SMALL_INDEX, corrupt_vectors, write_test_bundle

TEXT = "the king and the queen walked to the palace with the prince and the princess\n"


class PausingRegistry(ModelRegistry):
    """A registry that runs `meanwhile[step]` once, at the start of `step`."""

    def __init__(self, data_dir: Path, meanwhile: dict[str, Callable[[], Any]]):
        super().__init__(data_dir)
        self.meanwhile = dict(meanwhile)

    def _pause(self, step: str) -> None:
        meanwhile = self.meanwhile.pop(step, None)
        if meanwhile is not None:
            meanwhile()

    def check(self, version: str) -> None:
        self._pause("check")
        super().check(version)

    def publish(self, bundle_dir: Path, version: str) -> VersionInfo:
        self._pause("publish")
        return super().publish(bundle_dir, version)

    def activate(
        self, version: str, fence: AbstractContextManager[Any] | None = None
    ) -> None:
        self._pause("activate")
        super().activate(version, fence=fence)

    def delete(self, version: str) -> None:
        self._pause("delete")
        super().delete(version)


class PausingStore(JobStore):
    """A job table that runs `before_fail` once, at the start of `fail`."""

    before_fail: Callable[[], Any] | None = None

    def fail(self, job_id: str, lease: str, error: str, *, retry: bool) -> JobStatus:
        if self.before_fail is not None:
            before_fail, self.before_fail = self.before_fail, None
            before_fail()
        return super().fail(job_id, lease, error, retry=retry)


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    """A data directory whose active version `v1` has training state."""
    registry = ModelRegistry(tmp_path / "data")
    source = write_test_bundle(tmp_path / "source", subword_buckets=1000)
    registry.add(source, version="v1", activate=True, index_config=SMALL_INDEX)
    return registry


@pytest.fixture
def store(registry: ModelRegistry) -> JobStore:
    return JobStore(registry.data_dir / "jobs.db")


def job_settings(registry: ModelRegistry, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": registry.data_dir,
        "job_lease": 30,
        "job_heartbeat_interval": 0.1,
    }
    return Settings(**(values | overrides))


def queue_job(store: JobStore, registry: ModelRegistry, **params: Any) -> str:
    """Queue a one-epoch fine-tune of `v1` as the API would, upload included."""
    job, _ = store.create(
        kind="finetune",
        params={"epochs": 1, "min_count": 1, "activate": True} | params,
        upload={"file": "upload.txt"},
        max_attempts=3,
        base_version="v1",
    )
    (registry.uploads_dir / "upload.txt").write_text(TEXT * 200)
    return job.id


def no_queue(job_id: str) -> None:
    """Stands for the queue: these tests run every attempt themselves."""


def version_dirs(registry: ModelRegistry) -> set[str]:
    return {path.name for path in registry.models_dir.iterdir()}


@pytest.mark.parametrize(
    ("pause_at", "activate"),
    [("publish", True), ("activate", True), ("publish", False)],
)
def test_an_attempt_that_lost_its_lease_leaves_no_version_and_activates_none(
    registry: ModelRegistry, store: JobStore, pause_at: str, activate: bool
) -> None:
    job_id = queue_job(store, registry, activate=activate)
    settings = job_settings(registry)
    successor = JobRunner(settings, ModelRegistry(registry.data_dir), store, no_queue)

    def lease_runs_out_and_another_attempt_finishes() -> None:
        # A negative lease makes every running job's heartbeat look stale.
        assert job_id in store.sweep(-1.0)
        successor.run(job_id)

    stale_registry = PausingRegistry(
        registry.data_dir, {pause_at: lease_runs_out_and_another_attempt_finishes}
    )
    JobRunner(settings, stale_registry, store, no_queue).run(job_id)

    job = store.get(job_id)
    assert job.status == "succeeded" and job.attempts == 2
    assert job.result_version is not None
    assert version_dirs(registry) == {"v1", job.result_version}
    expected_active = job.result_version if activate else "v1"
    assert registry.active_version() == expected_active


def test_a_hang_past_the_time_limit_fails_the_job_and_publishes_nothing(
    registry: ModelRegistry, store: JobStore
) -> None:
    job_id = queue_job(store, registry)
    # A lease much longer than the time limit: the heartbeat, which stops
    # a lease after the limit, cannot be what ends the attempt here.
    settings = job_settings(registry, job_time_limit=0.5, job_lease=2)
    hung, release = threading.Event(), threading.Event()

    def hang() -> None:
        hung.set()
        release.wait(60)

    hanging = PausingRegistry(registry.data_dir, {"check": hang})
    runner = JobRunner(settings, hanging, store, no_queue)
    worker = threading.Thread(target=runner.run, args=(job_id,))
    worker.start()
    try:
        assert hung.wait(30)
        for _ in range(300):
            if store.get(job_id).status != "running":
                break
            store.sweep(settings.job_lease, settings.job_time_limit)
            time.sleep(0.1)
        # Still hung: only the sweep can have ended the job.
        assert not release.is_set() and worker.is_alive()
    finally:
        release.set()
        worker.join()
    job = store.get(job_id)
    assert job.status == "failed" and job.attempts == 1
    assert job.error is not None and "WORDVEC_JOB_TIME_LIMIT" in job.error
    assert version_dirs(registry) == {"v1"}
    assert registry.active_version() == "v1"


def test_a_damaged_base_fails_the_job_at_once_and_publishes_nothing(
    registry: ModelRegistry, store: JobStore
) -> None:
    job_id = queue_job(store, registry)
    corrupt_vectors(registry.path_of("v1"))
    JobRunner(job_settings(registry), registry, store, no_queue).run(job_id)
    job = store.get(job_id)
    assert job.status == "failed" and job.attempts == 1
    assert job.error is not None
    assert "cannot fine-tune base version 'v1'" in job.error
    assert "failed its checks" in job.error
    assert version_dirs(registry) == {"v1"}


@pytest.mark.parametrize(
    ("pause_at", "activate"), [("activate", True), ("publish", False)]
)
def test_a_job_table_locked_at_the_success_step_requeues_and_leaves_no_version(
    registry: ModelRegistry, postgres_url: str, pause_at: str, activate: bool
) -> None:
    # A short lock wait, so the success step gives up while the lock is held.
    store = JobStore(
        registry.data_dir / "unused.db", database_url=postgres_url, lock_wait=1
    )
    job_id = queue_job(store, registry, activate=activate)
    holder = psycopg.connect(postgres_url)

    def lock_the_table() -> None:
        holder.execute("LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE")

    try:
        # The lock is freed once the attempt deletes its version, so that
        # the attempt can record its end.
        steps = {pause_at: lock_the_table, "delete": holder.rollback}
        locked_registry = PausingRegistry(registry.data_dir, steps)
        settings = job_settings(registry)
        JobRunner(settings, locked_registry, store, no_queue).run(job_id)
    finally:
        holder.close()

    job = store.get(job_id)
    assert job.status == "queued" and job.attempts == 1
    assert job.error is not None and "lock on the job table" in job.error
    assert job.result_version is None
    assert version_dirs(registry) == {"v1"}
    assert registry.active_version() == "v1"
    assert not locked_registry.meanwhile  # the version was deleted by the attempt

    JobRunner(settings, registry, store, no_queue).run(job_id)
    job = store.get(job_id)
    assert job.status == "succeeded" and job.attempts == 2
    assert version_dirs(registry) == {"v1", job.result_version}


def test_a_job_database_outage_during_an_attempt_retries_the_job(
    registry: ModelRegistry, postgres_server: str, postgres_url: str
) -> None:
    store = PausingStore(registry.data_dir / "unused.db", database_url=postgres_url)
    job_id = queue_job(store, registry)
    name = postgres_url.rsplit("/", 1)[1]

    def allow_connections(allowed: bool) -> None:
        with psycopg.connect(postgres_server, autocommit=True) as db:
            db.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {allowed}")

    # Down from the base check, so recording the base version fails; back
    # before the attempt records its end.
    outage = PausingRegistry(
        registry.data_dir, {"check": lambda: allow_connections(False)}
    )
    store.before_fail = lambda: allow_connections(True)
    settings = job_settings(registry)
    JobRunner(settings, outage, store, no_queue).run(job_id)

    job = store.get(job_id)
    assert job.status == "queued" and job.attempts == 1
    assert job.error == "the job database could not be reached during attempt 1"
    assert version_dirs(registry) == {"v1"}

    JobRunner(settings, registry, store, no_queue).run(job_id)
    job = store.get(job_id)
    assert job.status == "succeeded" and job.attempts == 2


def test_a_new_version_refused_by_activation_is_deleted_and_fails_the_job(
    registry: ModelRegistry, store: JobStore
) -> None:
    job_id = queue_job(store, registry)

    def damage_the_new_version() -> None:
        (new,) = version_dirs(registry) - {"v1"}
        corrupt_vectors(registry.path_of(new))

    damaging = PausingRegistry(registry.data_dir, {"activate": damage_the_new_version})
    JobRunner(job_settings(registry), damaging, store, no_queue).run(job_id)
    job = store.get(job_id)
    assert job.status == "failed" and job.attempts == 1
    assert job.error is not None
    assert "failed activation's checks" in job.error and "was deleted" in job.error
    assert version_dirs(registry) == {"v1"}
    assert registry.active_version() == "v1"
