"""Load with real processes (RELIABILITY.md): /similar at concurrency 64
while a fine-tune and two activations happen, overload past the configured
concurrency limit, and memory while a large upload streams in. Shorter
versions of the scenarios `benchmarks/reliability.py` runs for minutes."""

from pathlib import Path

from benchmarks import reliability
from benchmarks.reliability import lab


def test_similar_under_load_fails_nothing_while_versions_switch(
    tmp_path: Path, reliability_base: Path, reliability_words: list[str]
) -> None:
    with lab(tmp_path, reliability_base, "switches") as the_lab:
        outcome = reliability.load_with_switches(
            the_lab, reliability_words, seconds=10, concurrency=64, upload_tokens=20_000
        )
    assert outcome.failed_checks == []
    figures = outcome.figures
    assert figures["failed"] == 0 and figures["requests"] > 0
    # base, the hand-activated version and the fine-tune's result
    assert len(figures["versions_served"]) == 3
    assert figures["workers"] == 2


def test_overload_is_shed_with_503_and_the_service_recovers(
    tmp_path: Path, reliability_base: Path, reliability_words: list[str]
) -> None:
    with lab(tmp_path, reliability_base, "overload") as the_lab:
        outcome = reliability.overload(the_lab, reliability_words, seconds=5, limit=4)
    assert outcome.failed_checks == []
    assert outcome.figures["with_limit"]["statuses"][503] > 0


def test_streaming_a_large_upload_keeps_the_api_memory_flat(
    tmp_path: Path, reliability_base: Path
) -> None:
    with lab(tmp_path, reliability_base, "memory") as the_lab:
        outcome = reliability.upload_memory(the_lab, megabytes=64)
    assert outcome.failed_checks == []
    assert outcome.figures["peak_growth_mb"] < 32
