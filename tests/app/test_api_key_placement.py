"""Where the API key may travel: only in `Authorization: Bearer`. A key-like
query parameter is refused on every route, read or write, over real HTTP;
the OpenAPI document names the bearer scheme on exactly the routes that
check the key (tests/app/test_api_key_coverage.py finds those routes)."""

import httpx
import pytest

from app.core.middleware import QUERY_KEY_NAMES
from app.main import create_app
from tests.app.test_api_key_coverage import mutating_routes

SECRET = "s3cret-in-the-url"


@pytest.mark.parametrize("name", [*QUERY_KEY_NAMES, "API_KEY"])
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/similar?word=king"), ("POST", "/finetune"), ("GET", "/health")],
)
def test_key_in_the_query_string_returns_400_problem_on_any_route(
    server_url: str, method: str, path: str, name: str
) -> None:
    separator = "&" if "?" in path else "?"
    url = f"{server_url}{path}{separator}{name}={SECRET}"
    response = httpx.request(method, url, content=b"king queen " * 20)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "/problems/key-in-query"
    assert name in body["detail"] and "Authorization: Bearer" in body["detail"]
    assert SECRET not in response.text


def test_ordinary_query_parameters_are_not_taken_for_keys(server_url: str) -> None:
    response = httpx.get(f"{server_url}/vocabulary", params={"prefix": "ki"})
    assert response.status_code == 200, response.text
    assert "king" in [entry["word"] for entry in response.json()["words"]]


def test_openapi_declares_bearer_auth_on_exactly_the_key_routes() -> None:
    document = create_app().openapi()
    schemes = document["components"]["securitySchemes"]
    assert [scheme["scheme"] for scheme in schemes.values()] == ["bearer"]
    secured = sorted(
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if operation.get("security")
    )
    assert secured == mutating_routes()
