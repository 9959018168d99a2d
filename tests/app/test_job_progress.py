"""A job's progress over all its stages, driven by a clock the test sets."""

import pytest

from app.jobs.progress import (
    JobSize,
    ProgressTracker,
    estimate_stage_seconds,
)
from training.finetune import FinetuneProgress

# The calibration job: the default model and 1 MB of text (docs/jobs.md).
DEFAULT_MODEL_JOB = JobSize(
    upload_tokens=152_235,
    epochs=5,
    vocab_size=37_197,
    dim=100,
    bundle_bytes=76_624_529,
    listed_words=200_000,
    activate=True,
)


class Clock:
    """Seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def training(eta_seconds: float | None) -> FinetuneProgress:
    return FinetuneProgress("training", 0.5, 1000.0, eta_seconds, 2.0, 1, 5)


def tracker_at_training(estimates: dict[str, float]) -> tuple[ProgressTracker, Clock]:
    clock = Clock()
    tracker = ProgressTracker(clock)
    tracker.plan(estimates)
    tracker.enter("counting")
    clock.now = 0.5
    tracker.report(training(eta_seconds=None))
    return tracker, clock


def test_eta_covers_the_stages_after_training() -> None:
    estimates = {"counting": 0.5, "training": 10.0, "indexing": 20.0, "publishing": 1}
    tracker, clock = tracker_at_training(estimates)
    clock.now = 3.0
    tracker.report(training(eta_seconds=5.0))
    snapshot = tracker.snapshot()
    assert snapshot["stage"] == "training"
    assert snapshot["eta_seconds"] == 5.0 + 20.0 + 1.0
    assert snapshot["fraction"] == round(3.0 / (3.0 + 26.0), 4)
    assert snapshot["words_per_second"] == 1000.0


def test_fraction_never_decreases_when_the_estimate_grows() -> None:
    tracker, clock = tracker_at_training({"training": 2.0, "indexing": 1.0})
    clock.now = 2.0
    tracker.report(training(eta_seconds=0.5))
    before = tracker.snapshot()["fraction"]
    clock.now = 2.1
    tracker.report(training(eta_seconds=60.0))
    after = tracker.snapshot()
    assert after["fraction"] == before
    assert after["eta_seconds"] == 61.0


def test_later_stages_stretch_with_the_pace_of_the_finished_ones() -> None:
    clock = Clock()
    tracker = ProgressTracker(clock)
    tracker.plan({"counting": 2.0, "training": 2.0, "indexing": 10.0})
    tracker.enter("counting")
    clock.now = 4.0
    tracker.enter("training")
    clock.now = 12.0
    tracker.enter("evaluating")
    # 12 s for 4 estimated: the index is expected to take 3 x 10 s.
    assert tracker.snapshot()["eta_seconds"] == 30.0


def test_a_stage_past_its_estimate_leaves_only_the_later_stages() -> None:
    clock = Clock()
    tracker = ProgressTracker(clock)
    tracker.plan({"indexing": 0.4, "publishing": 0.1})
    tracker.enter("indexing")
    clock.now = 5.0
    assert tracker.snapshot()["eta_seconds"] == 0.1
    assert tracker.snapshot()["fraction"] < 1


def test_no_eta_before_the_stages_are_planned() -> None:
    tracker = ProgressTracker(Clock())
    tracker.enter("checking base")
    assert tracker.snapshot() == {
        "stage": "checking base",
        "fraction": 0.0,
        "eta_seconds": None,
        "words_per_second": None,
        "loss": None,
    }


def test_a_stage_cannot_come_back() -> None:
    tracker = ProgressTracker(Clock())
    tracker.enter("indexing")
    with pytest.raises(ValueError, match="cannot follow"):
        tracker.enter("training")


def test_index_estimate_grows_with_vocabulary_times_listed_words() -> None:
    small = estimate_stage_seconds(DEFAULT_MODEL_JOB)["indexing"]
    double = JobSize(**{**DEFAULT_MODEL_JOB.__dict__, "vocab_size": 74_394})
    # Twice the words, each listed against twice as many: about four times.
    assert estimate_stage_seconds(double)["indexing"] == pytest.approx(4 * small, 0.1)
    fewer = JobSize(**{**DEFAULT_MODEL_JOB.__dict__, "listed_words": 18_598})
    assert estimate_stage_seconds(fewer)["indexing"] < small * 0.6


def test_a_job_that_does_not_activate_has_no_activating_stage() -> None:
    size = JobSize(**{**DEFAULT_MODEL_JOB.__dict__, "activate": False})
    assert "activating" not in estimate_stage_seconds(size)
    assert "activating" in estimate_stage_seconds(DEFAULT_MODEL_JOB)
