"""Shedding load: past a number of requests in progress, a worker answers 503
at once instead of queueing more work behind the ones it cannot finish.

A pile-up helps nobody: every queued request waits longer than its client
will, and the worker's memory grows with the queue. The limit counts this
process's requests only (each uvicorn worker has its own); health and
metrics stay exempt so that probes see the truth while the API sheds.

TODO: a refusal waits for the same event loop and GIL as the requests being
answered, so under heavy load a 503 takes hundreds of milliseconds
(RELIABILITY.md); refusing in a front proxy with a connection limit would
make it immediate.
"""

import json
import logging

from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

EXEMPT_PATHS = frozenset({"/health", "/health/live", "/metrics"})


class LoadShedding:
    """ASGI middleware: 503 with Retry-After when `limit` requests are running."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_progress = 0
        self._problem = {
            "type": "/problems/overloaded",
            "title": "Overloaded",
            "status": 503,
            "detail": f"this worker is already answering {limit} requests "
            "(WORDVEC_MAX_CONCURRENT_REQUESTS); retry in a second",
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if self.in_progress >= self.limit:
            await self._refuse(scope["path"], send)
            return
        self.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1

    async def _refuse(self, path: str, send: Send) -> None:
        body = json.dumps({**self._problem, "instance": path}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", b"1"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
