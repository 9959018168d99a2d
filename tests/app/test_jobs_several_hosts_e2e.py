"""The layout for several machines, on one: the job table in PostgreSQL, the
queue on Redis, two API worker processes and two job workers (as if on two
hosts) sharing one data directory. Real servers and processes throughout."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis

from app.jobs.queue import QUEUE_FILE
from app.jobs.store import JOBS_DB
from tests.app import test_jobs_e2e
from tests.app.conftest import running_server
from tests.app.test_jobs_e2e import (
    JOB_ENV,
    finished,
    running_worker,
    submit,
    upload_text,
    wait_for,
)

base_bundle = test_jobs_e2e.base_bundle
data_dir = test_jobs_e2e.data_dir


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    from tests.app.redis_server import redis_server_binary, running_redis

    binary = redis_server_binary()
    if binary is None:
        pytest.skip("redis-server is not installed; apt-get install redis-server")
    with running_redis(binary) as url:
        yield url


def test_two_jobs_run_through_redis_and_postgres_on_two_workers(
    data_dir: Path, postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    shared = {"WORDVEC_DATABASE_URL": postgres_url, "WORDVEC_QUEUE_URL": redis_url}
    arguments = ["--data-dir", str(data_dir), "--workers", "2"]
    queue = redis.Redis.from_url(redis_url)
    with (
        running_server(arguments, tmp_path / "server.log", JOB_ENV | shared) as url,
        httpx.Client(base_url=url, timeout=30) as api,
    ):
        with ThreadPoolExecutor(2) as pool:
            responses = list(
                pool.map(
                    lambda seed: submit(
                        api, upload_text(seed=seed), epochs=2, min_count=3
                    ),
                    [11, 12],
                )
            )
        assert [r.status_code for r in responses] == [202, 202]
        # No worker runs yet: both messages wait in Redis.
        assert queue.dbsize() > 0
        logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
        with (
            running_worker(data_dir, logs[0], shared),
            running_worker(data_dir, logs[1], shared),
        ):
            jobs = [
                wait_for(api, r.json()["id"], finished, timeout=180) for r in responses
            ]
        assert [job["status"] for job in jobs] == ["succeeded", "succeeded"], [
            job["error"] for job in jobs
        ]
        listed = {m["version"] for m in api.get("/models").json()["models"]}
        assert {job["result_version"] for job in jobs} <= listed
        active = api.get("/models").json()["active_version"]
        assert active in {job["result_version"] for job in jobs}
    # Nothing of the one-host defaults was created in the shared directory.
    assert not (data_dir / JOBS_DB).exists()
    assert not (data_dir / QUEUE_FILE).exists()
    for log in logs:
        assert "WORDVEC_QUEUE_URL=redis://" not in log.read_text()
