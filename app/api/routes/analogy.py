"""Word analogies: "a is to b as c is to ?"."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import (
    ModelDep,
    SettingsDep,
    check_k,
    problems,
    query_handler,
    query_word,
    respond,
)
from app.api.routes.similar import KParam, inferred_words, neighbour_list
from app.schemas import AnalogyMethod, AnalogyResponse

router = APIRouter(tags=["queries"])

AnalogyWord = Annotated[str, Query(min_length=1)]


@router.get(
    "/analogy", response_model=AnalogyResponse, responses=problems(404, 422, 503)
)
@query_handler
def analogy(
    a: AnalogyWord,
    b: AnalogyWord,
    c: AnalogyWord,
    model: ModelDep,
    settings: SettingsDep,
    k: KParam = 10,
    method: Annotated[
        AnalogyMethod,
        Query(description="3cosadd: b - a + c; 3cosmul: Levy & Goldberg 2014"),
    ] = "3cosadd",
) -> Response:
    """The `k` best answers to "`a` is to `b` as `c` is to ?", best first.

    3CosAdd ranks words by cosine score to b - a + c; 3CosMul (Levy and
    Goldberg, 2014) ranks them by the cosines to b and c multiplied and
    divided by the cosine to a. Either way each `score` is the answer's
    cosine with b - a + c, from -1 to 1, so 3CosMul scores need not descend.
    The three query words are never answers.
    """
    a, b, c = (
        query_word(w, settings, f, model) for w, f in ((a, "a"), (b, "b"), (c, "c"))
    )
    check_k(k, settings)
    neighbours = model.analogy(a, b, c, k, method=method)
    body = AnalogyResponse(
        a=a,
        b=b,
        c=c,
        method=method,
        model_version=model.version,
        inferred_words=inferred_words(model, [a, b, c]),
        neighbours=neighbour_list(neighbours),
    )
    return respond(body)
