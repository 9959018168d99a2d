"""Models, health, metrics, OpenAPI and model swapping."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.cli import main
from app.core.config import Settings, get_settings
from app.main import create_app
from app.model_holder import ModelHolder
from app.registry import ModelRegistry
from index.search import VectorIndex
from tests.app.conftest import MODEL_VERSION, add_version, write_test_bundle


def test_models_lists_the_served_model_as_active(client: TestClient) -> None:
    body = client.get("/models").json()
    assert body["active_version"] == MODEL_VERSION
    (model,) = body["models"]
    assert model["active"] is True
    assert (model["vocab_size"], model["dim"]) == (20, 16)
    assert model["source"] == "trained"
    assert "kind" in model["index"]
    assert "wordsim353" in model["evaluation"]


def test_models_index_has_one_shape_with_a_bundle_or_a_data_directory(
    client: TestClient, registry: ModelRegistry
) -> None:
    (served,) = client.get("/models").json()["models"]
    add_version(registry, "v1", activate=True)
    with TestClient(create_app(Settings(data_dir=registry.data_dir))) as listing:
        (published,) = listing.get("/models").json()["models"]
    assert served["index"].keys() == published["index"].keys()
    # The session bundle has no index: searched exactly, built at load.
    assert served["index"]["built_at_load"] is True
    assert served["index"]["recall_at_10"] == 1.0
    assert published["index"]["kind"] == "flat"
    assert published["index"]["recall_at_10"] == 1.0
    assert published["index"]["built_at"] is not None


def test_models_lists_each_version_with_its_whole_manifest(
    registry: ModelRegistry,
) -> None:
    add_version(registry, "v1", activate=True)
    add_version(registry, "v2")
    with TestClient(create_app(Settings(data_dir=registry.data_dir))) as listing:
        models = listing.get("/models").json()["models"]
        short = listing.get("/models", params={"summary": "true"}).json()["models"]
        single = {m["version"]: listing.get(f"/models/{m['version']}") for m in models}
    assert [m["version"] for m in models] == ["v1", "v2"]
    for model in models:
        # The manifest GET /models/{version} shows, less its `active` flag.
        whole = single[model["version"]].json()
        assert model["active"] is whole.pop("active")
        assert model["manifest"] == whole
        assert model["manifest"]["files"]
    # The short list: the same summaries without the manifests.
    assert [m["manifest"] for m in short] == [None, None]
    assert [{**m, "manifest": None} for m in models] == short


def test_models_of_a_single_bundle_carry_its_manifest(client: TestClient) -> None:
    (model,) = client.get("/models").json()["models"]
    assert model["manifest"] == {
        k: v
        for k, v in client.get(f"/models/{MODEL_VERSION}").json().items()
        if k != "active"
    }
    (short,) = client.get("/models?summary=1").json()["models"]
    assert short["manifest"] is None and short["version"] == MODEL_VERSION


def test_models_summary_that_is_not_a_boolean_returns_422_problem(
    client: TestClient,
) -> None:
    response = client.get("/models", params={"summary": "maybe"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "summary"


def test_health_is_ready_once_the_model_is_loaded(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "status": "ok",
        "model_version": MODEL_VERSION,
        "active_version": None,  # no data directory
        "ready": True,
        "last_load_error": None,
        "worker_pid": body["worker_pid"],
    }
    assert isinstance(body["worker_pid"], int)


def test_liveness_answers_without_a_model(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "alive"}


def test_metrics_count_requests_by_route_template(bundle_path: Path) -> None:
    # A fresh app: the model gauge is per process, and other tests' apps in
    # this process serve other versions.
    with TestClient(create_app(Settings(bundle_path=bundle_path))) as client:
        client.get("/vectors/king")
        text = client.get("/metrics").text
    assert 'route="/vectors/{word}"' in text
    assert "wordvec_http_request_duration_seconds_bucket" in text
    assert f'wordvec_model_info{{model_version="{MODEL_VERSION}"}} 1.0' in text


def test_openapi_documents_errors_as_problem_details(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    responses = schema["paths"]["/similar"]["get"]["responses"]
    assert set(responses) >= {"200", "404", "422", "503"}
    assert "application/problem+json" in responses["404"]["content"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_docs_page_is_served(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()


def test_swap_serves_new_requests_from_the_new_model_only(
    bundle_path: Path, tmp_path: Path
) -> None:
    holder = ModelHolder()
    holder.load(bundle_path)
    in_flight = holder.current
    newer = VectorIndex.load(write_test_bundle(tmp_path / "v2", version="test-v2"))
    replaced = holder.swap(newer)
    assert replaced is in_flight
    assert holder.current.version == "test-v2"
    # The request that took the old model still gets answers from it.
    assert in_flight.version == MODEL_VERSION
    assert in_flight.neighbours("king", 1)


def test_settings_are_read_from_wordvec_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WORDVEC_MAX_K", "7")
    monkeypatch.setenv("WORDVEC_BUNDLE_PATH", str(tmp_path))
    settings = Settings()
    assert settings.max_k == 7
    assert settings.bundle_path == tmp_path


def test_a_bad_setting_ends_a_command_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORDVEC_MAX_K", "0")
    # `worker --data-dir` exports the directory for its settings; let
    # monkeypatch take it back so later tests in this process do not see it.
    monkeypatch.setenv("WORDVEC_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert main(["worker", "--data-dir", str(tmp_path)]) == 2
    finally:
        get_settings.cache_clear()
    error = capsys.readouterr().err
    assert error.startswith("wordvec: error: invalid setting: WORDVEC_MAX_K")
    assert "Traceback" not in error
