"""Running one attempt of a fine-tune job, in the worker process.

An attempt: claim the job (a fresh lease) -> fine-tune the base version on
the upload into DATA_DIR/staging -> build the index -> publish the version
(atomic rename) -> activate it, unless the job says not to -> mark the job
succeeded. Each stage is written to the job table as it starts, and a
heartbeat thread writes progress (app/jobs/progress.py) and brings back
cancellation; losing the lease, a cancel request or the time
limit stop the training at its next progress report. Past the time limit
plus a lease the heartbeat stops, so a hang outside training (indexing,
publishing) lets the sweep fail the job.

An attempt that lost its job never leaves a trace: the lease is checked
before publishing, the switch of `active` and the success record happen
under one lock of the job table (`JobStore.fenced_success`), and a version
published by an attempt whose success step then fails for any reason (lease
gone, job database unreachable or locked, activation refused) is deleted
again unless it became active.

Errors in the job's input (a bundle that cannot be fine-tuned, settings out
of range) fail the job at once; a job database that cannot be reached or
does not grant its lock in time, and anything unexpected, end the attempt
and the job is retried until its attempts are used up.
"""

import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.jobs.database import DatabaseUnavailable
from app.jobs.progress import JobSize, ProgressTracker, estimate_stage_seconds
from app.jobs.store import Job, JobStore, LeaseLost
from app.jobs.uploads import NO_SPACE_ERRNOS
from app.registry import ActivationRefused, ModelRegistry, RegistryError, VersionInfo
from index.build import IndexConfig, build_index
from training.errors import FinetuneCancelled, WordvecError
from training.finetune import FinetuneConfig, FinetuneProgress, finetune

logger = logging.getLogger(__name__)


def worker_name() -> str:
    """Return this process's name in the job table: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class _Attempt:
    """State shared between an attempt's training thread and its heartbeat."""

    job: Job
    lease: str
    deadline: float
    progress: ProgressTracker
    cancel_requested: bool = False
    lease_lost: bool = False
    timed_out: bool = False
    staging: Path | None = None

    def should_stop(self) -> bool:
        if time.monotonic() > self.deadline:
            self.timed_out = True
        return self.cancel_requested or self.lease_lost or self.timed_out


class JobRunner:
    """Runs fine-tune jobs from the job table against the model registry."""

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        store: JobStore,
        enqueue: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.enqueue = enqueue
        self.worker = worker_name()

    def run(self, job_id: str) -> None:
        """Run one attempt of job `job_id` if it is still queued."""
        job = self.store.claim(job_id, self.worker)
        if job is None:
            logger.info("job %s is not queued any more; nothing to do", job_id)
            return
        assert job.lease is not None
        attempt = _Attempt(
            job,
            job.lease,
            time.monotonic() + self.settings.job_time_limit,
            ProgressTracker(),
        )
        stop_heartbeat = threading.Event()
        heartbeat = threading.Thread(
            target=self._heartbeat,
            args=(attempt, stop_heartbeat),
            name=f"heartbeat-{job_id[:8]}",
            daemon=True,
        )
        heartbeat.start()
        try:
            try:
                self._attempt(attempt)
            finally:
                # Before the outcome is written: a disk filled by the half-built
                # bundle must not stop the job table from recording the failure.
                _discard_staging(attempt)
        except LeaseLost:
            logger.warning("job %s: lease lost; this attempt writes nothing", job_id)
        except FinetuneCancelled:
            self._stopped(attempt)
        except DatabaseUnavailable as exc:
            # Before WordvecError: an outage or a held lock is not bad input.
            logger.error("job %s: attempt %d: %s", job_id, job.attempts, exc)
            message = f"{exc.summary} during attempt {job.attempts}"
            self._end(attempt, message, retry=True)
        except WordvecError as exc:
            self._end(attempt, str(exc), retry=False)
        except OSError as exc:
            logger.exception("job %s: attempt %d crashed", job_id, job.attempts)
            self._end(attempt, _os_error_message(exc), retry=True)
        except Exception as exc:
            logger.exception("job %s: attempt %d crashed", job_id, job.attempts)
            self._end(attempt, f"unexpected {type(exc).__name__}: {exc}", retry=True)
        finally:
            stop_heartbeat.set()
            heartbeat.join()

    def _attempt(self, attempt: _Attempt) -> None:
        job = attempt.job
        params = job.params
        # The base was recorded when the job was submitted; rows queued by an
        # older server may lack it.
        base = (
            job.base_version
            or params.get("base_version")
            or self.registry.active_version()
        )
        if base is None:
            raise WordvecError(
                "there is no active model to fine-tune; activate one with "
                "`wordvec models activate` or name a base_version"
            )
        self._enter(attempt, "checking base")
        self._check_base(base)
        base_info = self.registry.get(base)
        base_path = base_info.path
        self.store.set_base_version(job.id, attempt.lease, base)
        version = self.registry.new_version_name()
        staging = attempt.staging = self.registry.staging_path(version)
        config = FinetuneConfig(
            epochs=params.get("epochs") or FinetuneConfig.epochs,
            lr=params.get("lr"),
            min_count=params.get("min_count") or FinetuneConfig.min_count,
        )
        upload = self.registry.uploads_dir / job.upload["file"]
        logger.info(
            "job %s: fine-tuning %s on %s into %s", job.id, base, upload, version
        )
        index_config = IndexConfig()
        size = job_size(job, base_info, config, index_config)
        attempt.progress.plan(estimate_stage_seconds(size))
        result = finetune(
            base_path,
            [upload],
            config,
            staging,
            version=version,
            progress=False,
            on_progress=lambda progress: self._report(attempt, progress),
            should_stop=attempt.should_stop,
        )
        if attempt.should_stop():
            raise FinetuneCancelled("stopped after training")
        self._enter(attempt, "indexing")
        index_info = build_index(staging, index_config)
        if attempt.should_stop():
            raise FinetuneCancelled("stopped after indexing")
        attempt.progress.enter("publishing")
        # A last check of the lease before anything becomes visible: an
        # attempt that lost its job must not publish over its successor.
        self.store.heartbeat(job.id, attempt.lease, attempt.progress.snapshot())
        self.registry.publish(staging, version)
        outcome = {
            "new_words": result.new_words[:50],
            "new_word_count": len(result.new_words),
            "evaluation_before": result.evaluation_before,
            "evaluation_after": result.evaluation_after,
            "training": result.stats,
            "index": {k: index_info.get(k) for k in ("kind", "recall_at_10")},
            "activated": bool(params.get("activate", True)),
        }
        try:
            self._succeed(attempt, version, outcome)
        except Exception as exc:
            # Not recorded as the job's result: unless the switch of `active`
            # stayed (the fence puts it back when the record fails), nothing
            # refers to the version, and leaving it would look like a result.
            if self.registry.active_version() == version or self._may_be_result(
                job.id, version
            ):
                raise
            withdrawn = self._withdraw(job.id, version, exc)
            if withdrawn and isinstance(exc, ActivationRefused):
                # Its message says to delete the version, which is done.
                raise WordvecError(
                    f"the new version failed activation's checks ({exc.__cause__}) "
                    "and was deleted; the active version is unchanged"
                ) from exc
            raise

    def _enter(self, attempt: _Attempt, stage: str) -> None:
        """Start `stage` and record it at once, so that a poll sees even a
        stage shorter than a heartbeat interval."""
        attempt.progress.enter(stage)
        try:
            self._beat(attempt)
        except LeaseLost:
            raise
        except Exception:
            # The heartbeat thread writes it again soon; no reason to fail.
            logger.exception("job %s: cannot record stage %s", attempt.job.id, stage)

    def _beat(self, attempt: _Attempt) -> None:
        """Write the attempt's progress and renew its lease; note a cancel
        request, or a lost lease (then raise LeaseLost)."""
        try:
            cancel = self.store.heartbeat(
                attempt.job.id, attempt.lease, attempt.progress.snapshot()
            )
        except LeaseLost:
            attempt.lease_lost = True
            raise
        attempt.cancel_requested = attempt.cancel_requested or cancel

    def _report(self, attempt: _Attempt, progress: FinetuneProgress) -> None:
        if progress.stage != attempt.progress.stage:
            self._enter(attempt, progress.stage)
        attempt.progress.report(progress)

    def _check_base(self, base: str) -> None:
        """Check the base as activation would, so a damaged base fails the job
        instead of passing its damage on under fresh checksums."""
        try:
            self.registry.check(base)
        except RegistryError as exc:
            raise WordvecError(
                f"cannot fine-tune base version {base!r}: {exc}; or name another "
                "base_version"
            ) from exc

    def _succeed(
        self, attempt: _Attempt, version: str, outcome: dict[str, Any]
    ) -> None:
        """Record success and, if asked, activate `version`, both only while
        the attempt still holds its lease (LeaseLost otherwise)."""
        job_id = attempt.job.id
        fence = self.store.fenced_success(job_id, attempt.lease, version, outcome)
        if not outcome["activated"]:
            with fence:
                return
        # Activated before the job is marked succeeded, in one step, so
        # "succeeded" means the version is active. A version that fails
        # activation's checks is deleted again, and the job fails.
        # Not written at once: the fence holds the job table's write lock.
        attempt.progress.enter("activating")
        self.registry.activate(version, fence=fence)

    def _may_be_result(self, job_id: str, version: str) -> bool:
        """Return whether the job row names `version` as its result, or cannot
        be read: a commit whose answer was lost may still have landed, and
        deleting a version a succeeded job names would be worse than keeping
        an unreferenced one."""
        try:
            return self.store.get(job_id).result_version == version
        except Exception:
            logger.exception("job %s: cannot read the job back", job_id)
            return True

    def _withdraw(self, job_id: str, version: str, cause: Exception) -> bool:
        """Delete `version`, whose success step failed with `cause`; return
        whether it is gone."""
        why = type(cause).__name__
        try:
            self.registry.delete(version)
        except RegistryError as exc:
            logger.error(
                "job %s: cannot delete version %s after its success step failed "
                "(%s): %s",
                job_id,
                version,
                why,
                exc,
            )
            return False
        logger.warning(
            "job %s: success step failed (%s); deleted its version %s",
            job_id,
            why,
            version,
        )
        return True

    def _heartbeat(self, attempt: _Attempt, stop: threading.Event) -> None:
        # Past the time limit, the work thread stops at its next check. If it
        # hangs instead, stop renewing the lease a lease later, so that the
        # sweep can end the job and fence this attempt.
        give_up = attempt.deadline + self.settings.job_lease
        while not stop.wait(self.settings.job_heartbeat_interval):
            if time.monotonic() > give_up:
                attempt.timed_out = True
                logger.warning(
                    "job %s: past its time limit; heartbeats stopped", attempt.job.id
                )
                return
            try:
                self._beat(attempt)
            except LeaseLost:
                return
            except Exception:
                # A busy or briefly unavailable database must not kill the
                # attempt; the lease tolerates missed beats.
                logger.exception("job %s: heartbeat failed", attempt.job.id)

    def _stopped(self, attempt: _Attempt) -> None:
        job_id = attempt.job.id
        try:
            if attempt.lease_lost:
                logger.warning("job %s: lease lost; attempt abandoned", job_id)
            elif attempt.cancel_requested:
                self.store.cancelled(job_id, attempt.lease)
            else:
                limit = self.settings.job_time_limit
                self._end(
                    attempt,
                    f"the attempt ran past the job time limit of {limit:g} s "
                    "(WORDVEC_JOB_TIME_LIMIT); upload less text or raise the limit",
                    retry=False,
                )
        except LeaseLost:
            logger.warning("job %s: lease lost while stopping", job_id)

    def _end(self, attempt: _Attempt, error: str, *, retry: bool) -> None:
        job_id = attempt.job.id
        try:
            status = self.store.fail(job_id, attempt.lease, error, retry=retry)
        except LeaseLost:
            logger.warning("job %s: lease lost; error not recorded: %s", job_id, error)
            return
        except DatabaseUnavailable as exc:
            # The job stays `running` without heartbeats; a sweep re-queues
            # or fails it once the lease runs out, counting this attempt.
            logger.error(
                "job %s: cannot record the end of the attempt (%s): %s",
                job_id,
                error,
                exc,
            )
            return
        if status == "queued":
            self.enqueue(job_id)


def _os_error_message(exc: OSError) -> str:
    # numpy reports a short write ("N requested and M written") without errno.
    short_write = exc.errno is None and "requested and" in str(exc)
    if exc.errno in NO_SPACE_ERRNOS or short_write:
        return (
            f"the data directory ran out of space while writing the new version "
            f"({exc}); free some space (e.g. `wordvec models delete` unused "
            "versions) and submit the job again"
        )
    return f"unexpected {type(exc).__name__}: {exc}"


def _discard_staging(attempt: _Attempt) -> None:
    # Published bundles were renamed away; whatever is left is unfinished.
    if attempt.staging is not None and attempt.staging.exists():
        shutil.rmtree(attempt.staging, ignore_errors=True)


def job_size(
    job: Job, base: VersionInfo, config: FinetuneConfig, index_config: IndexConfig
) -> JobSize:
    """Return what the cost of `job`'s stages depends on, from its upload
    record and the base version's manifest and files."""
    manifest = base.manifest
    files = (p for p in base.path.rglob("*") if p.is_file())
    return JobSize(
        upload_tokens=int(job.upload.get("tokens") or 0),
        epochs=config.epochs,
        vocab_size=int(manifest.get("vocab_size") or 0),
        dim=int(manifest.get("dim") or 0),
        bundle_bytes=sum(p.stat().st_size for p in files),
        listed_words=index_config.precompute_words,
        activate=bool(job.params.get("activate", True)),
    )
