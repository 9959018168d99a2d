"""`wordvec train --dry-run` on the shipped corpus: the whole path in seconds
through the real command line, leaving nothing behind."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.dry_run import write_sample

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CORPUS = ROOT / "data" / "corpus"


def run_wordvec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dry_run_leaves_nothing_at_output(tmp_path: Path) -> None:
    output = tmp_path / "model"
    done = run_wordvec(
        "train", str(DEFAULT_CORPUS), "--output", str(output), "--dry-run"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("dry run: trained 1 epoch")
    assert "wordsim353" in done.stdout and "analogies" in done.stdout
    assert "the bundle loads and passes its checksums" in done.stderr
    assert not output.exists()
    assert list(tmp_path.iterdir()) == []


def test_dry_run_json_reports_one_epoch_and_scores(tmp_path: Path) -> None:
    done = run_wordvec(
        "train",
        str(DEFAULT_CORPUS),
        "--output",
        str(tmp_path / "model"),
        "--dry-run",
        "--epochs",
        "5",
        "--no-progress",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["dry_run"] is True and summary["bundle"] is None
    assert len(summary["training"]["epoch_losses"]) == 1
    assert set(summary["evaluation"]) == {"wordsim353", "simlex999", "analogies"}


@pytest.mark.parametrize("mode", [["--dry-run"], []], ids=["dry-run", "real-run"])
def test_dry_run_refuses_an_existing_output_like_a_real_run(
    tmp_path: Path, mode: list[str]
) -> None:
    (tmp_path / "model").mkdir()
    done = run_wordvec(
        "train", str(DEFAULT_CORPUS), "--output", str(tmp_path / "model"), *mode
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"wordvec: error: {tmp_path / 'model'} already exists; choose another path"
    ]
    # Refused before the corpus was read: no encoding directory was made.
    assert list(tmp_path.iterdir()) == [tmp_path / "model"]


def test_sample_takes_about_the_token_budget_from_every_file(tmp_path: Path) -> None:
    files = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.txt"
        path.write_text(f"{name} word here\n" * 1000, encoding="utf-8")
        files.append(path)
    sample = write_sample(files, tmp_path / "sample.txt", max_tokens=300)
    lines = sample.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 100
    assert lines.count("a word here") == lines.count("b word here") == 50
