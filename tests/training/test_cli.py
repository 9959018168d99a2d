"""`wordvec evaluate` through the real entry point: --restrict-vocab reaches
the shipped analogy set, --pairs takes several files and keeps files of the
same name apart, and --json reports the evaluation time."""

import json
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from training.bundle import write_bundle
from training.vocabulary import Vocabulary

# Capitals and countries that share questions in the Google analogy set.
WORDS = ["the", "of", "berlin", "germany", "london", "england", "paris", "france"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    return write_bundle(
        tmp_path_factory.mktemp("evaluate") / "bundle",
        vocabulary=Vocabulary(WORDS, np.arange(len(WORDS), 0, -1, dtype=np.int64)),
        vectors=rng.normal(size=(len(WORDS), 8)).astype(np.float32),
        manifest={"source": "trained"},
    )


def evaluate_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["evaluate", *args, "--json"]) == 0
    return dict(json.loads(capsys.readouterr().out))


def test_restrict_vocab_applies_to_the_shipped_analogy_set(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    everything = evaluate_json(capsys, str(bundle))["analogies"]
    top_two = evaluate_json(capsys, str(bundle), "--restrict-vocab", "2")["analogies"]
    assert everything["oov_questions"] < everything["questions"]
    assert top_two["oov_questions"] == top_two["questions"] == everything["questions"]


def test_pairs_take_several_files_and_keep_same_named_files_apart(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "d").mkdir()
    first = tmp_path / "pairs.txt"
    first.write_text("berlin germany 9\nlondon paris 5\nthe of 1\n")
    second = tmp_path / "d" / "pairs.txt"
    second.write_text("berlin germany 9\nmoon sun 3\n")
    other = tmp_path / "other.txt"
    other.write_text("paris france 9\nlondon england 8\n")
    scores = evaluate_json(
        capsys, str(bundle), "--pairs", str(first), str(second), "--pairs", str(other)
    )
    assert set(scores) == {str(first), str(second), "other", "seconds"}
    assert (scores[str(first)]["pairs"], scores[str(second)]["oov_pairs"]) == (3, 1)
    assert scores["other"]["pairs"] == 2
    assert isinstance(scores["seconds"], float)


def test_text_output_ends_with_the_evaluation_time(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", str(bundle)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:3]] == [
        "wordsim353",
        "simlex999",
        "analogies",
    ]
    assert lines[-1].startswith("  evaluated in ")
