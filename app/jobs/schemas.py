"""Request settings and response bodies of the job endpoints."""

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.jobs.progress import STAGES
from app.jobs.store import Job


class FinetuneSettings(BaseModel):
    """What a fine-tune request may set; every field is optional."""

    model_config = ConfigDict(extra="forbid")

    epochs: int | None = Field(
        default=None, ge=1, le=50, description="passes over the upload"
    )
    lr: float | None = Field(
        default=None, gt=0, le=1, description="starting learning rate"
    )
    min_count: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="occurrences in the upload a new word needs to get a vector",
    )
    base_version: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="model version to start from (default: the active one)",
    )
    activate: bool = Field(
        default=True, description="serve the new version as soon as the job succeeds"
    )


class JobProgress(BaseModel):
    """Where a job stands; the stages come in the order of STAGES."""

    stage: str | None = Field(
        default=None,
        description="the attempt's current step, in this order: "
        + ", ".join(STAGES)
        + " (activating only when the job activates its result)",
    )
    fraction: float = Field(
        default=0.0,
        description="share of the job's estimated time that is behind it, 0 to "
        "1; never decreases within an attempt, 1 once succeeded",
    )
    words_per_second: float | None = Field(
        default=None, description="training speed, once training has started"
    )
    eta_seconds: float | None = Field(
        default=None,
        description="estimated seconds until the job ends (all stages, not just "
        "training); null until the base version is checked",
    )
    loss: float | None = None


class JobPublic(BaseModel):
    """A fine-tune job as the API shows it."""

    id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int = Field(description="attempts started so far")
    max_attempts: int
    cancel_requested: bool
    settings: dict[str, Any] = Field(description="the request's fine-tune settings")
    upload: dict[str, Any] = Field(
        description="bytes, sha256, tokens and whether it was gzip"
    )
    upload_deleted_at: datetime | None = Field(
        default=None,
        description="when the worker deleted the upload's file, "
        "WORDVEC_UPLOAD_RETENTION_DAYS after the job finished",
    )
    progress: JobProgress
    base_version: str | None = Field(
        description="the version fine-tuned: the request's base_version, else "
        "the version active when the job was submitted"
    )
    result_version: str | None = Field(description="the version the job published")
    activated: bool | None = Field(description="whether the new version was activated")
    new_word_count: int | None = None
    new_words: list[str] | None = Field(
        default=None, description="up to 50 words the fine-tune added"
    )
    evaluation_before: dict[str, Any] | None = None
    evaluation_after: dict[str, Any] | None = None
    error: str | None = Field(description="why the last attempt failed, if it did")

    @classmethod
    def from_job(cls, job: Job) -> "JobPublic":
        result = job.result or {}
        return cls(
            id=job.id,
            status=job.status,
            created_at=_time(job.created_at),
            updated_at=_time(job.updated_at),
            started_at=_time(job.started_at) if job.started_at else None,
            finished_at=_time(job.finished_at) if job.finished_at else None,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            cancel_requested=job.cancel_requested,
            settings=job.params,
            upload={k: v for k, v in job.upload.items() if k != "file"},
            upload_deleted_at=_optional_time(result.get("upload_deleted_at")),
            progress=JobProgress(**(job.progress or {})),
            base_version=job.base_version,
            result_version=job.result_version,
            activated=result.get("activated"),
            new_word_count=result.get("new_word_count"),
            new_words=result.get("new_words"),
            evaluation_before=result.get("evaluation_before"),
            evaluation_after=result.get("evaluation_after"),
            error=job.error,
        )


class JobsResponse(BaseModel):
    jobs: list[JobPublic] = Field(description="newest first")


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _optional_time(seconds: Any) -> datetime | None:
    return _time(float(seconds)) if isinstance(seconds, int | float) else None
