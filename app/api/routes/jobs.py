"""Fine-tune jobs: POST /finetune queues one; GET /jobs, GET /jobs/{id} and
POST /jobs/{id}/cancel follow it. The worker process runs them (docs/jobs.md).
"""

import hashlib
import logging
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from app.api.auth import ApiKeyDep
from app.api.deps import SettingsDep, problems
from app.core.config import Settings
from app.core.errors import ApiError, InvalidInput
from app.jobs.queue import JobQueue
from app.jobs.schemas import FinetuneSettings, JobPublic, JobsResponse
from app.jobs.store import (
    JOB_ID_PATTERN,
    Job,
    JobStore,
    LimitReached,
    SubmissionLimits,
    new_job_id,
)
from app.jobs.uploads import (
    ReceivedUpload,
    check_upload,
    receive_upload,
    store_upload,
)
from app.registry import ModelRegistry

logger = logging.getLogger(__name__)

router = APIRouter(tags=["jobs"])

IDEMPOTENCY_KEY_MAX = 200
RATE_WINDOW = 3600.0  # seconds over which WORDVEC_FINETUNES_PER_HOUR counts
# Bytes of text a gzip upload may expand to, per byte of the upload limit.
MAX_EXPANSION = 10


@dataclass
class JobsContext:
    """What the job endpoints need, built at start-up when a data dir is set."""

    store: JobStore
    registry: ModelRegistry
    queue: JobQueue


class NoDataDir(ApiError):
    status = 409
    type = "/problems/no-data-directory"
    title = "Jobs need a data directory"


class NoActiveModel(ApiError):
    status = 409
    type = "/problems/no-active-model"
    title = "No active model"


class JobNotFound(ApiError):
    status = 404
    type = "/problems/job-not-found"
    title = "Job not found"


class JobFinished(ApiError):
    status = 409
    type = "/problems/job-finished"
    title = "Job already finished"


class TooManyJobs(ApiError):
    status = 429
    type = "/problems/too-many-jobs"
    title = "Too many jobs"


class RateLimited(ApiError):
    status = 429
    type = "/problems/rate-limited"
    title = "Too many fine-tunes"


class IdempotencyKeyReused(ApiError):
    status = 422
    type = "/problems/idempotency-key-reused"
    title = "Idempotency-Key reused"


def jobs_context(request: Request) -> JobsContext:
    context: JobsContext | None = getattr(request.app.state, "jobs", None)
    if context is None:
        raise NoDataDir(
            "this server has no data directory, so it keeps no models versions or "
            "jobs; start it with `wordvec serve --data-dir DIR` (WORDVEC_DATA_DIR)"
        )
    return context


_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The text to fine-tune on: a multipart form with the text "
        "in `file` (and the settings as form fields), or the text itself as a "
        "text/plain or gzip body (settings as query parameters).",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "epochs": {"type": "integer", "minimum": 1, "maximum": 50},
                        "lr": {"type": "number"},
                        "min_count": {"type": "integer", "minimum": 1},
                        "base_version": {"type": "string"},
                        "activate": {"type": "boolean"},
                    },
                }
            },
            "text/plain": {"schema": {"type": "string"}},
            "application/gzip": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/finetune",
    status_code=202,
    response_model=JobPublic,
    responses=problems(
        400,
        401,
        413,
        415,
        422,
        described={
            404: "No such base_version",
            409: "No data directory, or no active model",
            429: "Too many queued jobs, or fine-tunes this hour",
            507: "No room on the server's disk for the upload; nothing was kept",
        },
    ),
    openapi_extra=_UPLOAD_BODY,
)
async def create_finetune(
    request: Request,
    settings: SettingsDep,
    _: ApiKeyDep,
    epochs: Annotated[int | None, Query(ge=1, le=50)] = None,
    lr: Annotated[float | None, Query(gt=0, le=1)] = None,
    min_count: Annotated[int | None, Query(ge=1, le=1000)] = None,
    base_version: Annotated[str | None, Query(max_length=64)] = None,
    activate: Annotated[bool, Query()] = True,
) -> Response:
    """Queue a fine-tune of the active model (or `base_version`) on the
    uploaded text and answer 202 with the job and its `Location`.

    The upload is on disk, checked and fsynced before the answer: an
    accepted job survives a crash. With an `Idempotency-Key` header, a
    retried request with the same text returns the job it created first.
    """
    context = jobs_context(request)
    key = _idempotency_key(request)
    submitter = _submitter(settings)
    # In a thread, as every job table and registry call here: each opens a
    # connection or reads files, and must not stall the event loop.
    await anyio.to_thread.run_sync(_check_limits_early, context, settings, key)
    upload = await receive_upload(
        request.stream(),
        {name.lower(): value for name, value in request.headers.items()},
        context.registry.uploads_dir,
        settings.max_upload_bytes,
    )
    try:
        query = {
            "epochs": epochs,
            "lr": lr,
            "min_count": min_count,
            "base_version": base_version,
            "activate": activate,
        }
        params = _finetune_settings(query, upload.fields)
        job = await anyio.to_thread.run_sync(
            _accept, context, settings, upload, params, key, submitter
        )
    finally:
        upload.discard()  # a no-op once the upload was stored under the job's name
    return _job_response(job, 202)


def _check_limits_early(
    context: JobsContext, settings: Settings, key: str | None
) -> None:
    """Raise the 429 a new job would get now, unless `key` names a job
    already (its request is a retry, answered with that job)."""
    # A retry with a known key is read in full all the same: only the upload's
    # checksum tells a retry from a different text sent with the same key.
    # This early check saves reading an upload that would be refused; `_accept`
    # checks again in the transaction that inserts the job.
    if key is not None and context.store.find_by_idempotency_key(key) is not None:
        return
    try:
        context.store.check_limits(_submitter(settings), _limits(settings))
    except LimitReached as exc:
        raise _refusal(exc, settings) from None


def _accept(
    context: JobsContext,
    settings: Settings,
    upload: ReceivedUpload,
    params: FinetuneSettings,
    key: str | None,
    submitter: str,
) -> Job:
    """Find the base version, check the upload, make it durable, commit the
    job row and queue it."""
    # Recorded now, so that jobs run later or side by side each build on
    # what was active when they were submitted (docs/jobs.md).
    base = params.base_version or context.registry.active_version()
    if base is None:
        raise NoActiveModel(
            "there is no active model to fine-tune; activate one with "
            "`wordvec models activate VERSION` or name a base_version"
        )
    context.registry.get(base)
    text_bytes, tokens = check_upload(
        upload,
        min_tokens=settings.min_upload_tokens,
        max_text_bytes=settings.max_upload_bytes * MAX_EXPANSION,
    )
    if key is not None and (earlier := context.store.find_by_idempotency_key(key)):
        return _replay(earlier, upload.sha256)
    job_id = new_job_id()
    # The upload keeps its lock until the caller discards it, after the
    # commit: `remove_orphan_uploads` never takes a file whose row is coming.
    stored = store_upload(upload, job_id, text_bytes, tokens)
    try:
        job, created = context.store.create(
            kind="finetune",
            params=params.model_dump(),
            upload=stored.describe(),
            max_attempts=settings.job_max_attempts,
            idempotency_key=key,
            job_id=job_id,
            submitter=submitter,
            base_version=base,
            limits=_limits(settings),
        )
    except LimitReached as exc:
        stored.path.unlink(missing_ok=True)
        raise _refusal(exc, settings) from None
    # On any other error the row may or may not be committed; the file is
    # left for `remove_orphan_uploads`, which asks the table.
    if not created:  # a concurrent request with the same key won the race
        stored.path.unlink(missing_ok=True)
        return _replay(job, upload.sha256)
    try:
        context.queue.enqueue(job.id)
    except Exception:
        # The row is committed, so the job is not lost: a worker's sweep
        # sends queued jobs that nobody took to the queue again.
        logger.exception("job %s committed but not queued; the sweep will", job.id)
    return job


def _submitter(settings: Settings) -> str:
    """Who the rate limit counts: the API key's fingerprint (never the key)."""
    if settings.api_key is None:
        return "anonymous"
    digest = hashlib.sha256(settings.api_key.get_secret_value().encode())
    return "key-" + digest.hexdigest()[:16]


def _limits(settings: Settings) -> SubmissionLimits:
    return SubmissionLimits(
        max_active=settings.max_queued_jobs,
        per_hour=settings.finetunes_per_hour,
        window=RATE_WINDOW,
    )


def _refusal(exc: LimitReached, settings: Settings) -> ApiError:
    headers = {"Retry-After": str(exc.retry_after)}
    if exc.kind == "rate":
        return RateLimited(
            f"{exc.count} fine-tunes were submitted in the last hour, the limit "
            f"(WORDVEC_FINETUNES_PER_HOUR) is {settings.finetunes_per_hour}; "
            f"retry in {exc.retry_after} s",
            headers=headers,
        )
    return TooManyJobs(
        f"{settings.max_queued_jobs} jobs are queued or running, the server's "
        "limit (WORDVEC_MAX_QUEUED_JOBS); retry when one has finished",
        headers=headers,
    )


def _replay(job: Job, sha256: str) -> Job:
    if job.upload.get("sha256") != sha256:
        raise IdempotencyKeyReused(
            f"this Idempotency-Key was first used for job {job.id} with a different "
            "upload; use a new key for a new fine-tune"
        )
    return job


def _finetune_settings(
    query: dict[str, Any], fields: dict[str, str]
) -> FinetuneSettings:
    values = {k: v for k, v in query.items() if v is not None}
    values.update(fields)  # form fields win over query parameters
    try:
        return FinetuneSettings.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "settings"
        raise InvalidInput(field, error["msg"]) from exc


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip().strip('"')
    if not key or len(key) > IDEMPOTENCY_KEY_MAX or not key.isprintable():
        raise InvalidInput(
            "Idempotency-Key",
            f"must be 1 to {IDEMPOTENCY_KEY_MAX} printable characters, e.g. a UUID",
        )
    return key


def _job_response(job: Job, status: int) -> JSONResponse:
    body = JobPublic.from_job(job).model_dump(mode="json")
    return JSONResponse(
        body, status_code=status, headers={"Location": f"/jobs/{job.id}"}
    )


JobId = Annotated[
    str,
    Path(pattern=f"^{JOB_ID_PATTERN}$", description="the id POST /finetune returned"),
]


def _get_job(context: JobsContext, job_id: str) -> Job:
    try:
        return context.store.get(job_id)
    except KeyError:
        raise JobNotFound(
            f"there is no job {job_id}; GET /jobs lists the jobs"
        ) from None


@router.get(
    "/jobs",
    response_model=JobsResponse,
    responses=problems(422, described={409: "The server has no data directory"}),
)
def list_jobs(
    request: Request,
    status: Annotated[
        str | None,
        Query(pattern="^(queued|running|succeeded|failed|cancelled)$"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JobsResponse:
    """The most recent jobs, newest first, optionally of one status."""
    context = jobs_context(request)
    jobs = context.store.recent(status=status, limit=limit)
    return JobsResponse(jobs=[JobPublic.from_job(job) for job in jobs])


@router.get(
    "/jobs/{job_id}",
    response_model=JobPublic,
    responses=problems(422, described={404: "No such job", 409: "No data directory"}),
)
def read_job(request: Request, job_id: JobId) -> JobPublic:
    """A job's status, progress, attempts, timings, error, versions and the
    evaluation before and after."""
    return JobPublic.from_job(_get_job(jobs_context(request), job_id))


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobPublic,
    responses=problems(
        400,
        401,
        422,
        described={
            404: "No such job",
            409: "The job has finished, or no data directory",
        },
    ),
)
def cancel_job(request: Request, job_id: JobId, _: ApiKeyDep) -> JobPublic:
    """Cancel a queued job at once, or ask a running one to stop (its status
    turns `cancelled` within a few seconds). A finished job gets 409."""
    context = jobs_context(request)
    job = _get_job(context, job_id)
    if job.terminal:
        raise JobFinished(
            f"job {job_id} is {job.status} already; only queued or running jobs "
            "can be cancelled"
        )
    return JobPublic.from_job(context.store.cancel(job_id))
