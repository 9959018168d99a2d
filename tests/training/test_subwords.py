"""fastText-style character n-grams: hashing, the per-word table and vectors
for words outside the vocabulary."""

import numpy as np

from training.subwords import (
    build_subword_table,
    compose_word_vectors,
    fnv1a_32,
    ngram_buckets,
    word_ngrams,
    word_vector_from_subwords,
)
from training.vocabulary import Vocabulary


def test_fnv1a_32_matches_the_published_test_vectors() -> None:
    assert fnv1a_32(b"") == 0x811C9DC5
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1a_32(b"foobar") == 0xBF9CF968


def test_word_ngrams_wrap_the_word_in_boundary_markers() -> None:
    # The example of Bojanowski et al. 2017, section 3.2.
    assert word_ngrams("where", 3, 3) == ["<wh", "whe", "her", "ere", "re>"]


def test_word_ngrams_leave_out_the_whole_marked_word() -> None:
    grams = word_ngrams("her", 3, 6)
    assert "<her>" not in grams
    assert {"<he", "<her", "her", "her>", "er>"} == set(grams)


def test_ngram_buckets_hash_each_ngram_into_range() -> None:
    buckets = ngram_buckets("naïve", 3, 5, 1000)
    grams = word_ngrams("naïve", 3, 5)
    assert buckets == [fnv1a_32(g.encode("utf-8")) % 1000 for g in grams]
    assert all(0 <= b < 1000 for b in buckets)


def test_subword_table_lists_each_words_buckets_in_id_order() -> None:
    vocabulary = Vocabulary(["king", "queen", "an"], np.array([5, 4, 3]))
    table = build_subword_table(vocabulary, 3, 4, 97)
    for i, word in enumerate(vocabulary.words):
        rows = table.rows[table.offsets[i] : table.offsets[i + 1]]
        assert rows.tolist() == ngram_buckets(word, 3, 4, 97)
    assert table.settings() == {"min_n": 3, "max_n": 4, "buckets": 97}


def test_composed_word_vector_is_the_mean_of_word_and_ngram_rows() -> None:
    vocabulary = Vocabulary(["king", "queen"], np.array([5, 4]))
    table = build_subword_table(vocabulary, 3, 4, 50)
    rng = np.random.default_rng(0)
    words = rng.random((2, 8), dtype=np.float32)
    subwords = rng.random((50, 8), dtype=np.float32)
    composed = compose_word_vectors(words, subwords, table)
    rows = ngram_buckets("queen", 3, 4, 50)
    expected = (words[1] + subwords[rows].sum(axis=0)) / (1 + len(rows))
    np.testing.assert_allclose(composed[1], expected, rtol=1e-5)


def test_unseen_word_vector_is_the_mean_of_its_ngram_rows() -> None:
    subwords = np.random.default_rng(1).random((64, 4), dtype=np.float32)
    vector = word_vector_from_subwords("kings", subwords, 3, 4, 64)
    rows = ngram_buckets("kings", 3, 4, 64)
    assert vector is not None
    np.testing.assert_allclose(vector, subwords[rows].mean(axis=0), rtol=1e-6)


def test_word_too_short_for_any_ngram_has_no_subword_vector() -> None:
    subwords = np.zeros((8, 4), dtype=np.float32)
    assert word_vector_from_subwords("a", subwords, 3, 6, 8) is None
