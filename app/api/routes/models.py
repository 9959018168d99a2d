"""Model versions: GET /models lists them; POST /models/{version}/activate
switches the served version (and so rolls back); DELETE removes one."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from app.api.auth import ApiKeyDep
from app.api.deps import problems
from app.api.routes.jobs import jobs_context
from app.model_holder import ModelHolder
from app.registry import VERSION_PATTERN, VersionInfo, VersionNotFound
from app.schemas import IndexPublic, ModelPublic, ModelsResponse
from index.search import VectorIndex
from index.store import index_summary, read_index_summary

router = APIRouter(tags=["models"])

Version = Annotated[
    str,
    Path(pattern=f"^{VERSION_PATTERN.pattern}$", description="a version name"),
]

_MUTATION_ERRORS = problems(
    400,
    401,
    422,
    described={
        404: "No such version",
        409: "No data directory, or the version is active",
        503: "The data directory could not be read",
    },
)


Summary = Annotated[
    bool,
    Query(description="leave out each version's manifest, for a short list"),
]


def model_public(
    model: VectorIndex, active: bool, with_manifest: bool = False
) -> ModelPublic:
    """Return what the API shows of a loaded model: its manifest's summary and
    index, and with `with_manifest` the whole manifest."""
    manifest: dict[str, Any] = model.manifest
    return ModelPublic(
        version=model.version,
        source=manifest.get("source"),
        created_at=manifest.get("created_at"),
        vocab_size=model.vocab_size,
        dim=model.dim,
        index=IndexPublic.model_validate(index_summary(model.index_info)),
        evaluation=manifest.get("evaluation"),
        active=active,
        base_version=manifest.get("base_version"),
        manifest=manifest if with_manifest else None,
    )


def version_public(info: VersionInfo, with_manifest: bool = False) -> ModelPublic:
    """Return what the API shows of a published version, from its files, and
    with `with_manifest` its whole manifest."""
    manifest = info.manifest
    return ModelPublic(
        version=info.version,
        source=manifest.get("source"),
        created_at=manifest.get("created_at"),
        vocab_size=int(manifest.get("vocab_size") or 0),
        dim=int(manifest.get("dim") or 0),
        index=IndexPublic.model_validate(read_index_summary(info.path)),
        evaluation=manifest.get("evaluation"),
        active=info.active,
        base_version=manifest.get("base_version"),
        manifest={**manifest, "version": info.version} if with_manifest else None,
    )


@router.get("/models", response_model=ModelsResponse, responses=problems(422, 503))
def list_models(request: Request, summary: Summary = False) -> ModelsResponse:
    """The model versions this server knows and which one is active.

    Each entry gives the version, where it came from (`trained`, `imported`
    or `finetuned`, with its `base_version`), its vocabulary size and
    dimensions, its index (kind, recall@10 against exact search and build
    facts, the same shape in both modes), its evaluation scores and its
    whole `manifest` (as `GET /models/{version}` shows it); `?summary=true`
    leaves the manifests out (`null`). Without a data directory the list
    holds the one bundle being served.
    """
    with_manifest = not summary
    context = getattr(request.app.state, "jobs", None)
    if context is None:
        holder: ModelHolder = request.app.state.model_holder
        model = holder.current
        return ModelsResponse(
            active_version=model.version,
            models=[model_public(model, active=True, with_manifest=with_manifest)],
        )
    registry = context.registry
    versions = registry.versions()
    return ModelsResponse(
        active_version=registry.active_version(),
        models=[version_public(info, with_manifest) for info in versions],
    )


@router.get(
    "/models/{version}",
    responses=problems(
        422, described={404: "No such version", 503: "No model is loaded yet"}
    ),
)
def read_model(request: Request, version: Version) -> dict[str, Any]:
    """A version's whole manifest (format in docs/bundle-format.md) and
    whether it is active."""
    context = getattr(request.app.state, "jobs", None)
    if context is None:
        model: VectorIndex = request.app.state.model_holder.current
        if version != model.version:
            raise VersionNotFound(
                f"this server serves one bundle, {model.version!r}; GET /models"
            )
        return {**model.manifest, "active": True}
    info = context.registry.get(version)
    return {**info.manifest, "version": info.version, "active": info.active}


@router.post(
    "/models/{version}/activate", response_model=ModelPublic, responses=_MUTATION_ERRORS
)
def activate_model(request: Request, version: Version, _: ApiKeyDep) -> ModelPublic:
    """Serve `version` from now on; activating an older version is a rollback.

    The version is checked first (every file's checksum, the index loads, a
    test query answers); one that fails is refused with 422 and the active
    version stays. Every server worker switches within a few seconds
    (WORDVEC_RELOAD_INTERVAL); requests already running finish on the
    version they started with.
    """
    registry = jobs_context(request).registry
    registry.activate(version)
    return version_public(registry.get(version))


@router.delete("/models/{version}", status_code=204, responses=_MUTATION_ERRORS)
def delete_model(request: Request, version: Version, _: ApiKeyDep) -> None:
    """Delete a version that is not active (409 for the active one)."""
    jobs_context(request).registry.delete(version)
