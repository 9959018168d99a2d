"""Server settings: one object read from `WORDVEC_*` environment variables
(and an optional `.env` file in the working directory)."""

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.jobs.database import check_database_url

# The kinds `wordvec index --index` builds (index.kinds.KIND_CHOICES), written
# out because a Literal needs its values in the source; a test keeps the two
# in step.
IndexKindSetting = Literal["auto", "flat", "hnsw", "ivf-pq"]


class Settings(BaseSettings):
    """What the HTTP service serves and the limits it enforces on each request.

    Every field is read from the environment variable of its name, upper-cased
    and prefixed with `WORDVEC_`, e.g. `WORDVEC_BUNDLE_PATH`, `WORDVEC_MAX_K`.
    """

    # An empty variable counts as unset, so `WORDVEC_MAX_K=` in .env, or a
    # compose file passing `${WORDVEC_MAX_K:-}`, leaves the default in place.
    model_config = SettingsConfigDict(
        env_prefix="WORDVEC_",
        env_file=".env",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    bundle_path: Path | None = Field(
        default=None, description="model bundle directory to serve"
    )
    data_dir: Path | None = Field(
        default=None,
        description="data directory (model versions, active pointer, uploads, job "
        "database); when set, the active version is served instead of bundle_path",
    )
    reload_interval: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="seconds between checks of DATA_DIR/active by each server worker",
    )
    # TODO: VectorIndex.load takes no index kind yet, so this only checks the
    # bundle's index at load time; pass it to load once index/ accepts a kind.
    index_kind: IndexKindSetting = Field(
        default="auto",
        description="index kind the bundle must carry ('auto' accepts any)",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    # Longer than clients' and proxies' idle timeouts (httpx 5 s, nginx 60 s
    # upstream): when both ends drop an idle connection at the same moment, a
    # client may send a request on a connection the server is closing and
    # get a reset instead of an answer. The server should be the last to let go.
    keep_alive_seconds: int = Field(
        default=75,
        gt=0,
        description="seconds an idle keep-alive connection stays open",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    api_key: SecretStr | None = Field(
        default=None, description="bearer token for the endpoints that change state"
    )
    api_key_file: Path | None = Field(
        default=None,
        description="file whose first line is the API key (e.g. a Docker secret); "
        "read at startup when api_key is unset or blank",
    )

    max_k: int = Field(default=100, ge=1, description="largest k a query may ask")
    max_word_length: int = Field(default=100, ge=1, description="characters per word")
    max_batch: int = Field(
        default=256, ge=1, description="words or pairs in one POST request"
    )
    max_texts: int = Field(default=64, ge=1, description="texts in one POST /embed")
    max_text_length: int = Field(
        default=10_000, ge=1, description="characters in one text of POST /embed"
    )
    max_body_bytes: int = Field(
        default=1_000_000, ge=1024, description="bytes in one request body"
    )
    max_concurrent_requests: int = Field(
        default=256,
        ge=1,
        description="requests one worker process answers at once; past it, 503",
    )
    query_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="threads per worker process that run query handlers (search "
        "and result building); more workers, not more threads, use more cores",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="origins allowed to call the API from a browser (CORS); "
        'empty: CORS off. JSON list, e.g. ["https://app.example.com"]',
    )

    # Fine-tune jobs (docs/jobs.md).
    queue_url: str | None = Field(
        default=None,
        description="job queue: unset for SQLite in DATA_DIR, or redis://host:port/db",
    )
    database_url: str | None = Field(
        default=None,
        description="job table: unset for SQLite in DATA_DIR, or "
        "postgresql://user:password@host:port/database to share it between "
        "machines (docs/jobs.md)",
    )
    max_upload_bytes: int = Field(
        default=50_000_000, ge=1024, description="bytes in one fine-tune upload"
    )
    min_upload_tokens: int = Field(
        default=1_000, ge=1, description="tokens a fine-tune upload must contain"
    )
    job_time_limit: float = Field(
        default=1800.0, gt=0, description="seconds one attempt of a job may run"
    )
    job_max_attempts: int = Field(
        default=3, ge=1, le=20, description="attempts before a job is failed"
    )
    job_heartbeat_interval: float = Field(
        default=2.0, gt=0, description="seconds between a running job's heartbeats"
    )
    job_lease: float = Field(
        default=30.0,
        gt=0,
        description="seconds without a heartbeat after which a running job is "
        "taken to have lost its worker and is re-queued or failed",
    )
    max_queued_jobs: int = Field(
        default=20, ge=1, description="jobs queued or running before 429"
    )
    finetunes_per_hour: int = Field(
        default=30,
        ge=1,
        description="fine-tunes one API key (or, without keys, everyone) may "
        "submit per hour before 429",
    )
    upload_retention_days: float = Field(
        default=7.0,
        ge=0,
        description="days a finished job's upload is kept before the worker "
        "deletes it (the job row stays); 0 keeps uploads for ever",
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, url: str | None) -> str | None:
        return None if url is None or not url.strip() else check_database_url(url)

    @model_validator(mode="before")
    @classmethod
    def _read_api_key_file(cls, values: Any) -> Any:
        """Take api_key from api_key_file unless a non-blank key was given."""
        if not isinstance(values, dict):
            return values
        key = values.get("api_key")
        if isinstance(key, str) and not key.strip():
            values = {k: v for k, v in values.items() if k != "api_key"}
            key = None
        path = values.get("api_key_file")
        if key is None and path:
            values = {**values, "api_key": read_api_key_file(Path(path))}
        return values


def read_api_key_file(path: Path) -> str:
    """Return the key on the first line of `path`; raise ValueError naming
    the file when it cannot be read or holds no key."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(
            f"cannot read the API key file {path} ({reason}); write the key on "
            "its first line, or unset WORDVEC_API_KEY_FILE"
        ) from exc
    lines = text.strip().splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(
            f"the API key file {path} is empty; write the key on its first line"
        )
    return lines[0].strip()


@lru_cache
def get_settings() -> Settings:
    """Return the settings read from the environment, once per process.

    Handlers depend on this function, so tests replace it through
    `app.dependency_overrides[get_settings]`.
    """
    return Settings()
