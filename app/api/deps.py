"""Dependencies and checks the route handlers share: the settings, the model
a request runs on, the server's limits and query-word normalisation (which
follows the model: case-folding or case-keeping)."""

import functools
from collections.abc import Awaitable, Callable, Sized
from typing import Annotated, Any, ParamSpec, TypeVar

import anyio
import anyio.to_thread
import numpy as np
from fastapi import Depends, Request, Response
from pydantic import BaseModel

from app.core.config import Settings
from app.core.errors import InvalidInput
from app.schemas import ProblemDetails
from index.search import VectorIndex

_PROBLEM_TEXT = {
    400: "API key in the URL",
    401: "Missing or wrong API key",
    404: "Word not in vocabulary (with close spellings), or unknown path",
    409: "Conflicts with the server's state",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid parameter or body, or a server limit exceeded",
    429: "Too many requests; see Retry-After",
    503: "No model is loaded yet",
}


def problems(
    *statuses: int, described: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI `responses` entries for these problem statuses,
    each with the default description unless `described` gives another."""
    texts = {**_PROBLEM_TEXT, **(described or {})}
    return {
        status: {"model": ProblemDetails, "description": texts[status]}
        for status in (*statuses, *(described or {}))
    }


P = ParamSpec("P")
R = TypeVar("R")

# Query handlers run on a small pool of their own rather than FastAPI's
# default one (40 threads). They are CPU work in Python around GIL-free FAISS
# calls, so extra threads add no throughput on a worker process; they only
# queue for the GIL with the event loop, and under a flood of heavy batches
# even the load shedder's instant 503 waited its turn for hundreds of
# milliseconds (RELIABILITY.md, "overload"). Other handlers (jobs, uploads,
# model listing) keep the default pool, so a slow fsync cannot hold queries.
_query_threads = 1
_query_limiter: anyio.CapacityLimiter | None = None


def set_query_threads(threads: int) -> None:
    """Size the query pool of this process (WORDVEC_QUERY_THREADS)."""
    global _query_threads, _query_limiter
    _query_threads, _query_limiter = threads, None


def _limiter() -> anyio.CapacityLimiter:
    # Made on first use, inside the running event loop.
    global _query_limiter
    if _query_limiter is None:
        _query_limiter = anyio.CapacityLimiter(_query_threads)
    return _query_limiter


async def run_query(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `fn` on the query pool and return its result."""
    return await anyio.to_thread.run_sync(
        functools.partial(fn, *args, **kwargs), limiter=_limiter()
    )


def query_handler(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Make a plain query handler run on the query pool. FastAPI sees the
    handler's own signature (dependencies and all) through the wrapper."""

    @functools.wraps(fn)
    async def handler(*args: P.args, **kwargs: P.kwargs) -> R:
        return await run_query(fn, *args, **kwargs)

    return handler


async def get_model(request: Request) -> VectorIndex:
    """Return the model this request runs on, taken once at its start.

    Kept on `request.state` too, so the error handler can describe the same
    vocabulary. Raises ModelNotReady (503) while no model is loaded.
    """
    model: VectorIndex = request.app.state.model_holder.current
    request.state.model = model
    return model


async def get_request_settings(request: Request) -> Settings:
    """Return the settings the app started with.

    The lifespan resolves `get_settings` once (honouring a test's
    `dependency_overrides[get_settings]`) and keeps the result on app.state.
    Handlers depend on this coroutine rather than on `get_settings` itself
    because FastAPI runs a plain-function dependency on the threadpool, a
    round trip that cost as much as a whole no-op request when measured.
    """
    settings: Settings = request.app.state.settings
    return settings


def respond(body: BaseModel) -> Response:
    """Return `body` as an application/json response, serialised here.

    A plain-def handler that returns a model has FastAPI validate it again on
    the threadpool (a second round trip); returning a Response skips that.
    The route's `response_model` still documents the shape in OpenAPI.
    """
    return Response(body.model_dump_json(), media_type="application/json")


SettingsDep = Annotated[Settings, Depends(get_request_settings)]
ModelDep = Annotated[VectorIndex, Depends(get_model)]


def check_k(k: int, settings: Settings, field: str = "k") -> None:
    """Raise InvalidInput when `k` exceeds the server's maximum."""
    if k > settings.max_k:
        raise InvalidInput(
            field, f"must be at most {settings.max_k} (the server's maximum k)"
        )


def check_batch(items: Sized, limit: int, field: str) -> None:
    """Raise InvalidInput when a request lists more than `limit` items."""
    if len(items) > limit:
        raise InvalidInput(
            field,
            f"lists {len(items)} items, at most {limit} are allowed per request; "
            "split it into several requests",
        )


def query_word(word: str, settings: Settings, field: str, model: VectorIndex) -> str:
    """Return the spelling `model` answers `word` for (VectorIndex.resolve:
    stripped, case-folded when the model folds case, else found as given or
    in lower, capitalised or upper case). Raises InvalidInput for a word that
    is too long or blank."""
    if len(word) > settings.max_word_length:
        raise InvalidInput(
            field, f"is {len(word)} characters; at most {settings.max_word_length}"
        )
    resolved = model.resolve(word)
    if not resolved:
        raise InvalidInput(field, "is blank; give a word")
    return resolved


def query_words(
    words: list[str], settings: Settings, field: str, model: VectorIndex
) -> list[str]:
    """Return each of `words` resolved by `query_word`, named field.0, field.1..."""
    check_batch(words, settings.max_batch, field)
    return [
        query_word(word, settings, f"{field}.{i}", model)
        for i, word in enumerate(words)
    ]


def unit_vector_list(vector: np.ndarray) -> list[float]:
    """Return a float32 vector as JSON-ready floats rounded to 6 decimals.

    Rounding in float64 keeps the JSON short ("0.1", not the float32 value
    0.10000000149...) while losing nothing float32 held to begin with.
    """
    return [round(x, 6) for x in vector.astype(np.float64).tolist()]
