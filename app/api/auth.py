"""The API key that guards the endpoints which change state.

With `WORDVEC_API_KEY` set, fine-tune, cancel, activate and delete need
`Authorization: Bearer <key>`; without it they are open (a local or
trusted deployment). Keys are compared in constant time and never logged,
and a key in the query string is refused: URLs end up in access logs.
"""

import hmac
import logging
import re
from typing import Annotated

from fastapi import Depends, Request

from app.api.deps import SettingsDep
from app.core.errors import ApiError

QUERY_KEY_NAMES = ("api_key", "apikey", "key", "token", "access_token")
_KEY_NAMES_PATTERN = "|".join(QUERY_KEY_NAMES)
_QUERY_KEY_VALUE = re.compile(rf"([?&](?:{_KEY_NAMES_PATTERN})=)[^&\s]*", re.IGNORECASE)


class Unauthorized(ApiError):
    status = 401
    type = "/problems/unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="wordvec"'})


class KeyInQuery(ApiError):
    status = 400
    type = "/problems/key-in-query"
    title = "API key in the URL"


async def require_api_key(request: Request, settings: SettingsDep) -> None:
    """Let the request through if no key is configured or it carries the key.

    Raises Unauthorized (401) for a missing, malformed or wrong key, and
    KeyInQuery (400) when a key-like query parameter is present at all.
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
