"""One process, real parts: JobRunner attempts against a real registry and job
table, with a registry that pauses at a chosen step, as a worker stopped
there (SIGSTOP) would, while the lease runs out and another attempt runs."""

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from app.core.config import Settings
from app.jobs.runner import JobRunner
from app.jobs.store import JobStore
from app.registry import ModelRegistry, VersionInfo
from tests.app.conftest import SMALL_INDEX, corrupt_vectors, write_test_bundle

TEXT = "the king and the queen walked to the palace with the prince and the princess\n"


class PausingRegistry(ModelRegistry):
    """A registry that runs `meanwhile` once, at the start of `pause_at`."""

    def __init__(self, data_dir: Path, pause_at: str, meanwhile: Callable[[], Any]):
        super().__init__(data_dir)
        self.pause_at = pause_at
        self.meanwhile: Callable[[], Any] | None = meanwhile

    def _pause(self, step: str) -> None:
        if step == self.pause_at and self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
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
        registry.data_dir, pause_at, lease_runs_out_and_another_attempt_finishes
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

    hanging = PausingRegistry(registry.data_dir, "check", hang)
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
