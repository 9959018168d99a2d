"""Cosine similarity of word pairs: GET /similarity for one, POST for many."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import (
    ModelDep,
    SettingsDep,
    check_batch,
    problems,
    query_handler,
    query_word,
    respond,
)
from app.api.routes.similar import inferred_words
from app.core.config import Settings
from app.schemas import SimilarityBatchResponse, SimilarityQuery, SimilarityResponse
from index.search import VectorIndex

router = APIRouter(tags=["queries"])

PairWord = Annotated[str, Query(min_length=1, description="a word")]


def pair_similarity(
    model: VectorIndex, settings: Settings, a: str, b: str, field: str = ""
) -> SimilarityResponse:
    """Return the similarity response for words `a` and `b` (normalised here)."""
    a = query_word(a, settings, f"{field}a", model)
    b = query_word(b, settings, f"{field}b", model)
    return SimilarityResponse(
        a=a,
        b=b,
        score=round(float(model.similarity(a, b)), 6),
        model_version=model.version,
        inferred_words=inferred_words(model, [a, b]),
    )


@router.get(
    "/similarity", response_model=SimilarityResponse, responses=problems(404, 422, 503)
)
@query_handler
def similarity(
    a: PairWord, b: PairWord, model: ModelDep, settings: SettingsDep
) -> Response:
    """The cosine similarity of words `a` and `b`, from -1 to 1."""
    return respond(pair_similarity(model, settings, a, b))


@router.post(
    "/similarity",
    response_model=SimilarityBatchResponse,
    responses=problems(404, 413, 422, 503),
)
@query_handler
def similarity_batch(
    query: SimilarityQuery, model: ModelDep, settings: SettingsDep
) -> Response:
    """The cosine similarity of each pair in `pairs`, in request order.

    An unknown word anywhere makes the whole request a 404 naming that word.
    """
    check_batch(query.pairs, settings.max_batch, "pairs")
    results = [
        pair_similarity(model, settings, pair.a, pair.b, f"pairs.{i}.")
        for i, pair in enumerate(query.pairs)
    ]
    return respond(
        SimilarityBatchResponse(model_version=model.version, results=results)
    )
