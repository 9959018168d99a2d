"""Evaluation: Spearman on word pairs and 3CosAdd analogies, checked by hand
on tiny vectors and against gensim's own scorers on the same vectors."""

import json
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath
from scipy.stats import spearmanr

from training.errors import EvaluationError
from training.evaluate import (
    ANALOGIES,
    SIMLEX999,
    WORDSIM353,
    evaluate_analogies,
    evaluate_default,
    evaluate_word_pairs,
    read_analogies,
    read_word_pairs,
    spearman,
)
from training.vocabulary import Vocabulary

# Four words on a plane: queen = king - man + woman exactly.
ROYAL_WORDS = ["man", "woman", "king", "queen", "apple"]
ROYAL_VECTORS = np.array(
    [[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 1, 1], [-1, -1, 0.2]], dtype=np.float32
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_spearman_averages_tied_ranks_like_scipy() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, 200).astype(float)  # many ties
    y = x + rng.normal(0, 2, 200)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)


def test_spearman_is_none_when_undefined() -> None:
    assert spearman(np.array([1.0]), np.array([2.0])) is None
    assert spearman(np.array([1.0, 1.0, 1.0]), np.array([1.0, 2.0, 3.0])) is None


def test_word_pairs_skip_comments_and_header_and_lower_case_words(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "pairs.txt",
        "# a comment\nWord 1\tWord 2\tHuman (mean)\nKing\tQueen\t8.5\nman woman 6\n\n",
    )
    assert read_word_pairs(path) == [("king", "queen", 8.5), ("man", "woman", 6.0)]


def test_simlex_header_selects_the_simlex999_column(tmp_path: Path) -> None:
    path = write(
        tmp_path / "SimLex-999.txt",
        "word1\tword2\tPOS\tconc(w1)\tSimLex999\tAssoc(USF)\n"
        "old\tnew\tA\t2.72\t1.58\t7.25\n"
        "smart\tintelligent\tA\t1.75\t9.2\t7.11\n",
    )
    assert read_word_pairs(path) == [
        ("old", "new", 1.58),
        ("smart", "intelligent", 9.2),
    ]


def test_pair_file_without_a_scored_line_raises(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.txt", "# nothing\nword1 word2\n")
    with pytest.raises(EvaluationError, match="no 'word1 word2 score' line"):
        read_word_pairs(path)


def test_missing_evaluation_file_raises(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="does not exist"):
        evaluate_word_pairs(ROYAL_WORDS, ROYAL_VECTORS, tmp_path / "nope.txt")


def test_word_pairs_report_oov_pairs_and_perfect_correlation(tmp_path: Path) -> None:
    path = write(
        tmp_path / "pairs.txt",
        "man king 9\nking queen 5\nking apple 0.5\nking unicorn 3\n",
    )
    scores = evaluate_word_pairs(ROYAL_WORDS, ROYAL_VECTORS, path)
    assert (scores.pairs, scores.oov_pairs) == (3, 1)
    assert scores.spearman == pytest.approx(1.0)


def test_analogy_finds_queen_and_excludes_the_question_words(tmp_path: Path) -> None:
    # king itself is nearest to king - man + woman; it must not be the answer.
    path = write(tmp_path / "q.txt", ": family\nman king woman queen\n")
    scores = evaluate_analogies(ROYAL_WORDS, ROYAL_VECTORS, path)
    assert scores.total == 1.0
    assert scores.sections["family"].correct == 1


def test_analogy_outside_restrict_vocab_is_oov(tmp_path: Path) -> None:
    path = write(tmp_path / "q.txt", ": family\nman king woman queen\n")
    scores = evaluate_analogies(ROYAL_WORDS, ROYAL_VECTORS, path, restrict_vocab=3)
    assert (scores.questions, scores.oov_questions, scores.total) == (1, 1, None)


def test_analogy_sections_split_into_semantic_and_syntactic(tmp_path: Path) -> None:
    path = write(
        tmp_path / "q.txt",
        ": family\nMan King Woman Queen\n: gram1-test\nman woman king apple\n",
    )
    scores = evaluate_analogies(
        Vocabulary(ROYAL_WORDS, np.arange(5, 0, -1)), ROYAL_VECTORS, path
    )
    assert (scores.semantic, scores.syntactic, scores.total) == (1.0, 0.0, 0.5)
    assert set(scores.to_dict()) == {
        "semantic",
        "syntactic",
        "total",
        "questions",
        "oov_questions",
    }


def test_analogy_line_without_four_words_raises(tmp_path: Path) -> None:
    path = write(tmp_path / "q.txt", ": family\nman king woman\n")
    with pytest.raises(EvaluationError, match="line 2"):
        read_analogies(path)


def test_shipped_sets_hold_their_published_sizes() -> None:
    assert len(read_word_pairs(WORDSIM353)) == 353
    assert len(read_word_pairs(SIMLEX999)) == 999
    assert sum(len(q) for q in read_analogies(ANALOGIES).values()) == 19_544


def test_default_scores_are_json_without_nan_even_with_no_known_word() -> None:
    scores = evaluate_default(["zzq", "qqz"], np.ones((2, 3), dtype=np.float32))
    json.dumps(scores, allow_nan=False)
    assert scores["wordsim353"] == {"spearman": None, "pairs": 0, "oov_pairs": 353}
    assert scores["analogies"]["total"] is None


def test_scores_agree_with_gensim_on_lee_fasttext_vectors() -> None:
    kv = KeyedVectors.load_word2vec_format(datapath("lee_fasttext.vec"))
    words = list(kv.index_to_key)
    for path in (WORDSIM353, SIMLEX999):
        ours = evaluate_word_pairs(words, kv.vectors, path)
        _, theirs, oov_percent = kv.evaluate_word_pairs(str(path))
        assert ours.spearman == pytest.approx(theirs.statistic, abs=1e-9)
        assert ours.oov_pairs / (ours.pairs + ours.oov_pairs) * 100 == pytest.approx(
            oov_percent
        )
    ours_analogies = evaluate_analogies(words, kv.vectors, ANALOGIES)
    accuracy, _ = kv.evaluate_word_analogies(str(ANALOGIES))
    assert ours_analogies.total == pytest.approx(accuracy)


def test_analogy_accuracy_agrees_with_gensim_under_restrict_vocab(
    tmp_path: Path,
) -> None:
    # Every 25th question of each section, on random vectors that make
    # about a third of the analogies hold, with the vocabulary cut to 600.
    sections = read_analogies(ANALOGIES)
    lines = []
    for name, questions in sections.items():
        lines.append(f": {name}")
        lines.extend(" ".join(q) for q in questions[::25])
    path = write(tmp_path / "questions.txt", "\n".join(lines) + "\n")
    words = sorted({w for q in read_analogies(path).values() for t in q for w in t})
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((len(words), 50)).astype(np.float32)
    index = {w: i for i, w in enumerate(words)}
    for questions in read_analogies(path).values():
        for a, b, c, d in questions[::3]:
            target = vectors[index[b]] - vectors[index[a]] + vectors[index[c]]
            vectors[index[d]] = 0.5 * vectors[index[d]] + 0.5 * target
    ours = evaluate_analogies(words, vectors, path, restrict_vocab=600)
    kv = KeyedVectors(50)
    kv.add_vectors(words, vectors)
    accuracy, gensim_sections = kv.evaluate_word_analogies(
        str(path), restrict_vocab=600
    )
    total = gensim_sections[-1]
    assert ours.oov_questions > 0
    assert ours.total == pytest.approx(accuracy)
    assert ours.questions - ours.oov_questions == len(total["correct"]) + len(
        total["incorrect"]
    )
