"""How far a running fine-tune job has got, over the whole job.

A job passes through the stages of `STAGES` in order. Before the work
starts, each stage's cost in seconds is estimated from the job's size
(upload tokens, epochs, the base version's vocabulary and bytes) with rates
measured on the default model; see `estimate_stage_seconds`. While the job
runs, `eta_seconds` is what is left of the current stage (for training, the
trainer's own estimate from its measured rate) plus the estimates of the
stages after it, scaled by how the finished stages compared with their
estimates; `fraction` is the elapsed share of elapsed plus ETA, never lower
than an earlier report of the same attempt.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from training.finetune import FinetuneProgress

# The order a job's progress goes through; "done" is written by the job
# table when the job succeeds. A job that is not activated skips
# "activating"; a retried attempt starts again from "starting".
STAGES = (
    "starting",
    "checking base",
    "counting",
    "training",
    "evaluating",
    "writing",
    "indexing",
    "publishing",
    "activating",
    "done",
)

# Rates measured on the default model (37,197 words, dim 100, a 77 MB
# bundle with its index) fine-tuned on 1 MB of text (152,235 tokens, 5
# epochs) on 2 idle cores: checking 0.12 s, counting 0.44 s, training 0.6 s,
# evaluating 1.65 s, writing 0.07 s, indexing 3.85 s (3.6 s of it the exact
# neighbour lists), publishing 0.08 s, activating 0.08 s. A run with other
# work on the cores took 10.5 s to index but only 20% longer for the rest,
# so the pace scaling below corrects only part of such a slowdown.
CHECK_BYTES_PER_SECOND = 600e6
COUNT_TOKENS_PER_SECOND = 350_000.0
# Upload tokens times epochs. Only a first guess: once training reports,
# the trainer's own ETA from its measured rate replaces it.
TRAIN_TOKENS_PER_SECOND = 1_000_000.0
EVALUATE_SECONDS_PER_WORD = 4.3e-5
WRITE_BYTES_PER_SECOND = 1e9
# Multiply-adds of the exact neighbour lists (listed words x vocabulary x
# dim) per second, and the rest of the build per vocabulary word.
NEIGHBOUR_MACS_PER_SECOND = 3.9e10
INDEX_SECONDS_PER_WORD = 7e-6
PUBLISH_SECONDS = 0.1
# How far the pace of the finished stages may stretch or shrink the
# estimates of the stages still to come.
PACE_RANGE = (0.5, 4.0)
# Below this many estimated seconds of finished work, the pace is noise.
MIN_PACE_EVIDENCE = 1.0


@dataclass(frozen=True)
class JobSize:
    """What the cost of a fine-tune job's stages depends on."""

    upload_tokens: int
    epochs: int
    vocab_size: int
    dim: int
    bundle_bytes: int
    listed_words: int
    activate: bool


def estimate_stage_seconds(size: JobSize) -> dict[str, float]:
    """Return the estimated seconds of each stage the job will go through,
    in order, on a 2-core machine like the one the rates were measured on."""
    vocab = size.vocab_size
    check = size.bundle_bytes / CHECK_BYTES_PER_SECOND
    neighbour_macs = min(size.listed_words, vocab) * vocab * size.dim
    # TODO: an HNSW or IVF-PQ index (vocabularies past 150k words at dim 100)
    # also trains and tunes itself, which this leaves out; time those builds
    # on a large model and add a term per kind.
    estimates = {
        "starting": 0.0,
        "checking base": check,
        "counting": size.upload_tokens / COUNT_TOKENS_PER_SECOND,
        "training": size.upload_tokens * size.epochs / TRAIN_TOKENS_PER_SECOND,
        "evaluating": vocab * EVALUATE_SECONDS_PER_WORD,
        "writing": size.bundle_bytes / WRITE_BYTES_PER_SECOND,
        "indexing": neighbour_macs / NEIGHBOUR_MACS_PER_SECOND
        + vocab * INDEX_SECONDS_PER_WORD,
        "publishing": PUBLISH_SECONDS,
    }
    if size.activate:
        estimates["activating"] = check
    return estimates


class ProgressTracker:
    """The progress of one attempt: the work thread reports stages and
    training progress, the heartbeat thread takes snapshots for the job table."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._stage = "starting"
        self._stage_started = self._started
        self._estimates: dict[str, float] = {}
        self._durations: dict[str, float] = {}
        self._training: FinetuneProgress | None = None
        self._fraction = 0.0

    @property
    def stage(self) -> str:
        return self._stage

    def plan(self, estimates: dict[str, float]) -> None:
        """Set the estimated seconds of the stages (from `estimate_stage_seconds`)."""
        with self._lock:
            self._estimates = dict(estimates)

    def enter(self, stage: str) -> None:
        """Start `stage`; raises ValueError for a stage that is not after the
        current one in STAGES (an internal mistake, not a user's)."""
        if STAGES.index(stage) < STAGES.index(self._stage):
            raise ValueError(f"stage {stage!r} cannot follow {self._stage!r}")
        if stage == self._stage:
            return
        with self._lock:
            now = self._clock()
            self._durations[self._stage] = now - self._stage_started
            self._stage, self._stage_started = stage, now

    def report(self, progress: FinetuneProgress) -> None:
        """Take a progress report of the fine-tune (its stage, and the
        trainer's rate and ETA while training)."""
        self.enter(progress.stage)
        if progress.stage == "training":
            with self._lock:
                self._training = progress

    def snapshot(self) -> dict[str, Any]:
        """Return the progress to store in the job table: stage, fraction,
        eta_seconds (None until the stages are planned), and the trainer's
        words_per_second and loss once training has reported."""
        with self._lock:
            now = self._clock()
            eta = self._eta(now - self._stage_started)
            elapsed = now - self._started
            if eta is not None and elapsed + eta > 0:
                # Only "done" is 1; the job table writes it with the success.
                fraction = min(elapsed / (elapsed + eta), 0.999)
                self._fraction = max(self._fraction, fraction)
            training = self._training or FinetuneProgress("", 0.0)
            return {
                "stage": self._stage,
                "fraction": round(self._fraction, 4),
                "eta_seconds": _rounded(eta, 1),
                "words_per_second": _rounded(training.words_per_second, 0),
                "loss": _rounded(training.loss, 4),
            }

    def _eta(self, in_stage: float) -> float | None:
        if not self._estimates:
            return None
        stage, pace = self._stage, self._pace()
        current = max(pace * self._estimates.get(stage, 0.0) - in_stage, 0.0)
        training = self._training
        if stage == "training" and training and training.eta_seconds is not None:
            current = training.eta_seconds
        later = STAGES[STAGES.index(stage) + 1 :]
        return current + pace * sum(self._estimates.get(s, 0.0) for s in later)

    def _pace(self) -> float:
        """Return actual over estimated seconds of the finished stages, so a
        busy (or fast) machine stretches (or shrinks) what is left."""
        finished = [s for s in self._durations if s in self._estimates]
        estimated = sum(self._estimates[s] for s in finished)
        if estimated < MIN_PACE_EVIDENCE:
            return 1.0
        actual = sum(self._durations[s] for s in finished)
        low, high = PACE_RANGE
        return min(max(actual / estimated, low), high)


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
