"""Faults with real processes (docs/jobs.md, RELIABILITY.md): a worker
SIGKILLed on every attempt, the API SIGKILLed after a 202 and mid-upload, a
worker SIGSTOPped past its lease, a full disk (a tmpfs, or a cap on file
sizes where mounting one needs rights the run lacks), damaged versions. Each test
runs one scenario of benchmarks/reliability.py and checks the state it
leaves; `benchmarks/reliability.py` runs the same scenarios from the shell."""

import os
import subprocess
from pathlib import Path

import pytest

from benchmarks import reliability
from benchmarks.reliability import Outcome, lab


def run_scenario(name: str, root: Path, base: Path, words: list[str]) -> Outcome:
    with lab(root, base, name) as the_lab:
        outcome: Outcome = getattr(reliability, name)(the_lab, words)
    return outcome


def test_worker_killed_on_every_attempt_fails_the_job_and_the_next_one_runs(
    tmp_path: Path, reliability_base: Path, reliability_words: list[str]
) -> None:
    outcome = run_scenario(
        "worker_killed_repeatedly", tmp_path, reliability_base, reliability_words
    )
    assert outcome.failed_checks == []
    assert outcome.figures["attempts"] == 3


def test_job_accepted_before_the_api_is_killed_runs_after_a_restart(
    tmp_path: Path, reliability_base: Path, reliability_words: list[str]
) -> None:
    outcome = run_scenario(
        "api_killed_after_accept", tmp_path, reliability_base, reliability_words
    )
    assert outcome.failed_checks == []


def test_upload_cut_by_killing_the_api_leaves_no_job_and_no_file(
    tmp_path: Path, reliability_base: Path, reliability_words: list[str]
) -> None:
    outcome = run_scenario(
        "api_killed_mid_upload", tmp_path, reliability_base, reliability_words
    )
    assert outcome.failed_checks == []
    assert outcome.figures["bytes_received_before_kill"] > 0


def test_stopped_worker_cannot_overwrite_the_job_another_worker_finished(
    tmp_path: Path, reliability_base: Path, reliability_words: list[str]
) -> None:
    outcome = run_scenario(
        "stopped_worker_is_fenced", tmp_path, reliability_base, reliability_words
    )
    assert outcome.failed_checks == []
    assert outcome.figures["attempts"] == 2


def test_truncated_or_corrupt_versions_are_refused_and_the_old_one_answers(
    tmp_path: Path, reliability_base: Path, reliability_words: list[str]
) -> None:
    outcome = run_scenario(
        "corrupt_versions_are_refused", tmp_path, reliability_base, reliability_words
    )
    assert outcome.failed_checks == []


def _can_mount(tmp_path: Path) -> str | None:
    if os.geteuid() != 0:
        return "mounting a small tmpfs needs root"
    probe = tmp_path / "probe"
    probe.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return f"cannot mount a tmpfs here: {result.stderr.strip()}"
    subprocess.run(["umount", str(probe)], check=True)
    return None


@pytest.mark.parametrize("mount", [True, False], ids=["tmpfs", "file-size-cap"])
def test_full_disk_refuses_the_upload_and_fails_the_job_leaving_nothing(
    tmp_path: Path, reliability_base: Path, reliability_words: list[str], mount: bool
) -> None:
    # A real small filesystem needs root; the cap on file sizes (RLIMIT_FSIZE,
    # EFBIG instead of ENOSPC) runs anywhere, so the scenario always runs.
    if mount and (reason := _can_mount(tmp_path)) is not None:
        pytest.skip(reason)
    outcome = reliability.disk_full(
        tmp_path, reliability_base, reliability_words, mount=mount
    )
    assert outcome.failed_checks == []
    assert outcome.figures["upload_status"] == 507
    assert outcome.figures["disk"] == ("tmpfs" if mount else "RLIMIT_FSIZE")
