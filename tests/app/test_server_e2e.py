"""End to end: `wordvec serve` under real uvicorn, called over HTTP with httpx."""

from typing import Any

import httpx
import pytest

from tests.app.conftest import MODEL_VERSION

PROBLEM = "application/problem+json"

QUERIES: list[tuple[str, str, Any]] = [
    ("GET", "/similar?word=king&k=3", None),
    ("POST", "/similar", {"words": ["king", "dog"], "k": 2}),
    ("POST", "/similar", {"positive": ["king", "woman"], "negative": ["man"]}),
    ("GET", "/similarity?a=king&b=queen", None),
    ("POST", "/similarity", {"pairs": [{"a": "king", "b": "queen"}]}),
    ("GET", "/analogy?a=man&b=king&c=woman&k=2", None),
    ("GET", "/analogy?a=man&b=king&c=woman&method=3cosmul", None),
    ("POST", "/embed", {"texts": ["the king", "the qzxv"], "weighting": "sif"}),
    ("GET", "/vectors/king", None),
    ("GET", "/vocabulary?prefix=pr&limit=5", None),
]

PROBLEMS: list[tuple[str, str, Any, int]] = [
    ("GET", "/similar?word=kinq", None, 404),
    ("GET", "/similar?word=king&k=0", None, 422),
    ("GET", "/similar?word=king&k=101", None, 422),
    ("GET", "/similar", None, 422),
    ("GET", "/similar?word=" + "a" * 101, None, 422),
    ("POST", "/similar", {"words": ["king"] * 9}, 422),
    ("POST", "/embed", {"texts": []}, 422),
    ("GET", "/no/such/route", None, 404),
    ("PUT", "/similarity", None, 405),
]


@pytest.fixture(scope="module")
def http(server_url: str) -> Any:
    with httpx.Client(base_url=server_url, timeout=10) as client:
        yield client


@pytest.mark.parametrize(("method", "url", "payload"), QUERIES)
def test_every_query_endpoint_answers_with_model_version(
    http: httpx.Client, method: str, url: str, payload: Any
) -> None:
    response = http.request(method, url, json=payload)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["model_version"] == MODEL_VERSION


@pytest.mark.parametrize(("method", "url", "payload", "status"), PROBLEMS)
def test_every_documented_error_is_a_problem_over_http(
    http: httpx.Client, method: str, url: str, payload: Any, status: int
) -> None:
    response = http.request(method, url, json=payload)
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["status"] == status


def test_unknown_word_over_http_returns_404_problem_with_suggestions(
    http: httpx.Client,
) -> None:
    body = http.get("/similar", params={"word": "quen"}).json()
    assert body["type"] == "/problems/word-not-in-vocabulary"
    assert "queen" in body["suggestions"]


def test_malformed_json_over_http_returns_422_problem(http: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    response = http.post("/similarity", content=b"{'pairs': ", headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["field"] == "body"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/similar", "GET, POST"),
        ("PUT", "/similarity", "GET, POST"),
        ("POST", "/analogy", "GET"),
    ],
)
def test_method_not_allowed_names_every_method_the_path_accepts(
    http: httpx.Client, method: str, path: str, allowed: str
) -> None:
    response = http.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"].endswith(f"use {allowed}.")


def test_models_and_health_over_http_name_the_served_version(
    http: httpx.Client,
) -> None:
    assert http.get("/models").json()["active_version"] == MODEL_VERSION
    health = http.get("/health")
    assert health.status_code == 200
    assert health.json()["model_version"] == MODEL_VERSION
    assert http.get("/health/live").status_code == 200


def test_metrics_over_http_count_requests_of_every_worker(http: httpx.Client) -> None:
    for _ in range(4):
        http.get("/similar", params={"word": "queen"})
    text = http.get("/metrics").text
    assert (
        'wordvec_http_requests_total{method="GET",route="/similar",status="200"}'
        in (text)
    )
    assert f'model_version="{MODEL_VERSION}"' in text


def test_docs_and_openapi_are_served(http: httpx.Client) -> None:
    assert http.get("/docs").status_code == 200
    schema = http.get("/openapi.json").json()
    assert {"/similar", "/similarity", "/analogy", "/embed", "/models"} <= set(
        schema["paths"]
    )
