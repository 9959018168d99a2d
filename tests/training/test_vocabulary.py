from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from training.errors import BundleError, ConfigError, CorpusError
from training.vocabulary import Vocabulary


def make_vocabulary() -> Vocabulary:
    sentences = [["the", "cat", "sat"], ["the", "dog", "sat"], ["the", "cat"]]
    return Vocabulary.build(sentences, min_count=1)


def test_vocabulary_orders_words_by_descending_count_then_alphabet() -> None:
    vocabulary = make_vocabulary()
    assert vocabulary.words == ["the", "cat", "sat", "dog"]
    assert vocabulary.counts.tolist() == [3, 2, 2, 1]
    assert vocabulary.word_to_id["sat"] == 2


def test_vocabulary_drops_words_below_min_count() -> None:
    vocabulary = Vocabulary.build([["a", "a", "b"]], min_count=2)
    assert vocabulary.words == ["a"]
    assert "b" not in vocabulary


def test_vocabulary_keeps_only_max_vocab_size_most_frequent() -> None:
    counter = Counter({"a": 9, "b": 8, "c": 7})
    assert Vocabulary.from_counter(counter, 1, max_vocab_size=2).words == ["a", "b"]


def test_vocabulary_with_no_frequent_word_says_to_lower_min_count() -> None:
    with pytest.raises(CorpusError, match="min-count"):
        Vocabulary.build([["rare", "words", "only"]], min_count=5)


def test_vocabulary_of_empty_corpus_is_an_error() -> None:
    with pytest.raises(CorpusError, match="no words"):
        Vocabulary.build([[]], min_count=1)


def test_vocabulary_rejects_min_count_below_one() -> None:
    with pytest.raises(ConfigError):
        Vocabulary.from_counter(Counter({"a": 1}), min_count=0)


def test_ids_drops_unknown_tokens() -> None:
    assert make_vocabulary().ids(["cat", "unicorn", "the"]) == [1, 0]


def test_noise_distribution_is_counts_to_the_three_quarters_normalised() -> None:
    vocabulary = make_vocabulary()
    noise = vocabulary.noise_distribution()
    expected = np.array([3, 2, 2, 1], dtype=float) ** 0.75
    np.testing.assert_allclose(noise, expected / expected.sum())


def test_keep_probabilities_subsample_frequent_words_only() -> None:
    counts = np.array([100_000, 1_000, 10])
    vocabulary = Vocabulary(["common", "middle", "rare"], counts)
    keep = vocabulary.keep_probabilities(sample=1e-3)
    ratio = counts / (1e-3 * counts.sum())
    np.testing.assert_allclose(keep[0], (np.sqrt(ratio[0]) + 1) / ratio[0], rtol=1e-6)
    assert keep[0] < 0.2
    assert keep[2] == 1.0


def test_keep_probabilities_with_sample_zero_keep_everything() -> None:
    assert make_vocabulary().keep_probabilities(0).tolist() == [1.0] * 4


def test_vocabulary_round_trips_through_a_file(tmp_path: Path) -> None:
    vocabulary = Vocabulary(["naïve", "don't", "東京"], np.array([5, 3, 2]))
    vocabulary.save(tmp_path / "vocabulary.tsv")
    loaded = Vocabulary.load(tmp_path / "vocabulary.tsv")
    assert loaded.words == vocabulary.words
    assert loaded.counts.tolist() == [5, 3, 2]


def test_loading_a_malformed_vocabulary_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "vocabulary.tsv"
    path.write_text("good\t3\nbad line\n", encoding="utf-8")
    with pytest.raises(BundleError, match="line 2"):
        Vocabulary.load(path)
