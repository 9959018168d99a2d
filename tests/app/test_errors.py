"""Every error is an application/problem+json body, never a 500."""

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.core.config import Settings, get_settings
from app.main import create_app

PROBLEM = "application/problem+json"
# The client fixture is shared by every example, which is what we want here.
settings_for_fuzz = hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def problem(response: Any, status: int) -> dict[str, Any]:
    """Assert `response` is a problem with `status` and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "instance"} <= body.keys()
    return body


def test_unknown_word_returns_404_problem_with_suggestions(client: TestClient) -> None:
    body = problem(client.get("/similar", params={"word": "kinq"}), 404)
    assert body["type"] == "/problems/word-not-in-vocabulary"
    assert body["instance"] == "/similar"
    assert "king" in body["suggestions"]
    assert "'kinq' is not among the 20 words" in body["detail"]


@pytest.mark.parametrize(
    ("method", "url", "payload"),
    [
        ("GET", "/similarity?a=king&b=qzxv", None),
        ("GET", "/analogy?a=man&b=king&c=qzxv", None),
        ("GET", "/vectors/qzxv", None),
        ("POST", "/similar", {"words": ["king", "qzxv"]}),
        ("POST", "/similar", {"positive": ["king"], "negative": ["qzxv"]}),
        ("POST", "/similarity", {"pairs": [{"a": "qzxv", "b": "king"}]}),
    ],
)
def test_unknown_word_anywhere_returns_404_problem(
    client: TestClient, method: str, url: str, payload: Any
) -> None:
    body = problem(client.request(method, url, json=payload), 404)
    assert body["word"] == "qzxv"


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/similar?word=king&k=0", "k"),
        ("/similar?word=king&k=101", "k"),
        ("/similar?word=king&k=ten", "k"),
        ("/similar", "word"),
        ("/similar?word=", "word"),
        ("/similar?word=%20%20", "word"),
        ("/similar?word=" + "a" * 101, "word"),
        ("/analogy?a=man&b=king&c=woman&method=add", "method"),
        ("/analogy?a=man&b=king", "c"),
        ("/vocabulary?limit=0", "limit"),
        ("/vocabulary?limit=1000", "limit"),
    ],
)
def test_bad_query_parameter_returns_422_problem_naming_the_field(
    client: TestClient, url: str, field: str
) -> None:
    body = problem(client.get(url), 422)
    assert body["type"] == "/problems/invalid-request"
    assert field in [e["field"] for e in body["errors"]]


@pytest.mark.parametrize(
    ("url", "payload", "field"),
    [
        ("/similar", {"words": ["king"] * 9}, "words"),
        ("/similar", {"words": ["king"], "k": 101}, "k"),
        ("/similar", {}, "body"),
        ("/similar", {"words": ["king"], "positive": ["queen"]}, "body"),
        ("/similar", {"words": ["king", "b" * 101]}, "words.1"),
        ("/similarity", {"pairs": [{"a": "king", "b": "dog"}] * 9}, "pairs"),
        ("/similarity", {"pairs": []}, "pairs"),
        ("/embed", {"texts": ["king"] * 5}, "texts"),
        ("/embed", {"texts": ["king " * 2001]}, "texts.0"),
        ("/embed", {"texts": ["king"], "weighting": "tfidf"}, "weighting"),
        ("/embed", {"texts": "king"}, "texts"),
    ],
)
def test_bad_body_returns_422_problem_naming_the_field(
    client: TestClient, url: str, payload: Any, field: str
) -> None:
    body = problem(client.post(url, json=payload), 422)
    assert field in [e["field"] for e in body["errors"]]


def test_malformed_json_returns_422_problem(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    body = problem(
        client.post("/similar", content=b'{"words": [', headers=headers), 422
    )
    assert body["errors"][0]["field"] == "body"
    assert "malformed JSON" in body["errors"][0]["message"]


def test_oversized_body_returns_413_problem(client: TestClient) -> None:
    payload = b'{"texts": ["' + b"a" * 1_100_000 + b'"]}'
    headers = {"content-type": "application/json"}
    body = problem(client.post("/embed", content=payload, headers=headers), 413)
    assert body["type"] == "/problems/body-too-large"


def test_unknown_route_returns_404_problem(client: TestClient) -> None:
    body = problem(client.get("/nowhere"), 404)
    assert body["type"] == "/problems/not-found"


def test_wrong_method_returns_405_problem_with_allow_header(client: TestClient) -> None:
    response = client.delete("/similar")
    body = problem(response, 405)
    assert "GET" in response.headers["allow"]
    assert "DELETE" in body["detail"]


def test_unexpected_error_returns_500_problem_without_traceback(
    settings: Settings,
) -> None:
    app = create_app()
    app.dependency_overrides[get_settings] = lambda: settings

    def fail() -> None:
        raise RuntimeError("secret /etc/path")

    app.add_api_route("/fail", fail)
    with TestClient(app) as test_client:
        body = problem(test_client.get("/fail"), 500)
    assert "secret" not in body["detail"]
    assert "Traceback" not in str(body)


def app_without_model(settings: Settings, bundle: str) -> FastAPI:
    """Return an app whose bundle path points at `bundle` (which may not exist)."""
    app = create_app()
    broken = settings.model_copy(update={"bundle_path": bundle})
    app.dependency_overrides[get_settings] = lambda: broken
    return app


def test_queries_return_503_problem_when_the_bundle_fails_to_load(
    settings: Settings, tmp_path: Any
) -> None:
    app = app_without_model(settings, str(tmp_path / "missing"))
    with TestClient(app) as test_client:
        body = problem(test_client.get("/similar", params={"word": "king"}), 503)
        health = test_client.get("/health")
    assert body["type"] == "/problems/model-not-ready"
    assert health.status_code == 503
    assert health.json()["status"] == "error"
    assert health.json()["last_load_error"]


@settings_for_fuzz
@given(word=st.text(max_size=120), k=st.integers(min_value=-5, max_value=200))
def test_any_word_and_k_give_an_answer_or_a_problem_never_500(
    client: TestClient, word: str, k: int
) -> None:
    response = client.get("/similar", params={"word": word, "k": k})
    assert response.status_code in (200, 404, 422)
    if response.status_code != 200:
        assert response.headers["content-type"] == PROBLEM


@settings_for_fuzz
@given(texts=st.lists(st.text(max_size=50), max_size=6), prefix=st.text(max_size=8))
def test_any_texts_and_prefix_give_an_answer_or_a_problem_never_500(
    client: TestClient, texts: list[str], prefix: str
) -> None:
    embedded = client.post("/embed", json={"texts": texts})
    listed = client.get("/vocabulary", params={"prefix": prefix})
    assert embedded.status_code in (200, 422)
    assert listed.status_code in (200, 422)
