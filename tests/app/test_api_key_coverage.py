"""Every state-changing route needs the API key: found by walking the app's
OpenAPI document, so that a route added later cannot slip past the check
unnoticed."""

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings, get_settings
from app.main import create_app
from app.registry import ModelRegistry
from tests.app.conftest import add_version

KEY = "coverage-key-0123456789"
# POST only because a batch does not fit in a query string: these read.
READ_ONLY_POSTS = {"/similar", "/similarity", "/embed"}
MUTATING = {"post", "put", "patch", "delete"}
TEXT = b"the king and the queen walked to the palace with the prince\n" * 40


def mutating_routes() -> list[tuple[str, str]]:
    paths = create_app().openapi()["paths"]
    return sorted(
        (method.upper(), path)
        for path, operations in paths.items()
        if path not in READ_ONLY_POSTS
        for method in operations
        if method in MUTATING
    )


def test_the_walk_finds_the_mutating_routes_we_know() -> None:
    assert set(mutating_routes()) >= {
        ("POST", "/finetune"),
        ("POST", "/jobs/{job_id}/cancel"),
        ("POST", "/models/{version}/activate"),
        ("DELETE", "/models/{version}"),
    }


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}],
    ids=["no key", "wrong key", "no scheme"],
)
@pytest.mark.parametrize(("method", "path"), mutating_routes())
def test_mutating_route_without_the_key_is_refused_and_changes_nothing(
    registry: ModelRegistry, method: str, path: str, headers: dict[str, str]
) -> None:
    add_version(registry, "v1", activate=True)
    add_version(registry, "v2")
    settings = Settings(data_dir=registry.data_dir, api_key=KEY, min_upload_tokens=10)
    app = create_app()
    app.dependency_overrides[get_settings] = lambda: settings
    with TestClient(app) as client:
        queued = client.post(
            "/finetune",
            files={"file": ("a.txt", TEXT)},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert queued.status_code == 202
        before = client.get("/jobs").json()
        # Real targets (the queued job, a version that could be activated or
        # deleted), so that only the key is missing.
        url = path.format(version="v2", job_id=queued.json()["id"])
        response = client.request(
            method, url, headers=headers, files={"file": ("a.txt", TEXT)}
        )
        after = client.get("/jobs").json()
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert KEY not in response.text
    assert registry.active_version() == "v1"
    assert {v.version for v in registry.versions()} == {"v1", "v2"}
    assert after == before and before["jobs"][0]["status"] == "queued"
