"""Nearest words: GET /similar for one word, POST /similar for batches and
for positive/negative word lists."""

from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from pydantic_core import to_json

from app.api.deps import (
    ModelDep,
    SettingsDep,
    check_k,
    get_model,
    get_request_settings,
    problems,
    query_handler,
    query_word,
    query_words,
    respond,
    run_query,
)
from app.schemas import (
    MostSimilarResponse,
    Neighbour,
    NeighboursResponse,
    SimilarBatchResponse,
    SimilarQuery,
)
from index import search
from index.search import VectorIndex

router = APIRouter(tags=["queries"])

WordParam = Annotated[
    str,
    Query(
        min_length=1,
        description="a word; case-folded when the model folds case (docs/api.md)",
    ),
]
KParam = Annotated[
    int, Query(ge=1, description="how many neighbours, up to the server's max_k")
]


def neighbour_list(neighbours: Sequence[search.Neighbour]) -> list[Neighbour]:
    """Return index neighbours as response items, scores rounded to 6 places."""
    return [Neighbour(word=n.word, score=round(float(n.score), 6)) for n in neighbours]


def inferred_words(model: VectorIndex, words: Sequence[str]) -> list[str]:
    """Return the words among `words` that the vocabulary lacks (so were inferred)."""
    return [word for word in words if not model.has_word(word)]


class SimilarParams(BaseModel):
    """The query parameters of GET /similar (validation and documentation)."""

    word: str = Field(
        min_length=1,
        description="a word; case-folded when the model folds case (docs/api.md)",
    )
    k: int = Field(
        10, ge=1, description="how many neighbours, up to the server's max_k"
    )


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    # The OpenAPI entries FastAPI would write for these fields as Query()s.
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": field,
            "description": field.get("description", ""),
        }
        for name, field in schema["properties"].items()
    ]


@router.get(
    "/similar",
    response_model=NeighboursResponse,
    responses=problems(404, 422, 503),
    openapi_extra={"parameters": _query_parameters(SimilarParams)},
)
async def similar(request: Request) -> Response:
    """The `k` words nearest to `word` by cosine score, best first.

    An out-of-vocabulary word is a 404 problem listing close spellings, unless
    the model has subword vectors: then its vector is inferred from character
    n-grams and the response says `"inferred": true`.
    """
    # The parameters are read from the request here rather than declared:
    # FastAPI's parameter solving was the largest cost of this route, about
    # a third of a request (cProfile), and the model and settings likewise.
    word, k = similar_params(request)
    model = await get_model(request)
    settings = await get_request_settings(request)
    word = query_word(word, settings, "word", model)
    check_k(k, settings)
    # A precomputed list is a slice of a memory-mapped file (a few us), so it
    # is answered here on the event loop: the threadpool round trip cost more
    # than the lookup itself. A real search (0.1-20 ms) or an unknown word's
    # spelling suggestions (ms) would stall the loop, so they go to the query pool.
    listed = model.listed(word, k)
    if listed is None:
        return await run_query(_searched_similar, model, word, k)
    words, scores = listed
    # numpy's rounding matched round(x, 6) on 714,300 stored scores and
    # costs 2 us for 100 of them instead of 60.
    rounded = np.round(scores.astype(np.float64), 6).tolist()
    return neighbours_json(word, model.version, False, words, rounded)


def similar_params(request: Request) -> tuple[str, int]:
    """Return (word, k) from the query string, validated as SimilarParams.

    The usual request (a word and a plain decimal k) is checked here
    directly; anything else goes through the pydantic model, so errors are
    the 422 problems FastAPI would raise for declared parameters.
    """
    params = request.query_params
    word = params.get("word")
    k = params.get("k", "10")
    if word and k.isascii() and k.isdigit() and int(k) >= 1:
        return word, int(k)
    try:
        checked = SimilarParams.model_validate(
            {name: params[name] for name in ("word", "k") if name in params}
        )
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        for error in errors:
            error["loc"] = ("query", *error["loc"])
        raise RequestValidationError(errors) from None
    return checked.word, checked.k


def _searched_similar(model: VectorIndex, word: str, k: int) -> Response:
    neighbours = model.neighbours(word, k)
    words = [n.word for n in neighbours]
    scores = [round(float(n.score), 6) for n in neighbours]
    inferred = not model.has_word(word)
    return neighbours_json(word, model.version, inferred, words, scores)


def neighbours_json(
    word: str, version: str, inferred: bool, words: list[str], scores: list[float]
) -> Response:
    """Return a NeighboursResponse body as application/json, built directly.

    Building the pydantic models and dumping them took 30 us for 10
    neighbours and 240 us for 100; a dict through pydantic_core's encoder
    takes 10 and 45 (tests/app checks the body against the model).
    """
    body: dict[str, Any] = {
        "word": word,
        "model_version": version,
        "inferred": inferred,
        "neighbours": [
            {"word": w, "score": s} for w, s in zip(words, scores, strict=True)
        ],
    }
    return Response(to_json(body), media_type="application/json")


@router.post(
    "/similar",
    response_model=SimilarBatchResponse | MostSimilarResponse,
    responses=problems(404, 413, 422, 503),
)
@query_handler
def similar_batch(
    query: SimilarQuery, model: ModelDep, settings: SettingsDep
) -> Response:
    """Neighbours of many words at once, or of a sum of word vectors.

    With `words`, the result lists the `k` neighbours of each word in order.
    With `positive` and `negative` (gensim's `most_similar`), it ranks words
    by cosine score to the mean of the positive words' unit vectors and the
    negated negative ones, leaving out the query words. Any unknown word
    (without subword vectors) makes the whole request a 404 naming it.
    """
    check_k(query.k, settings)
    if query.words is not None:
        words = query_words(query.words, settings, "words", model)
        results = [
            NeighboursResponse(
                word=word,
                model_version=model.version,
                inferred=not model.has_word(word),
                neighbours=neighbour_list(model.neighbours(word, query.k)),
            )
            for word in words
        ]
        return respond(
            SimilarBatchResponse(model_version=model.version, results=results)
        )
    positive = query_words(query.positive, settings, "positive", model)
    negative = query_words(query.negative, settings, "negative", model)
    neighbours = model.most_similar(positive, negative, query.k)
    body = MostSimilarResponse(
        positive=positive,
        negative=negative,
        model_version=model.version,
        inferred_words=inferred_words(model, positive + negative),
        neighbours=neighbour_list(neighbours),
    )
    return respond(body)
