"""OpenAPI adjustments: every error response is a problem-details body.

FastAPI documents a route's extra responses as application/json and adds
its own 422 schema; this service answers every error with
application/problem+json and the ProblemDetails shape, so the document is
rewritten to say so (a schema-driven fuzzer checks both).
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.core.middleware import QUERY_KEY_NAMES
from app.core.overload import EXEMPT_PATHS

_PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetails"}
_PROBLEM_SCHEMAS = {"ProblemDetails", "HTTPValidationError"}
_OVERLOADED = {
    "description": "Overloaded: too many requests in progress; see Retry-After",
    "content": {"application/json": {"schema": _PROBLEM_REF}},
}
_KEY_IN_QUERY = {
    "description": "A credential-like query parameter ("
    + ", ".join(QUERY_KEY_NAMES)
    + "): send the API key as `Authorization: Bearer KEY` instead",
    "content": {"application/json": {"schema": _PROBLEM_REF}},
}


def install_problem_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` describe every 4xx/5xx response as a problem."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _rewrite_error_responses(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _is_problem(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref", "").rsplit("/", 1)[-1] in _PROBLEM_SCHEMAS


def _rewrite_error_responses(schema: dict[str, Any]) -> None:
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if path not in EXEMPT_PATHS:
                # Load shedding may answer any other route with a 503.
                responses.setdefault("503", dict(_OVERLOADED))
            # The middleware refuses a key in the URL on every route.
            responses.setdefault("400", dict(_KEY_IN_QUERY))
            for response in operation.get("responses", {}).values():
                if _is_problem(response):
                    response["content"] = {
                        "application/problem+json": {"schema": _PROBLEM_REF}
                    }
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
