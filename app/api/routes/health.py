"""Liveness, readiness and Prometheus metrics."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.core import metrics
from app.schemas import HealthResponse, LiveResponse

router = APIRouter(tags=["operations"])


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "Not ready"}},
)
async def health(request: Request) -> JSONResponse:
    """Readiness: 200 with `"ready": true` once a model answers queries, 503
    while it is loading (`starting`) or after its load failed (`error`, with
    the reason in `last_load_error`)."""
    holder = request.app.state.model_holder
    model = holder.peek()
    body = HealthResponse(
        status="ok" if model is not None else holder.state,
        model_version=model.version if model is not None else None,
        ready=model is not None,
        last_load_error=holder.last_load_error,
    )
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


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
