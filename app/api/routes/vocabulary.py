"""Single words: GET /vectors/{word} and prefix lookups for autocomplete."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.api.deps import (
    ModelDep,
    SettingsDep,
    check_k,
    problems,
    query_handler,
    query_word,
    respond,
    unit_vector_list,
)
from app.core.errors import InvalidInput
from app.schemas import VectorResponse, VocabularyResponse, VocabularyWord

router = APIRouter(tags=["vocabulary"])


@router.get(
    "/vectors/{word}", response_model=VectorResponse, responses=problems(404, 422, 503)
)
@query_handler
def vector(
    word: Annotated[str, Path(min_length=1)], model: ModelDep, settings: SettingsDep
) -> Response:
    """The unit-length vector of `word`, inferred from subwords when the model
    has them and the word is out of vocabulary."""
    word = query_word(word, settings, "word", model)
    values, inferred = model.word_vector(word)
    body = VectorResponse(
        word=word,
        model_version=model.version,
        inferred=inferred,
        dim=model.dim,
        vector=unit_vector_list(values),
    )
    return respond(body)


@router.get(
    "/vocabulary", response_model=VocabularyResponse, responses=problems(422, 503)
)
@query_handler
def vocabulary(
    model: ModelDep,
    settings: SettingsDep,
    prefix: Annotated[str, Query(description="start of the words to list")] = "",
    limit: Annotated[int, Query(ge=1, description="at most this many words")] = 10,
) -> Response:
    """Vocabulary words that start with `prefix`, most frequent first.

    Meant for autocomplete; the prefix is case-folded like query words when
    the model folds case, and for a case-keeping model its lower-case,
    capitalised and upper-case forms match too. `limit` is capped by the
    server's max_k.
    """
    if len(prefix) > settings.max_word_length:
        raise InvalidInput(
            "prefix", f"is longer than {settings.max_word_length} characters"
        )
    check_k(limit, settings, "limit")
    prefix = model.normalise(prefix)
    words = model.vocabulary_prefix(prefix, limit)
    body = VocabularyResponse(
        prefix=prefix,
        model_version=model.version,
        words=[VocabularyWord(word=w, count=int(c)) for w, c in words],
    )
    return respond(body)
