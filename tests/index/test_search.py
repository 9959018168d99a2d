"""The query path over every kind of index: neighbours, analogies,
most_similar, embeddings, prefixes, unknown words and zero vectors."""

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from index.errors import QueryError
from index.search import VectorIndex, WordNotFound

KINDS = ["flat", "hnsw", "ivf-pq"]


@pytest.fixture(scope="module", params=KINDS)
def vector_index(
    request: pytest.FixtureRequest, indexed_bundles: dict[str, Path]
) -> Iterator[VectorIndex]:
    index = VectorIndex.load(indexed_bundles[request.param])
    yield index
    index.close()


def test_neighbours_never_include_the_query_word(vector_index: VectorIndex) -> None:
    for word in ["king", "w0001", "w2999", "zero"]:
        assert word not in {n.word for n in vector_index.neighbours(word, 20)}


def test_neighbours_are_k_words_by_descending_score(vector_index: VectorIndex) -> None:
    found = vector_index.neighbours("w0042", 15)
    scores = [n.score for n in found]
    assert len(found) == 15
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= s <= 1.0 for s in scores)


def test_query_words_are_normalised_before_lookup(vector_index: VectorIndex) -> None:
    assert vector_index.has_word("  KING ")
    assert vector_index.neighbours(" King", 5) == vector_index.neighbours("king", 5)


def test_analogy_answers_queen_and_excludes_its_inputs(
    vector_index: VectorIndex,
) -> None:
    for method in ("3cosadd", "3cosmul"):
        found = [
            n.word for n in vector_index.analogy("man", "woman", "king", 5, method)
        ]
        assert found[0] == "queen"
        assert {"man", "woman", "king"}.isdisjoint(found)


def test_most_similar_with_a_negative_word_answers_the_analogy(
    vector_index: VectorIndex,
) -> None:
    found = vector_index.most_similar(["woman", "king"], ["man"], 5)
    assert found[0].word == "queen"
    assert {"man", "woman", "king"}.isdisjoint(n.word for n in found)


def test_most_similar_without_words_is_refused(vector_index: VectorIndex) -> None:
    with pytest.raises(QueryError):
        vector_index.most_similar([], [], 5)


def test_similarity_is_the_cosine_of_the_two_words(vector_index: VectorIndex) -> None:
    a, _ = vector_index.word_vector("apple")
    b, _ = vector_index.word_vector("apply")
    assert vector_index.similarity("apple", "apply") == pytest.approx(float(a @ b))
    assert vector_index.similarity("apple", "apple") == pytest.approx(1.0)


def test_zero_vector_gives_finite_scores(vector_index: VectorIndex) -> None:
    found = vector_index.neighbours("zero", 5)
    assert len(found) == 5
    assert all(np.isfinite(n.score) for n in found)
    assert vector_index.similarity("zero", "king") == 0.0
    assert all(
        np.isfinite(n.score) for n in vector_index.analogy("zero", "man", "king", 3)
    )


def test_embed_averages_known_words_and_lists_oov_words(
    vector_index: VectorIndex,
) -> None:
    vector, known, oov = vector_index.embed("The King and the QUEEN, xyzzy!")
    assert known == ["king", "queen"]
    assert oov == ["the", "and", "xyzzy"]
    assert vector is not None
    king, _ = vector_index.word_vector("king")
    queen, _ = vector_index.word_vector("queen")
    expected = (king + queen) / np.linalg.norm(king + queen)
    assert np.allclose(vector, expected, atol=1e-5)


def test_embed_sif_weights_rare_words_more(vector_index: VectorIndex) -> None:
    # "man" is the most frequent word, w2999 the rarest.
    vector, _, _ = vector_index.embed("man w2999", weighting="sif")
    assert vector is not None
    man, _ = vector_index.word_vector("man")
    rare, _ = vector_index.word_vector("w2999")
    assert vector @ rare > vector @ man


def test_embed_without_a_known_word_returns_none(vector_index: VectorIndex) -> None:
    assert vector_index.embed("qwrty zxcvb") == (None, [], ["qwrty", "zxcvb"])


def test_vocabulary_prefix_lists_most_frequent_first(
    vector_index: VectorIndex,
) -> None:
    found = vector_index.vocabulary_prefix("APP", 10)
    assert [w for w, _ in found] == ["apple", "apply", "applause"]
    assert [c for _, c in found] == sorted((c for _, c in found), reverse=True)
    assert [w for w, _ in vector_index.vocabulary_prefix("w", 3)] == [
        "woman",
        "w0000",
        "w0001",
    ]


def test_unknown_word_raises_word_not_found_with_suggestions(
    vector_index: VectorIndex,
) -> None:
    with pytest.raises(WordNotFound) as caught:
        vector_index.neighbours("quen", 5)
    assert caught.value.word == "quen"
    assert caught.value.suggestions[0] == "queen"
    assert len(caught.value.suggestions) <= 5


def test_k_below_one_is_refused(vector_index: VectorIndex) -> None:
    with pytest.raises(QueryError, match="k must be"):
        vector_index.neighbours("king", 0)


def test_concurrent_queries_give_the_same_answers_as_sequential(
    vector_index: VectorIndex, indexed_bundles: dict[str, Path]
) -> None:
    words = [f"w{i:04d}" for i in range(0, 3000, 37)]
    # A second instance has its own (empty) neighbour cache.
    fresh = VectorIndex.load(indexed_bundles[vector_index.index_info["kind"]])
    expected = [fresh.neighbours(w, 10) for w in words]
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda w: vector_index.neighbours(w, 10), words))
    assert found == expected


def test_bundle_without_index_is_searched_exactly_with_a_warning(
    bundle_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        index = VectorIndex.load(bundle_path)
    assert "wordvec index" in caplog.text
    assert index.index_info == {"kind": "flat", "built_at_load": True}
    assert index.analogy("man", "woman", "king", 1)[0].word == "queen"
