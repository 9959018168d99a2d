"""The API key that guards the endpoints which change state.

With `WORDVEC_API_KEY` set, fine-tune, cancel, activate and delete need
`Authorization: Bearer <key>`; without it they are open (a local or
trusted deployment). Keys are compared in constant time and never logged.
A key in the query string is refused on every route, by
`app.core.middleware`: URLs end up in access logs.

The OpenAPI document declares an HTTP bearer scheme and marks the routes
that depend on `require_api_key` as needing it, so /docs shows which routes
need the key and a schema-driven fuzzer can check that they enforce it.
"""

import hmac
import logging
import re
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import SettingsDep
from app.core.errors import ApiError
from app.core.middleware import QUERY_KEY_NAMES, KeyInQuery

_KEY_NAMES_PATTERN = "|".join(QUERY_KEY_NAMES)
_QUERY_KEY_VALUE = re.compile(rf"([?&](?:{_KEY_NAMES_PATTERN})=)[^&\s]*", re.IGNORECASE)


class Unauthorized(ApiError):
    status = 401
    type = "/problems/unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="wordvec"'})


# Documents the scheme only: with auto_error off it never answers by itself,
# so a refusal keeps our 401 problem body and its WWW-Authenticate header.
_BEARER = HTTPBearer(
    scheme_name="bearerAuth",
    description="The server's WORDVEC_API_KEY as `Authorization: Bearer KEY`; "
    "needed only when the server has a key set.",
    auto_error=False,
)
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]


async def require_api_key(
    request: Request, settings: SettingsDep, documented: BearerCredentials
) -> None:
    """Let the request through if no key is configured or it carries the key.

    Raises Unauthorized (401) for a missing, malformed or wrong key, and
    KeyInQuery (400) when a key-like query parameter is present at all (the
    middleware refuses those first; this keeps the route safe without it).
    `documented` only puts the bearer scheme in the OpenAPI document; the
    header is read here, so the checks and messages stay our own.
    """
    for name in QUERY_KEY_NAMES:
        if name in request.query_params:
            raise KeyInQuery(
                f"the query parameter '{name}' looks like a credential; send the "
                "API key as the header 'Authorization: Bearer KEY', never in a URL"
            )
    if settings.api_key is None:
        return
    expected = settings.api_key.get_secret_value().encode()
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized(
            "this endpoint changes state and needs the API key: send the header "
            "'Authorization: Bearer KEY' (the key the server has in WORDVEC_API_KEY)"
        )
    if not hmac.compare_digest(given.strip().encode(), expected):
        raise Unauthorized(
            "the API key is wrong; use the key the server has in WORDVEC_API_KEY"
        )


ApiKeyDep = Annotated[None, Depends(require_api_key)]


class RedactQueryKeys(logging.Filter):
    """Blank the values of key-like query parameters in uvicorn's access log
    lines: the request is refused, but its URL would still be logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _QUERY_KEY_VALUE.sub(r"\1[redacted]", arg)
                if isinstance(arg, str)
                else arg
                for arg in record.args
            )
        return True


def redact_access_log() -> None:
    """Install `RedactQueryKeys` on uvicorn's access logger (once per process)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQueryKeys) for f in access.filters):
        access.addFilter(RedactQueryKeys())
