"""Request and response bodies of the HTTP API, named by role.

Every neighbour list has the one shape `[{"word", "score"}]`, best first,
and every query response names the `model_version` that answered it.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Weighting = Literal["mean", "sif"]
AnalogyMethod = Literal["3cosadd", "3cosmul"]
# A word in a request body: at least one character (blank ones are refused
# with the same 422 after stripping, see app.api.deps.query_word).
BodyWord = Annotated[str, Field(min_length=1)]


class Neighbour(BaseModel):
    word: str
    score: float = Field(
        description="cosine score, -1 to 1 (for analogies: with b - a + c, "
        "whichever method ranked the answers)"
    )


class NeighboursResponse(BaseModel):
    word: str = Field(
        description="the word answered for: as the vocabulary spells it, or "
        "normalised when out of vocabulary"
    )
    model_version: str
    inferred: bool = Field(
        description="true when the word is out of vocabulary and its vector was "
        "built from character n-grams"
    )
    neighbours: list[Neighbour]


class SimilarQuery(BaseModel):
    """Either `words` (a batch of lookups) or `positive`/`negative` lists."""

    model_config = ConfigDict(extra="forbid")

    words: list[BodyWord] | None = Field(
        default=None, description="neighbours of each word, one result per word"
    )
    positive: list[BodyWord] = Field(
        default_factory=list, description="words whose vectors are added"
    )
    negative: list[BodyWord] = Field(
        default_factory=list, description="words whose vectors are subtracted"
    )
    k: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _one_form(self) -> "SimilarQuery":
        if self.words is not None and (self.positive or self.negative):
            raise ValueError("give either words or positive/negative, not both")
        if self.words is None and not self.positive:
            raise ValueError("give words, or at least one positive word")
        return self


class SimilarBatchResponse(BaseModel):
    model_version: str
    results: list[NeighboursResponse]


class MostSimilarResponse(BaseModel):
    positive: list[str]
    negative: list[str]
    model_version: str
    inferred_words: list[str]
    neighbours: list[Neighbour]


class SimilarityResponse(BaseModel):
    a: str
    b: str
    score: float = Field(description="cosine similarity, -1 to 1")
    model_version: str
    inferred_words: list[str] = Field(
        description="which of a and b were out of vocabulary and inferred"
    )


class WordPair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    a: BodyWord
    b: BodyWord


class SimilarityQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pairs: list[WordPair] = Field(min_length=1)


class SimilarityBatchResponse(BaseModel):
    model_version: str
    results: list[SimilarityResponse]


class AnalogyResponse(BaseModel):
    a: str
    b: str
    c: str
    method: AnalogyMethod
    model_version: str
    inferred_words: list[str]
    neighbours: list[Neighbour] = Field(description="answers to a : b :: c : ?")


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(min_length=1)
    weighting: Weighting = Field(
        default="mean",
        description="mean of unit word vectors, or SIF weights a/(a + p(word))",
    )


class Embedding(BaseModel):
    vector: list[float] | None = Field(
        description="unit-length text vector; null when no word is known"
    )
    known_words: list[str]
    oov_words: list[str] = Field(description="words not in the vocabulary, skipped")


class EmbedResponse(BaseModel):
    model_version: str
    dim: int
    weighting: Weighting
    embeddings: list[Embedding] = Field(description="one per text, in request order")


class VectorResponse(BaseModel):
    word: str
    model_version: str
    inferred: bool
    dim: int
    vector: list[float] = Field(description="unit-length word vector")


class VocabularyWord(BaseModel):
    word: str
    count: int = Field(description="occurrences in the training corpus")


class VocabularyResponse(BaseModel):
    prefix: str
    model_version: str
    words: list[VocabularyWord] = Field(description="most frequent first")


class NeighbourListsPublic(BaseModel):
    words: int | None = Field(description="most frequent words with a list")
    k: int | None = Field(description="neighbours per list")


class IndexPublic(BaseModel):
    """What GET /models shows of a version's index (from BUNDLE/index/index.json)."""

    kind: str | None = Field(description="flat, hnsw or ivf-pq")
    recall_at_10: float | None = Field(
        description="recall@10 against exact search, measured by the build: the "
        "lowest over its samples of query words"
    )
    recall_at_10_by_sample: dict[str, float] | None = Field(
        default=None,
        description="recall@10 on each sample: frequency_banded (frequent and rare "
        "words alike) and uniform (every word the same chance, mostly rare ones)",
    )
    recall_floor: float | None = Field(description="the build's recall floor")
    recall_sample_size: int | None = Field(
        description="query words in each sample recall was measured on (0 for "
        "flat: exact)"
    )
    factory: str | None = Field(description="FAISS factory string, e.g. HNSW32,Flat")
    params: dict[str, Any] = Field(
        description="search and build parameters, e.g. efSearch or nprobe"
    )
    built_at: str | None = Field(description="when `wordvec index` built it (UTC)")
    built_at_load: bool = Field(
        description="true when the bundle has no index and is searched exactly "
        "over vectors normalised at load"
    )
    neighbour_lists: NeighbourListsPublic | None = Field(
        description="exact neighbour lists precomputed for the most frequent words"
    )


class ModelPublic(BaseModel):
    version: str
    source: str | None
    created_at: str | None
    vocab_size: int
    dim: int
    index: IndexPublic
    evaluation: dict[str, Any] | None
    active: bool
    base_version: str | None = Field(
        default=None, description="the version a fine-tuned model started from"
    )
    manifest: dict[str, Any] | None = Field(
        default=None,
        description="the version's whole manifest, as GET /models/{version} shows "
        "it (format in docs/bundle-format.md); null with ?summary=true",
    )


class ModelsResponse(BaseModel):
    active_version: str | None = Field(
        description="the version queries are answered from (with a data directory: "
        "the one DATA_DIR/active names, which workers switch to within seconds)"
    )
    models: list[ModelPublic] = Field(description="oldest first")


class HealthResponse(BaseModel):
    status: Literal["ok", "starting", "waiting", "error"] = Field(
        description="waiting: serving a data directory where no version is active"
    )
    model_version: str | None = Field(description="the version this worker serves")
    active_version: str | None = Field(
        default=None,
        description="the version DATA_DIR/active names (null without a data "
        "directory); differs from model_version while a switch is under way or "
        "after the active version failed its checks",
    )
    ready: bool
    last_load_error: str | None = Field(
        description="why the last load failed; cleared by a successful one"
    )
    worker_pid: int = Field(description="process id of the worker that answered")


class LiveResponse(BaseModel):
    status: Literal["alive"]


class FieldError(BaseModel):
    field: str = Field(description="dotted name of the bad field, e.g. k or words.3")
    message: str


class ProblemDetails(BaseModel):
    """An RFC 9457 problem, sent as application/problem+json."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str
    suggestions: list[str] | None = Field(
        default=None, description="close vocabulary spellings (404 for a word)"
    )
    errors: list[FieldError] | None = Field(
        default=None, description="each bad field (422)"
    )
