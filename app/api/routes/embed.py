"""Text embeddings: POST /embed."""

from fastapi import APIRouter, Response

from app.api.deps import (
    ModelDep,
    SettingsDep,
    check_batch,
    problems,
    query_handler,
    respond,
    unit_vector_list,
)
from app.core.errors import InvalidInput
from app.schemas import Embedding, EmbedRequest, EmbedResponse

router = APIRouter(tags=["queries"])


@router.post("/embed", response_model=EmbedResponse, responses=problems(413, 422, 503))
@query_handler
def embed(request: EmbedRequest, model: ModelDep, settings: SettingsDep) -> Response:
    """A unit vector for each text, with the words it was built from.

    Texts are split by the trainer's tokeniser, with the model's case rule
    (a case-keeping model also finds "The" as "the"). `mean` averages the unit
    vectors of the known words; `sif` weights them by smooth inverse
    frequency (Arora et al., 2017), so frequent words count less. Words out
    of the vocabulary are skipped and listed in `oov_words`; a text with no
    known word gets `"vector": null` rather than an error.
    """
    check_batch(request.texts, settings.max_texts, "texts")
    for i, text in enumerate(request.texts):
        if len(text) > settings.max_text_length:
            raise InvalidInput(
                f"texts.{i}",
                f"is {len(text):,} characters; at most {settings.max_text_length:,}",
            )
    embeddings = []
    for text in request.texts:
        vector, known, oov = model.embed(text, weighting=request.weighting)
        values = None if vector is None else unit_vector_list(vector)
        embeddings.append(Embedding(vector=values, known_words=known, oov_words=oov))
    body = EmbedResponse(
        model_version=model.version,
        dim=model.dim,
        weighting=request.weighting,
        embeddings=embeddings,
    )
    return respond(body)
