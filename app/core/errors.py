"""Errors the service raises on purpose, and the one handler that turns every
error into an RFC 9457 problem-details response (`application/problem+json`).

Routes raise; they never build error responses themselves. The handler
understands four families: `ApiError` (ours), `WordvecError` (from index/ and
training/, `WordNotFound` among them), FastAPI's `RequestValidationError` and
Starlette's `HTTPException` (unknown route, wrong method, body too large).
Anything else becomes a generic 500 problem, logged once with its traceback
by `app.core.middleware` and never shown to the caller.
"""

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.jobs.database import DatabaseUnavailable
from app.registry import (
    ActivationRefused,
    InvalidVersionName,
    RegistryError,
    VersionActive,
    VersionExists,
    VersionNotFound,
)
from index.search import WordNotFound
from training.errors import BundleError, WordvecError

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# The methods a 405's Allow header may name, in the order it names them.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Model registry errors (app/registry.py) as problems: status and title.
_REGISTRY_PROBLEMS: dict[type[Exception], tuple[int, str]] = {
    VersionNotFound: (404, "Version not found"),
    InvalidVersionName: (422, "Invalid version name"),
    VersionExists: (409, "Version exists"),
    VersionActive: (409, "Version is active"),
    ActivationRefused: (422, "Activation refused"),
}


class ApiError(Exception):
    """Base of the service's own errors; each subclass fixes type, title, status."""

    status = 400
    type = "/problems/bad-request"
    title = "Bad request"
    headers: dict[str, str] | None = None  # response headers, e.g. Retry-After

    def __init__(
        self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        if headers is not None:
            self.headers = headers


class ModelNotReady(ApiError):
    """No model is loaded yet (still loading, or the load failed)."""

    status = 503
    type = "/problems/model-not-ready"
    title = "Model not ready"


class InvalidInput(ApiError):
    """A value passed the schema but breaks one of the server's limits."""

    status = 422
    type = "/problems/invalid-request"
    title = "Invalid request"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(
            f"{field}: {message}", errors=[{"field": field, "message": message}]
        )


def problem_response(request: Request, exc: Exception) -> JSONResponse:
    """Return the problem-details response for any exception raised by a request."""
    status, body = _problem_body(request, exc)
    body.setdefault("instance", request.url.path)
    headers = None
    if status == 405:
        headers = {"Allow": _allowed_methods(request, exc)}
    elif isinstance(exc, ApiError):
        headers = exc.headers
    return JSONResponse(
        body, status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


async def problem_handler(request: Request, exc: Exception) -> JSONResponse:
    """The exception handler registered for every error family (see module doc)."""
    return problem_response(request, exc)


def register_error_handlers(app: FastAPI) -> None:
    """Route every error family of the module doc to `problem_handler`."""
    for family in (
        ApiError,
        WordvecError,
        RequestValidationError,
        StarletteHTTPException,
    ):
        app.add_exception_handler(family, problem_handler)


def _problem_body(request: Request, exc: Exception) -> tuple[int, dict[str, Any]]:
    if isinstance(exc, ApiError):
        return exc.status, _body(
            exc.type, exc.title, exc.status, exc.detail, **exc.extra
        )
    if isinstance(exc, WordNotFound):
        return 404, _word_not_found(request, exc)
    if isinstance(exc, RequestValidationError):
        return 422, _invalid_request(exc.errors())
    if isinstance(exc, StarletteHTTPException):
        body = _http_problem(request, exc)
        return body["status"], body
    if isinstance(exc, RegistryError):
        status, title = _REGISTRY_PROBLEMS.get(type(exc), (503, "Registry unavailable"))
        slug = "/problems/" + title.lower().replace(" ", "-")
        return status, _body(slug, title, status, str(exc))
    if isinstance(exc, BundleError):
        logger.exception("model files failed while answering %s", request.url.path)
        return 503, _body(
            "/problems/model-unavailable",
            "Model unavailable",
            503,
            "The served model's files could not be read; retry later.",
        )
    if isinstance(exc, DatabaseUnavailable):
        logger.error("answering %s: %s", request.url.path, exc)
        return 503, _body(
            "/problems/job-table-unavailable",
            "Job table unavailable",
            503,
            "The job table cannot be reached right now; retry later.",
        )
    if isinstance(exc, WordvecError):
        return 422, _body("/problems/invalid-request", "Invalid request", 422, str(exc))
    return 500, _body(
        "/problems/internal-error",
        "Internal server error",
        500,
        "The server failed to answer this request and has logged why; "
        "retry, or report the time of the request.",
    )


def _body(
    type_: str, title: str, status: int, detail: str, **extra: Any
) -> dict[str, Any]:
    return {"type": type_, "title": title, "status": status, "detail": detail, **extra}


def _word_not_found(request: Request, exc: WordNotFound) -> dict[str, Any]:
    model = getattr(request.state, "model", None)
    among = f"the {model.vocab_size:,} words" if model is not None else "the words"
    detail = f"'{exc.word}' is not among {among} in the vocabulary. "
    if exc.suggestions:
        detail += "Close spellings: " + ", ".join(exc.suggestions) + "."
    else:
        detail += "No vocabulary word is spelled like it; GET /vocabulary lists words."
    return _body(
        "/problems/word-not-in-vocabulary",
        "Word not in vocabulary",
        404,
        detail,
        word=exc.word,
        suggestions=list(exc.suggestions),
    )


def _invalid_request(errors: Sequence[Any]) -> dict[str, Any]:
    fields = [_field_error(error) for error in errors]
    detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return _body(
        "/problems/invalid-request", "Invalid request", 422, detail, errors=fields
    )


def _allowed_methods(request: Request, exc: Exception) -> str:
    """Return the Allow header of a 405: every method some route of this path
    accepts. Starlette names only the first route whose path matched, so
    GET and POST /similar (two routes) would answer `Allow: GET`."""
    # Asking each route about each method, rather than reading their
    # `methods`, also sees through FastAPI's wrappers of included routers.
    routes = getattr(request.app, "routes", ())
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in routes
        )
    ]
    if not allowed:
        headers = getattr(exc, "headers", None) or {}
        return str(headers.get("Allow", ""))
    return ", ".join(allowed)


def _field_error(error: dict[str, Any]) -> dict[str, str]:
    # loc is ("query", "k"), ("body", "words", 3), or ("body", offset) for bad JSON.
    location = [str(part) for part in error.get("loc", ())]
    if error.get("type") == "json_invalid":
        reason = error.get("ctx", {}).get("error", "not valid JSON")
        return {"field": "body", "message": f"malformed JSON: {reason}"}
    field = ".".join(location[1:]) or (location[0] if location else "request")
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    return {"field": field, "message": message}


def _http_problem(request: Request, exc: StarletteHTTPException) -> dict[str, Any]:
    status = exc.status_code
    if status == 404:
        detail = f"There is no endpoint at {request.url.path}; /docs lists them."
        return _body("/problems/not-found", "Not found", 404, detail)
    if status == 405:
        allowed = _allowed_methods(request, exc)
        detail = f"{request.url.path} does not accept {request.method}; use {allowed}."
        return _body("/problems/method-not-allowed", "Method not allowed", 405, detail)
    if status == 413:
        title = "Request body too large"
        return _body("/problems/body-too-large", title, 413, str(exc.detail))
    if status == 400:
        # FastAPI answers 400 for a body it cannot even decode (JSON that
        # is not UTF-8, a broken form); it is a malformed body like bad JSON.
        message = "malformed body: it could not be decoded; send UTF-8 JSON"
        return _body(
            "/problems/invalid-request",
            "Invalid request",
            422,
            f"body: {message}",
            errors=[{"field": "body", "message": message}],
        )
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = f"HTTP {status}"
    slug = "/problems/" + phrase.lower().replace(" ", "-")
    return _body(slug, phrase, status, str(exc.detail))
