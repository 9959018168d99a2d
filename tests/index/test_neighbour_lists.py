"""Precomputed neighbour lists: they hold exactly what flat search returns,
words or k past them fall back to searching, index.json describes them, and
indexes built before them still load."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from index.build import IndexConfig, build_index
from index.search import Neighbour, VectorIndex
from tests.index.conftest import PRECOMPUTED_K, PRECOMPUTED_WORDS, write_test_bundle
from training.bundle import load_bundle
from training.errors import BundleError

# float32 scores from a batched (BLAS) search and a single-query search may
# differ in the last bits, which can swap neighbours whose scores tie.
TIE = 1e-5


@pytest.fixture(scope="module")
def searched_only(tmp_path_factory: pytest.TempPathFactory) -> VectorIndex:
    """The shared test bundle's flat index with no precomputed lists: every
    answer comes from exact search."""
    path = write_test_bundle(tmp_path_factory.mktemp("plain") / "bundle")
    build_index(path, IndexConfig(kind="flat", precompute_words=0, threads=1))
    return VectorIndex.load(path)


def listed_neighbours(index: VectorIndex, word: str, k: int) -> list[Neighbour]:
    """Return the word's precomputed answer; fail when it has none."""
    listed = index.listed(word, k)
    assert listed is not None
    return [Neighbour(w, s) for w, s in zip(listed[0], listed[1].tolist(), strict=True)]


def assert_same_answer(got: list[Neighbour], expected: list[Neighbour]) -> None:
    """Scores agree to TIE; words agree wherever their score is not tied."""
    assert len(got) == len(expected)
    got_scores = np.array([n.score for n in got])
    expected_scores = np.array([n.score for n in expected])
    assert np.allclose(got_scores, expected_scores, atol=TIE)
    for position, (a, b) in enumerate(zip(got, expected, strict=True)):
        tied = np.abs(expected_scores - expected_scores[position]) <= TIE
        if tied.sum() == 1:
            assert a.word == b.word
        else:
            tied_words = {expected[i].word for i in np.flatnonzero(tied)}
            assert a.word in tied_words or a.score <= expected_scores.min() + TIE


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf-pq"])
def test_precomputed_lists_equal_exact_flat_search_for_every_kind(
    kind: str, indexed_bundles: dict[str, Path], searched_only: VectorIndex
) -> None:
    # Approximate kinds give listed words exact answers too.
    index = VectorIndex.load(indexed_bundles[kind])
    words = load_bundle(indexed_bundles[kind]).vocabulary.words
    for word_id in [*range(8), *range(8, PRECOMPUTED_WORDS, 37)]:
        word = words[word_id]
        listed = listed_neighbours(index, word, PRECOMPUTED_K)
        assert_same_answer(listed, searched_only.neighbours(word, PRECOMPUTED_K))
        assert word not in {n.word for n in listed}


def test_lists_hold_k_neighbours_even_for_a_zero_vector(
    indexed_bundles: dict[str, Path],
) -> None:
    index = VectorIndex.load(indexed_bundles["flat"])
    listed = index.neighbours("zero", PRECOMPUTED_K)
    assert len(listed) == PRECOMPUTED_K
    assert {n.score for n in listed} == {0.0}
    assert "zero" not in {n.word for n in listed}


def test_a_word_past_the_lists_is_searched_and_still_exact(
    indexed_bundles: dict[str, Path], searched_only: VectorIndex
) -> None:
    index = VectorIndex.load(indexed_bundles["flat"])
    word = "w2500"
    assert index.listed(word, 10) is None
    assert_same_answer(index.neighbours(word, 10), searched_only.neighbours(word, 10))


def test_k_past_the_lists_is_searched_and_still_exact(
    indexed_bundles: dict[str, Path], searched_only: VectorIndex
) -> None:
    index = VectorIndex.load(indexed_bundles["flat"])
    k = PRECOMPUTED_K + 5
    assert index.listed("king", k) is None
    assert_same_answer(index.neighbours("king", k), searched_only.neighbours("king", k))


def test_index_json_records_the_lists_and_the_files_match_it(
    indexed_bundles: dict[str, Path],
) -> None:
    directory = indexed_bundles["hnsw"] / "index"
    entry = json.loads((directory / "index.json").read_text())["neighbour_lists"]
    assert entry["words"] == PRECOMPUTED_WORDS
    assert entry["k"] == PRECOMPUTED_K
    assert entry["seconds"] >= 0
    ids = np.load(directory / "neighbour_ids.npy")
    scores = np.load(directory / "neighbour_scores.npy")
    assert (ids.dtype, scores.dtype) == (np.int32, np.float32)
    assert ids.shape == scores.shape == (PRECOMPUTED_WORDS, PRECOMPUTED_K)
    assert np.all(np.diff(scores, axis=1) <= TIE)  # best first


def test_k_is_capped_at_the_other_words_of_a_small_vocabulary(tmp_path: Path) -> None:
    path = write_test_bundle(tmp_path / "b")
    info = build_index(path, IndexConfig(kind="flat", precompute_k=5000, threads=1))
    assert info["neighbour_lists"]["k"] == info["vocab_size"] - 1


def test_an_index_built_before_the_lists_existed_still_answers(
    bundle_path: Path, searched_only: VectorIndex
) -> None:
    build_index(bundle_path, IndexConfig(kind="flat", threads=1))
    directory = bundle_path / "index"
    info = json.loads((directory / "index.json").read_text())
    del info["neighbour_lists"]
    (directory / "index.json").write_text(json.dumps(info))
    (directory / "neighbour_ids.npy").unlink()
    (directory / "neighbour_scores.npy").unlink()
    index = VectorIndex.load(bundle_path)
    assert index.listed("king", 10) is None
    assert_same_answer(
        index.neighbours("king", 10), searched_only.neighbours("king", 10)
    )


def test_lists_missing_from_an_index_that_names_them_fail_to_load(
    bundle_path: Path,
) -> None:
    build_index(bundle_path, IndexConfig(kind="flat", threads=1))
    (bundle_path / "index" / "neighbour_ids.npy").unlink()
    with pytest.raises(BundleError, match=r"neighbour_ids\.npy"):
        VectorIndex.load(bundle_path)


def test_lists_of_another_shape_than_index_json_fail_to_load(
    bundle_path: Path, tmp_path: Path
) -> None:
    build_index(bundle_path, IndexConfig(kind="flat", threads=1, precompute_k=10))
    other = write_test_bundle(tmp_path / "other")
    build_index(other, IndexConfig(kind="flat", threads=1, precompute_k=20))
    shutil.copy(
        other / "index" / "neighbour_ids.npy",
        bundle_path / "index" / "neighbour_ids.npy",
    )
    with pytest.raises(BundleError, match="expected int32"):
        VectorIndex.load(bundle_path)


def test_wordvec_index_flags_set_how_many_words_and_neighbours_are_listed(
    bundle_path: Path,
) -> None:
    argv = ["index", str(bundle_path), "--index", "flat", "--threads", "1"]
    assert main([*argv, "--precompute-words", "50", "--precompute-k", "7"]) == 0
    info = json.loads((bundle_path / "index" / "index.json").read_text())
    assert (info["neighbour_lists"]["words"], info["neighbour_lists"]["k"]) == (50, 7)
    assert main([*argv, "--precompute-words", "0"]) == 0
    info = json.loads((bundle_path / "index" / "index.json").read_text())
    assert info["neighbour_lists"] is None
    assert not (bundle_path / "index" / "neighbour_ids.npy").exists()
