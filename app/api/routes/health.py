"""Liveness, readiness and Prometheus metrics."""

import os

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.core import metrics
from app.registry import RegistryError, read_active_version
from app.schemas import HealthResponse, LiveResponse

router = APIRouter(tags=["operations"])


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "Not ready"}},
)
async def health(request: Request) -> JSONResponse:
    """Readiness: 200 with `"ready": true` once a model answers queries, 503
    while it is loading (`starting`), while no version is active (`waiting`)
    or after its load failed (`error`, with the reason in `last_load_error`).
    With a data directory, `active_version` is the version activated there
    and `model_version` the one this worker serves; each worker switches
    within its reload interval."""
    holder = request.app.state.model_holder
    model = holder.peek()
    body = HealthResponse(
        status="ok" if model is not None else holder.state,
        model_version=model.version if model is not None else None,
        active_version=_active_version(request),
        ready=model is not None,
        last_load_error=holder.last_load_error,
        worker_pid=os.getpid(),
    )
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


def _active_version(request: Request) -> str | None:
    settings = getattr(request.app.state, "settings", None)
    if settings is None or settings.data_dir is None:
        return None
    try:
        # One small read; cheap enough for the event loop.
        return read_active_version(settings.data_dir)
    except RegistryError:
        # The watcher records the same failure in last_load_error.
        return None


@router.get("/health/live", response_model=LiveResponse)
async def live() -> LiveResponse:
    """Liveness: 200 whenever the process answers HTTP, model or not."""
    return LiveResponse(status="alive")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
)
async def prometheus_metrics() -> Response:
    """Request counts and latency histograms per route and status, and the
    served model version, in the Prometheus text format. With several workers
    the figures are summed over all of them."""
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
