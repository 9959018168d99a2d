"""The ASGI middleware around every request: metrics, the body-size cap,
the refusal of API keys in the query string, the `X-Worker-Pid` header and
the last-resort conversion of an unexpected exception into a 500 problem.

It is plain ASGI rather than Starlette's BaseHTTPMiddleware, which would
copy each response through an extra task and stream.
"""

import logging
import os
import time
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import ApiError, problem_response
from app.core.metrics import observe_request

logger = logging.getLogger(__name__)

# Query parameter names that carry a credential by common convention. No
# route takes a parameter of these names, so refusing them costs nothing.
QUERY_KEY_NAMES = ("api_key", "apikey", "key", "token", "access_token")

# Which server worker process answered: with several uvicorn workers, it
# tells a client (or a load test) whose model version a response reflects.
# /health shows the same pid.
WORKER_PID_HEADER = b"x-worker-pid"


class KeyInQuery(ApiError):
    status = 400
    type = "/problems/key-in-query"
    title = "API key in the URL"


class ServiceMiddleware:
    """Count and time each HTTP request by route template, refuse bodies over
    the `max_body_bytes` setting with 413 and key-like query parameters with
    400 (on every route), name the answering process in `X-Worker-Pid`, and
    answer any exception that escaped the exception handlers with a generic
    500 problem (logged once, here)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        response_started = False

        async def send_and_note_status(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                pid = str(os.getpid()).encode()
                headers = [*message.get("headers", []), (WORKER_PID_HEADER, pid)]
                message = {**message, "headers": headers}
            await send(message)

        limit = _body_limit(scope)
        try:
            if (refused := _key_in_query(scope)) is not None:
                response = problem_response(Request(scope), refused)
                await response(scope, receive, send_and_note_status)
                return
            if limit is not None:
                _check_declared_length(scope, limit)
                receive = _limit_body(receive, limit)
            await self.app(scope, receive, send_and_note_status)
        except Exception as exc:
            if response_started:
                raise
            if not isinstance(exc, HTTPException):
                logger.exception("%s %s failed", scope["method"], scope["path"])
            response = problem_response(Request(scope), exc)
            await response(scope, receive, send_and_note_status)
        finally:
            # Unknown paths share one label so that probing cannot grow the
            # number of time series without bound.
            route = getattr(scope.get("route"), "path", "unmatched")
            observe_request(scope["method"], route, status, time.perf_counter() - start)


def _key_in_query(scope: Scope) -> KeyInQuery | None:
    # A key in a URL leaks into access logs, proxies and browser history, so
    # it is refused whatever the route, and before the route runs.
    query = scope.get("query_string", b"").decode("latin-1")
    # Every such name holds "key" or "token" (unless percent-encoded): most
    # queries skip the parse.
    folded = query.lower()
    if "key" not in folded and "token" not in folded and "%" not in folded:
        return None
    for name, _ in parse_qsl(query, keep_blank_values=True):
        if name.lower() in QUERY_KEY_NAMES:
            return KeyInQuery(
                f"the query parameter '{name}' looks like a credential, and URLs "
                "end up in logs; remove it and send the API key in the header "
                "'Authorization: Bearer KEY' instead"
            )
    return None


# Routes that stream their body to disk and enforce their own, larger limit
# (WORDVEC_MAX_UPLOAD_BYTES) with a message about uploads.
OWN_BODY_LIMIT = frozenset({"/finetune"})


def _body_limit(scope: Scope) -> int | None:
    if scope["path"] in OWN_BODY_LIMIT:
        return None
    # The lifespan puts the resolved settings on app.state before any request.
    settings = getattr(scope["app"].state, "settings", None)
    return settings.max_body_bytes if settings is not None else 1_000_000


def _check_declared_length(scope: Scope, limit: int) -> None:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise _too_large(limit)


def _limit_body(receive: Receive, limit: int) -> Receive:
    received = 0

    async def receive_within_limit() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large(limit)
        return message

    return receive_within_limit


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        413,
        f"The request body exceeds {limit:,} bytes; "
        "send fewer or shorter items per request.",
    )
