"""End to end: fine-tune jobs through `wordvec serve --data-dir` and real
`wordvec worker` processes, over HTTP, with a real SQLite job table and queue."""

import gzip
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.jobs.progress import STAGES
from app.registry import ModelRegistry
from index.build import IndexConfig
from tests.app.conftest import running_server, stop_process, wordvec_command
from tests.conftest import GLUE_WORDS, TOPICS, write_tiny_corpus
from training.config import TrainConfig
from training.trainer import train

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
NEW_WORD = "zorblat"
# Short leases so a killed worker's job is recovered within seconds.
JOB_ENV = {
    "WORDVEC_API_KEY": API_KEY,
    "WORDVEC_RELOAD_INTERVAL": "0.2",
    "WORDVEC_MAX_UPLOAD_BYTES": "1000000",
    "WORDVEC_MIN_UPLOAD_TOKENS": "200",
    "WORDVEC_JOB_LEASE": "3",
    "WORDVEC_JOB_HEARTBEAT_INTERVAL": "0.3",
    "WORDVEC_JOB_MAX_ATTEMPTS": "3",
}


def upload_text(num_sentences: int = 600, seed: int = 1) -> str:
    """Sentences like the base corpus, where NEW_WORD keeps royal company."""
    rng = random.Random(seed)
    royalty = TOPICS["royalty"]
    lines = []
    for _ in range(num_sentences):
        words = [
            rng.choice(royalty) if rng.random() < 0.6 else rng.choice(GLUE_WORDS)
            for _ in range(rng.randint(5, 10))
        ]
        words[rng.randrange(len(words))] = NEW_WORD
        lines.append(" ".join(words) + ".")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def base_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real trained bundle (with training state) of the tiny topic corpus."""
    root = tmp_path_factory.mktemp("jobs")
    corpus = write_tiny_corpus(root / "corpus.txt", num_sentences=3000)
    config = TrainConfig(dim=32, epochs=5, min_count=2, threads=1, seed=3)
    return train(
        [corpus], config, root / "base", progress=False, evaluate=False
    ).bundle_path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, base_bundle: Path) -> Path:
    """A data directory whose active version is the base bundle, `base`.

    The tests share it and one server; each leaves the active version as it
    found it except the last, which activates its fine-tune.
    """
    registry = ModelRegistry(tmp_path_factory.mktemp("jobs") / "data")
    registry.add(
        base_bundle,
        version="base",
        activate=True,
        index_config=IndexConfig(kind="flat", threads=1),
    )
    return registry.data_dir


@contextmanager
def running_worker(
    data_dir: Path, log: Path, env_vars: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `wordvec worker --data-dir DATA_DIR` until the block ends, with
    JOB_ENV and `env_vars` as its settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORDVEC_")}
    env.update(JOB_ENV)
    env.update(env_vars or {})
    command = [*wordvec_command(), "worker", "--data-dir", str(data_dir)]
    with open(log, "ab") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=log_file, env=env)
    try:
        yield process
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def api(data_dir: Path) -> Iterator[httpx.Client]:
    arguments = ["--data-dir", str(data_dir), "--workers", "2"]
    with (
        running_server(arguments, data_dir.parent / "server.log", JOB_ENV) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client


def submit(api: httpx.Client, text: str | bytes, **settings: Any) -> httpx.Response:
    fields = {
        k: str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in settings.items()
    }
    return api.post(
        "/finetune", files={"file": ("upload.txt", text)}, data=fields, headers=AUTH
    )


def wait_for(
    api: httpx.Client,
    job_id: str,
    done: Callable[[dict[str, Any]], bool],
    timeout: float = 60,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/jobs/{job_id}").json()
        if done(job):
            return job
        time.sleep(0.05)
    pytest.fail(f"job {job_id} did not get there in {timeout} s: {job}")


def finished(job: dict[str, Any]) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


def follow(
    api: httpx.Client, job_id: str, timeout: float = 60
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll the job until it finishes; return it and every progress seen."""
    seen: list[dict[str, Any]] = []

    def record(job: dict[str, Any]) -> bool:
        seen.append(job["progress"])
        return finished(job)

    return wait_for(api, job_id, record, timeout), seen


def is_subsequence(items: list[str], of: tuple[str, ...]) -> bool:
    rest = iter(of)
    return all(item in rest for item in items)


def served_version(api: httpx.Client) -> str:
    return str(api.get("/similar", params={"word": "king"}).json()["model_version"])


def job_ids(api: httpx.Client) -> set[str]:
    return {job["id"] for job in api.get("/jobs", params={"limit": 500}).json()["jobs"]}


def test_gzip_body_with_settings_in_the_query_is_accepted(api: httpx.Client) -> None:
    body = gzip.compress(upload_text().encode())
    response = api.post(
        "/finetune?epochs=1&activate=false",
        content=body,
        headers={**AUTH, "Content-Type": "application/gzip"},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["upload"]["compressed"] is True
    assert job["settings"]["activate"] is False and job["settings"]["epochs"] == 1
    api.post(f"/jobs/{job['id']}/cancel", headers=AUTH)


def test_idempotency_key_returns_the_same_job(api: httpx.Client) -> None:
    headers = {**AUTH, "Idempotency-Key": "retry-me-1"}
    text = upload_text()
    first = api.post("/finetune", files={"file": ("a.txt", text)}, headers=headers)
    again = api.post("/finetune", files={"file": ("a.txt", text)}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = api.post(
        "/finetune",
        files={"file": ("b.txt", text + "more words here\n")},
        headers=headers,
    )
    assert other.status_code == 422
    api.post(f"/jobs/{first.json()['id']}/cancel", headers=AUTH)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": API_KEY}, 401),
    ],
)
def test_finetune_without_the_right_key_is_refused_and_changes_nothing(
    api: httpx.Client, headers: dict[str, str], status: int
) -> None:
    before = job_ids(api)
    response = api.post(
        "/finetune", files={"file": ("a.txt", upload_text())}, headers=headers
    )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert API_KEY not in response.text
    assert job_ids(api) == before


def test_key_in_the_query_string_is_refused(api: httpx.Client) -> None:
    response = api.post(
        f"/finetune?api_key={API_KEY}", files={"file": ("a.txt", upload_text())}
    )
    assert response.status_code == 400
    assert API_KEY not in response.text


@pytest.mark.parametrize(
    ("payload", "status", "says"),
    [
        (b"x" * 1_100_000, 413, "limit"),
        ("caf\xe9 ".encode("latin-1") * 400, 422, "UTF-8"),
        (b"", 422, "empty"),
        (b"just a few words\n", 422, "tokens"),
        (b"\x1f\x8b\x08\x00garbage", 422, "gzip"),
    ],
)
def test_bad_uploads_get_a_problem_and_leave_no_file(
    api: httpx.Client, data_dir: Path, payload: bytes, status: int, says: str
) -> None:
    before = job_ids(api), sorted((data_dir / "uploads").iterdir())
    response = submit(api, payload)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert says in response.json()["detail"]
    assert (job_ids(api), sorted((data_dir / "uploads").iterdir())) == before


def test_cancel_a_running_job(
    api: httpx.Client, data_dir: Path, tmp_path: Path
) -> None:
    with running_worker(data_dir, tmp_path / "worker.log"):
        # About 37M words to train: a gzip upload (4.4 MB of text in 0.7 MB,
        # under the 1 MB cap) at the most epochs a job may ask for. The cancel
        # is seen at the next heartbeat and honoured at the next chunk, long
        # before the end; 4.5M words once finished first on an idle machine.
        text = gzip.compress(upload_text(100_000).encode())
        response = submit(api, text, epochs=50, activate=False)
        assert response.status_code == 202, response.text
        job = response.json()
        wait_for(api, job["id"], lambda j: j["status"] == "running")
        response = api.post(f"/jobs/{job['id']}/cancel", headers=AUTH)
        assert response.status_code == 200
        job = wait_for(api, job["id"], finished, timeout=20)
    assert job["status"] == "cancelled"
    assert job["result_version"] is None
    assert served_version(api) == "base"
    again = api.post(f"/jobs/{job['id']}/cancel", headers=AUTH)
    assert again.status_code == 409


def test_cancel_a_queued_job_without_a_worker(api: httpx.Client) -> None:
    job = submit(api, upload_text(), activate=False).json()
    response = api.post(f"/jobs/{job['id']}/cancel", headers=AUTH)
    assert response.json()["status"] == "cancelled"


def test_job_survives_a_worker_killed_mid_run(
    api: httpx.Client, data_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    with running_worker(data_dir, log) as worker:
        # About 2M words: the kill lands within a poll (50 ms) of "running".
        job = submit(api, upload_text(6000), epochs=45, activate=False).json()
        wait_for(api, job["id"], lambda j: j["status"] == "running")
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert api.get(f"/jobs/{job['id']}").json()["status"] == "running"
    assert served_version(api) == "base"
    with running_worker(data_dir, log):
        job = wait_for(api, job["id"], finished, timeout=90)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 2
    assert "stopped sending heartbeats" in (job["error"] or "") or job["error"] is None
    # The killed attempt's half-built bundle stays in staging/ (removed by a
    # worker start once older than any job can run); nothing partial is in
    # models/, which holds exactly the listed versions.
    listed = {m["version"] for m in api.get("/models").json()["models"]}
    assert {p.name for p in (data_dir / "models").iterdir()} == listed


def test_two_jobs_submitted_at_once_each_build_on_the_active_version(
    api: httpx.Client, data_dir: Path, tmp_path: Path
) -> None:
    texts = [upload_text(seed=2), upload_text(seed=3)]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda t: submit(api, t, epochs=2), texts))
    assert [a.status_code for a in answers] == [202, 202]
    assert [a.json()["base_version"] for a in answers] == ["base", "base"]
    with (
        running_worker(data_dir, tmp_path / "worker-1.log"),
        running_worker(data_dir, tmp_path / "worker-2.log"),
    ):
        jobs = [wait_for(api, a.json()["id"], finished, timeout=90) for a in answers]
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded"], jobs
    # Each built on the version active at submission, not on the other's
    # result; the last to finish is the one active.
    assert [j["base_version"] for j in jobs] == ["base", "base"]
    versions = {j["result_version"] for j in jobs}
    listed = {m["version"] for m in api.get("/models").json()["models"]}
    assert versions <= listed and len(versions) == 2
    last = max(jobs, key=lambda j: j["finished_at"])
    assert api.get("/models").json()["active_version"] == last["result_version"]
    # Leave the shared data directory serving `base` for the tests after.
    assert api.post("/models/base/activate", headers=AUTH).status_code == 200
    wait_served(api, "base")


def wait_served(api: httpx.Client, version: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while served_version(api) != version:
        assert time.monotonic() < deadline, f"the server never switched to {version}"
        time.sleep(0.1)


def test_activate_roll_back_and_delete_over_http(
    api: httpx.Client, data_dir: Path, base_bundle: Path
) -> None:
    ModelRegistry(data_dir).add(
        base_bundle, version="copy", index_config=IndexConfig(kind="flat", threads=1)
    )
    assert api.post("/models/copy/activate").status_code == 401
    assert api.post("/models/nope/activate", headers=AUTH).status_code == 404
    response = api.post("/models/copy/activate", headers=AUTH)
    assert response.status_code == 200 and response.json()["active"] is True
    wait_served(api, "copy")
    assert api.get("/models/copy").json()["source"] == "trained"
    assert api.delete("/models/copy", headers=AUTH).status_code == 409
    assert api.post("/models/base/activate", headers=AUTH).status_code == 200
    wait_served(api, "base")
    assert api.delete("/models/copy", headers=AUTH).status_code == 204
    assert api.get("/models/copy").status_code == 404


def test_jobs_endpoints_validate_ids(api: httpx.Client) -> None:
    assert api.get("/jobs/../../etc/passwd").status_code == 404
    assert api.get("/jobs/not-a-job").status_code == 422
    assert api.get("/jobs/" + "0" * 32).status_code == 404


def finished_days_ago(data_dir: Path, job_id: str, days: float) -> None:
    """Move a finished job's end into the past (test only: SQL on jobs.db)."""
    with sqlite3.connect(data_dir / "jobs.db") as db:
        db.execute(
            "UPDATE jobs SET finished_at = ? WHERE id = ?",
            (time.time() - days * 86_400, job_id),
        )


def test_worker_deletes_uploads_of_jobs_finished_past_the_retention(
    api: httpx.Client, data_dir: Path, tmp_path: Path
) -> None:
    old, recent = (submit(api, upload_text(), activate=False).json() for _ in "ab")
    for job in (old, recent):
        assert api.post(f"/jobs/{job['id']}/cancel", headers=AUTH).status_code == 200
    # The default retention is 7 days.
    finished_days_ago(data_dir, old["id"], 8)
    finished_days_ago(data_dir, recent["id"], 6)
    old_file = data_dir / "uploads" / f"{old['id']}.txt"
    assert old_file.exists()
    with running_worker(data_dir, tmp_path / "worker.log"):
        job = wait_for(api, old["id"], lambda j: j["upload_deleted_at"] is not None)
    assert not old_file.exists()
    assert job["status"] == "cancelled" and job["upload"]["bytes"] > 0
    assert (data_dir / "uploads" / f"{recent['id']}.txt").exists()
    assert api.get(f"/jobs/{recent['id']}").json()["upload_deleted_at"] is None
    assert "deleted upload" in (tmp_path / "worker.log").read_text()


def test_finetune_teaches_a_new_word_and_switches_the_server(
    api: httpx.Client, data_dir: Path, tmp_path: Path
) -> None:
    assert api.get("/similar", params={"word": NEW_WORD}).status_code == 404
    with running_worker(data_dir, tmp_path / "worker.log"):
        response = submit(api, upload_text(), epochs=5, min_count=3)
        assert response.status_code == 202, response.text
        job = response.json()
        assert job["status"] == "queued"
        assert response.headers["location"] == f"/jobs/{job['id']}"
        job, seen = follow(api, job["id"])
    assert job["status"] == "succeeded", job["error"]
    # Progress over the whole job: stages in the documented order, a
    # fraction that only grows, and an ETA once the stages are planned.
    stages = [p["stage"] for p in seen if p["stage"] is not None]
    distinct = [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s]
    assert is_subsequence(distinct, STAGES), distinct
    fractions = [p["fraction"] for p in seen]
    assert fractions == sorted(fractions), fractions
    planned = STAGES[STAGES.index("counting") :]
    assert all(p["eta_seconds"] is not None for p in seen if p["stage"] in planned)
    assert (job["progress"]["stage"], job["progress"]["fraction"]) == ("done", 1)
    assert job["progress"]["eta_seconds"] == 0
    assert job["base_version"] == "base" and job["activated"] is True
    assert NEW_WORD in job["new_words"]
    assert job["evaluation_before"] is not None and job["evaluation_after"] is not None
    wait_served(api, job["result_version"])
    answer = api.get("/similar", params={"word": NEW_WORD, "k": 5}).json()
    royal = [n["word"] for n in answer["neighbours"] if n["word"] in TOPICS["royalty"]]
    assert len(royal) >= 3, answer
    models = api.get("/models").json()
    assert models["active_version"] == job["result_version"]
