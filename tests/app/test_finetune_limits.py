"""Limits on POST /finetune, through the real app on a real data directory
(no worker: the jobs stay queued)."""

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings, get_settings
from app.main import create_app
from app.registry import ModelRegistry
from tests.app.conftest import add_version, running_server

KEY = "limits-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
TEXT = "the king and the queen walked to the palace with the prince\n" * 40


def client_for(registry: ModelRegistry, **limits: int) -> TestClient:
    settings = Settings(
        data_dir=registry.data_dir, api_key=KEY, min_upload_tokens=10, **limits
    )
    app = create_app()
    app.dependency_overrides[get_settings] = lambda: settings
    return TestClient(app)


@pytest.fixture
def data(registry: ModelRegistry) -> Iterator[ModelRegistry]:
    add_version(registry, "v1", activate=True)
    yield registry


def submit(client: TestClient) -> int:
    response = client.post("/finetune", files={"file": ("t.txt", TEXT)}, headers=AUTH)
    return response.status_code


def test_fine_tunes_per_hour_are_limited_with_retry_after(data: ModelRegistry) -> None:
    with client_for(data, finetunes_per_hour=2) as client:
        assert [submit(client), submit(client)] == [202, 202]
        response = client.post(
            "/finetune", files={"file": ("t.txt", TEXT)}, headers=AUTH
        )
    assert response.status_code == 429
    assert 3500 <= int(response.headers["retry-after"]) <= 3600
    assert "WORDVEC_FINETUNES_PER_HOUR" in response.json()["detail"]


def test_queued_jobs_are_capped(data: ModelRegistry) -> None:
    with client_for(data, max_queued_jobs=1) as client:
        assert submit(client) == 202
        response = client.post(
            "/finetune", files={"file": ("t.txt", TEXT)}, headers=AUTH
        )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"


def test_no_active_model_is_a_conflict(registry: ModelRegistry) -> None:
    with client_for(registry) as client:
        response = client.post(
            "/finetune", files={"file": ("t.txt", TEXT)}, headers=AUTH
        )
    assert response.status_code == 409
    assert "no active model" in response.json()["detail"]


def test_unknown_base_version_is_not_found(data: ModelRegistry) -> None:
    with client_for(data) as client:
        response = client.post(
            "/finetune?base_version=v9", files={"file": ("t.txt", TEXT)}, headers=AUTH
        )
    assert response.status_code == 404


def test_without_a_data_directory_jobs_are_a_conflict(settings: Settings) -> None:
    app = create_app()
    app.dependency_overrides[get_settings] = lambda: settings
    with TestClient(app) as client:
        assert client.get("/jobs").status_code == 409
        assert client.post("/finetune", content=TEXT).status_code == 409


def test_uploads_are_bounded_by_their_own_limit_not_the_body_limit(
    data: ModelRegistry,
) -> None:
    assert len(TEXT) > 2048
    with client_for(data, max_body_bytes=1024, max_upload_bytes=2048) as client:
        small = client.post("/finetune", content=TEXT[:1500], headers=AUTH)
        large = client.post("/finetune", content=TEXT, headers=AUTH)
        other = client.post("/similar", json={"words": ["king"] * 300})
    assert small.status_code == 202
    assert large.status_code == 413 and "WORDVEC_MAX_UPLOAD_BYTES" in large.text
    assert other.status_code == 413


def slow_body() -> Iterator[bytes]:
    """The upload in ten pieces over about two seconds, so that concurrent
    requests all pass the early limit check before any of them is stored."""
    for _ in range(10):
        yield TEXT.encode()
        time.sleep(0.2)


@pytest.mark.parametrize(
    "limits",
    [
        {"WORDVEC_MAX_QUEUED_JOBS": "1", "WORDVEC_FINETUNES_PER_HOUR": "100"},
        {"WORDVEC_MAX_QUEUED_JOBS": "100", "WORDVEC_FINETUNES_PER_HOUR": "1"},
    ],
    ids=["queue-cap", "rate-limit"],
)
def test_concurrent_uploads_cannot_pass_a_limit_together(
    data: ModelRegistry, tmp_path: Path, limits: dict[str, str]
) -> None:
    env = {"WORDVEC_API_KEY": KEY, "WORDVEC_MIN_UPLOAD_TOKENS": "10", **limits}
    arguments = ["--data-dir", str(data.data_dir)]
    responses: list[httpx.Response] = []

    def post(url: str) -> None:
        headers = {**AUTH, "Content-Type": "text/plain"}
        with httpx.Client(base_url=url, timeout=60) as client:
            responses.append(
                client.post("/finetune", content=slow_body(), headers=headers)
            )

    with running_server(arguments, tmp_path / "server.log", env) as url:
        posts = [threading.Thread(target=post, args=(url,)) for _ in range(5)]
        for thread in posts:
            thread.start()
        for thread in posts:
            thread.join()
        jobs = httpx.get(f"{url}/jobs").json()["jobs"]
    assert sorted(r.status_code for r in responses) == [202, 429, 429, 429, 429]
    for refused in (r for r in responses if r.status_code == 429):
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) >= 1
        assert "WORDVEC_" in refused.json()["detail"]
    assert len(jobs) == 1
    assert [p.name for p in data.uploads_dir.iterdir()] == [f"{jobs[0]['id']}.txt"]
