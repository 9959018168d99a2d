"""End to end with the job table in PostgreSQL: `wordvec serve --data-dir`
and `wordvec worker --data-dir` on a real server, and the one-line errors
for a bad or unreachable WORDVEC_DATABASE_URL."""

import os
import subprocess
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings, get_settings
from app.jobs.store import JOBS_DB
from app.main import create_app
from tests.app import test_jobs_e2e
from tests.app.conftest import free_port, running_server, wordvec_command
from tests.app.test_jobs_e2e import (
    JOB_ENV,
    finished,
    running_worker,
    submit,
    upload_text,
    wait_for,
)

# The trained base bundle and its data directory, as in the SQLite tests.
base_bundle = test_jobs_e2e.base_bundle
data_dir = test_jobs_e2e.data_dir


def test_finetune_with_the_job_table_in_postgres_reaches_succeeded(
    data_dir: Path, postgres_url: str, tmp_path: Path
) -> None:
    database = {"WORDVEC_DATABASE_URL": postgres_url}
    arguments = ["--data-dir", str(data_dir), "--workers", "2"]
    worker_log = tmp_path / "worker.log"
    with (
        running_server(arguments, tmp_path / "server.log", JOB_ENV | database) as url,
        httpx.Client(base_url=url, timeout=30) as api,
        running_worker(data_dir, worker_log, database),
    ):
        response = submit(api, upload_text(), epochs=2, min_count=3)
        assert response.status_code == 202, response.text
        job = wait_for(api, response.json()["id"], finished, timeout=120)
        assert job["status"] == "succeeded", job["error"]
        assert api.get("/models").json()["active_version"] == job["result_version"]
    with psycopg.connect(postgres_url) as db:
        row = db.execute(
            "SELECT status, result_version FROM jobs WHERE id = %s", (job["id"],)
        ).fetchone()
    assert row == ("succeeded", job["result_version"])
    assert not (data_dir / JOBS_DB).exists()
    assert "WORDVEC_QUEUE_URL=redis://" in worker_log.read_text()


def run_with_database_url(command: str, directory: Path, url: str) -> tuple[int, str]:
    """Run `wordvec COMMAND --data-dir DIRECTORY` with the job table at `url`;
    return its exit status and stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORDVEC_")}
    env["WORDVEC_DATABASE_URL"] = url
    done = subprocess.run(
        [*wordvec_command(), command, "--data-dir", str(directory)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return done.returncode, done.stderr


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_database_url_of_another_kind_is_one_line_exit_2(
    command: str, tmp_path: Path
) -> None:
    status, stderr = run_with_database_url(
        command, tmp_path, "mysql://user:secret@db/jobs"
    )
    assert status == 2
    assert stderr.startswith("wordvec: error: invalid setting: WORDVEC_DATABASE_URL")
    assert "postgresql://" in stderr and "secret" not in stderr
    assert len(stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_an_unreachable_database_is_one_line_exit_2(
    command: str, tmp_path: Path
) -> None:
    url = f"postgresql://wordvec:secret@127.0.0.1:{free_port()}/jobs"
    status, stderr = run_with_database_url(command, tmp_path, url)
    assert status == 2
    # Log lines may come first (no active version yet); the error is one line.
    error = stderr.strip().splitlines()[-1]
    assert error.startswith("wordvec: error: cannot connect to the job database")
    assert "WORDVEC_DATABASE_URL" in error and "secret" not in stderr
    assert "Traceback" not in stderr


def test_a_job_table_gone_away_answers_503_problem(
    postgres_server: str, postgres_url: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url)
    app = create_app()
    app.dependency_overrides[get_settings] = lambda: settings
    name = postgres_url.rsplit("/", 1)[1]
    with TestClient(app) as client:
        assert client.get("/jobs").status_code == 200
        with psycopg.connect(postgres_server, autocommit=True) as db:
            db.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        response = client.get("/jobs")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/job-table-unavailable"
    assert "postgresql" not in problem["detail"]
