"""The FastAPI application: `create_app` wires settings, the model holder,
routes, error handling, metrics and the OpenAPI document together.

uvicorn builds it with `app.main:create_app` (factory mode), so each worker
process builds its own app and loads its own view of the bundle (the
vectors are memory-mapped, so workers share one copy in the page cache).
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.api.auth import redact_access_log
from app.api.deps import set_query_threads
from app.api.openapi import install_problem_openapi
from app.api.routes import (
    analogy,
    embed,
    health,
    jobs,
    models,
    similar,
    similarity,
    vocabulary,
    web,
)
from app.core import metrics
from app.core.config import Settings, get_settings
from app.core.errors import register_error_handlers
from app.core.middleware import ServiceMiddleware
from app.core.overload import LoadShedding
from app.jobs.queue import make_queue
from app.jobs.store import open_job_store
from app.jobs.uploads import remove_orphan_uploads, remove_stale_temporaries
from app.model_holder import ModelHolder
from app.model_watcher import watch_active_version
from app.registry import ModelRegistry

logger = logging.getLogger(__name__)

DESCRIPTION = """Nearest words, similarities, analogies and text embeddings
from a word2vec model. Every query response names the `model_version` that
answered it; every error is an RFC 9457 problem (`application/problem+json`)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Return the wordvec HTTP application.

    Settings come from `get_settings`, resolved when the app starts, so a
    test's `app.dependency_overrides[get_settings]` applies to loading the
    model as well as to the request limits. The middleware (CORS, load
    shedding) is fixed at creation: from `settings` when given (which then
    also serve as the app's settings), else from `get_settings()`.
    """
    app = FastAPI(
        title="wordvec",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=_lifespan,
    )
    app.state.model_holder = ModelHolder()
    for module in (
        similar,
        similarity,
        analogy,
        embed,
        vocabulary,
        models,
        jobs,
        health,
        web,
    ):
        app.include_router(module.router)
    register_error_handlers(app)
    install_problem_openapi(app)
    if settings is not None:
        app.dependency_overrides[get_settings] = lambda: settings
    else:
        settings = get_settings()
    # The last middleware added is the outermost: CORS answers preflights
    # first, ServiceMiddleware counts every request, shed ones included.
    app.add_middleware(LoadShedding, limit=settings.max_concurrent_requests)
    app.add_middleware(ServiceMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Location", "Retry-After"],
        )
    return app


def configure_logging(level: str) -> None:
    """Send the app's log records to stderr unless logging is set up already."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.dependency_overrides.get(get_settings, get_settings)()
    configure_logging(settings.log_level)
    redact_access_log()
    set_query_threads(settings.query_threads)
    app.state.settings = settings
    holder: ModelHolder = app.state.model_holder
    holder.on_swap(metrics.record_model)
    app.state.jobs = None
    if settings.data_dir is not None:
        registry = ModelRegistry(settings.data_dir)
        remove_stale_temporaries(registry.uploads_dir)
        app.state.jobs = jobs.JobsContext(
            store=open_job_store(settings.data_dir, settings.database_url),
            registry=registry,
            queue=make_queue(settings.data_dir, settings.queue_url),
        )
        remove_orphan_uploads(registry.uploads_dir, app.state.jobs.store)
        async with watch_active_version(holder, settings):
            yield
    elif settings.bundle_path is None:
        holder.record_failure(
            "no model configured; set WORDVEC_DATA_DIR or WORDVEC_BUNDLE_PATH"
        )
        logger.error(
            "nothing to serve: neither WORDVEC_DATA_DIR nor _BUNDLE_PATH is set"
        )
        yield
    else:
        # Loading before startup completes means a worker takes no request
        # until its model is there; a thread keeps the event loop free for
        # uvicorn's own bookkeeping meanwhile.
        await anyio.to_thread.run_sync(
            holder.load, settings.bundle_path, settings.index_kind
        )
        yield
    metrics.forget_this_process()
