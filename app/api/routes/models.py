"""The served model's manifest: GET /models."""

from typing import Any

from fastapi import APIRouter

from app.api.deps import ModelDep, problems
from app.schemas import ModelPublic, ModelsResponse
from index.search import VectorIndex

router = APIRouter(tags=["models"])


def model_public(model: VectorIndex, active: bool) -> ModelPublic:
    """Return what the API shows of a model: its manifest's summary and index."""
    manifest: dict[str, Any] = model.manifest
    return ModelPublic(
        version=model.version,
        source=manifest.get("source"),
        created_at=manifest.get("created_at"),
        vocab_size=model.vocab_size,
        dim=model.dim,
        index=dict(model.index_info),
        evaluation=manifest.get("evaluation"),
        active=active,
    )


@router.get("/models", response_model=ModelsResponse, responses=problems(503))
async def list_models(model: ModelDep) -> ModelsResponse:
    """The models this server knows and which one answers queries.

    Each entry gives the version, where it came from, its vocabulary size
    and dimensions, its index (kind and recall@10 against exact search) and
    its evaluation scores. Today the list holds the one served model.
    """
    return ModelsResponse(
        active_version=model.version, models=[model_public(model, active=True)]
    )
