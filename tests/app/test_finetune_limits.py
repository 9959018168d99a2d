"""Limits on POST /finetune, through the real app on a real data directory
(no worker: the jobs stay queued)."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings, get_settings
from app.main import create_app
from app.registry import ModelRegistry
from tests.app.conftest import add_version

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
