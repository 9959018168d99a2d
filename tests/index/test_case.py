"""Query words follow the bundle's case rule: a case-folding model folds them,
a case-keeping one (an import without --lowercase, a --keep-case training)
finds them as given or in another case."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index.build import IndexConfig, build_index
from index.lookup import FOLDED_TABLE_FILES, FOLDED_WORDS_FILE
from index.search import VectorIndex, WordNotFound
from tests.index.conftest import DIM, clustered_vectors
from training.bundle import write_bundle
from training.errors import BundleError
from training.vocabulary import Vocabulary

# "Paris" and "paris", "Apple" and "apple" are two words each (the capitalised
# one more frequent); the rest exist in one case only, some in mixed case.
CASED_WORDS = [
    "the",
    "Paris",
    "paris",
    "Sydney",
    "NASA",
    "Melbourne",
    "Sydney's",
    "Apple",
    "McDonald",
    "iPhone",
    "apple",
    "Straße",
]
FOLDED_FILES = [FOLDED_WORDS_FILE, *(name for name, _ in FOLDED_TABLE_FILES.values())]
NUM_FILLER_WORDS = 400
IMPORTED = {"imported_from": {"format": "word2vec-text", "lowercase": False}}


def write_cased_bundle(path: Path, manifest: dict[str, Any]) -> Path:
    """Write CASED_WORDS and lower-case filler words with clustered vectors."""
    words = CASED_WORDS + [f"w{i:03d}" for i in range(NUM_FILLER_WORDS)]
    vectors = clustered_vectors(len(words), DIM, 20, seed=3)
    counts = np.arange(len(words), 0, -1) * 10
    return write_bundle(
        path,
        vocabulary=Vocabulary(words, counts),
        vectors=vectors,
        manifest={"source": "imported", **manifest},
    )


@pytest.fixture(scope="module", params=[0, 100], ids=["searched", "listed"])
def cased_index(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> VectorIndex:
    """A case-keeping bundle with an HNSW index, with and without precomputed
    neighbour lists (and so mapped lookup tables either way)."""
    path = write_cased_bundle(tmp_path_factory.mktemp("cased") / "bundle", IMPORTED)
    config = IndexConfig(
        kind="hnsw", recall_sample=100, threads=1, precompute_words=request.param
    )
    build_index(path, config)
    return VectorIndex.load(path)


@pytest.mark.parametrize(
    ("manifest", "folds"),
    [
        ({"config": {"lowercase": False}}, False),
        ({"config": {"lowercase": True}}, True),
        (IMPORTED, False),
        ({"imported_from": {"lowercase": True}, "config": None}, True),
        ({}, False),
    ],
)
def test_the_case_rule_comes_from_the_manifest_or_the_vocabulary(
    tmp_path: Path, manifest: dict[str, Any], folds: bool
) -> None:
    index = VectorIndex.load(write_cased_bundle(tmp_path / "bundle", manifest))
    assert index.folds_case is folds


def test_a_bundle_recording_no_rule_with_lower_case_words_folds_case(
    bundle_path: Path,
) -> None:
    assert VectorIndex.load(bundle_path).folds_case


@pytest.mark.parametrize(
    ("query", "spelling"),
    [
        ("Paris", "Paris"),
        ("paris", "paris"),
        ("PARIS", "Paris"),
        (" sydney ", "Sydney"),
        ("nasa", "NASA"),
        ("The", "the"),
        ("sydney’s", "Sydney's"),
        ("mcdonald", "McDonald"),
        ("MCDONALD", "McDonald"),
        ("mcDonald", "McDonald"),
        ("iphone", "iPhone"),
        ("IPHONE", "iPhone"),
        ("apple", "apple"),
        ("Apple", "Apple"),
        ("aPPLE", "Apple"),
        ("STRASSE", "Straße"),
    ],
)
def test_a_case_keeping_model_finds_the_word_as_given_then_in_other_cases(
    cased_index: VectorIndex, query: str, spelling: str
) -> None:
    assert cased_index.resolve(query) == spelling
    assert cased_index.has_word(query)
    neighbours = cased_index.neighbours(query, 5)
    assert [n.word for n in neighbours] == [
        n.word for n in cased_index.neighbours(spelling, 5)
    ]
    assert spelling not in [n.word for n in neighbours]


def test_a_case_keeping_model_answers_the_same_vector_for_every_case(
    cased_index: VectorIndex,
) -> None:
    vector, inferred = cased_index.word_vector("melbourne")
    assert not inferred
    assert np.array_equal(vector, cased_index.word_vector("Melbourne")[0])
    assert cased_index.similarity("sydney", "MELBOURNE") == pytest.approx(
        cased_index.similarity("Sydney", "Melbourne")
    )


def test_suggestions_of_a_case_keeping_model_can_be_queried_as_suggested(
    cased_index: VectorIndex,
) -> None:
    with pytest.raises(WordNotFound) as caught:
        cased_index.neighbours("sydnee", 3)
    assert "Sydney" in caught.value.suggestions
    assert all(cased_index.resolve(s) == s for s in caught.value.suggestions)


def test_suggestions_leave_out_words_a_case_folding_query_cannot_reach(
    tmp_path: Path,
) -> None:
    # A bundle that says it folds case but holds "Paris": no query finds it.
    path = write_cased_bundle(tmp_path / "bundle", {"config": {"lowercase": True}})
    index = VectorIndex.load(path)
    with pytest.raises(WordNotFound) as caught:
        index.neighbours("pariss", 3)
    assert caught.value.suggestions == ["paris"]


def test_prefixes_of_a_case_keeping_model_match_every_case_variant(
    cased_index: VectorIndex,
) -> None:
    assert [w for w, _ in cased_index.vocabulary_prefix("syd", 10)] == [
        "Sydney",
        "Sydney's",
    ]
    assert {w for w, _ in cased_index.vocabulary_prefix("par", 10)} == {
        "Paris",
        "paris",
    }
    assert [w for w, _ in cased_index.vocabulary_prefix("Mel", 10)] == ["Melbourne"]
    assert [w for w, _ in cased_index.vocabulary_prefix("mcd", 10)] == ["McDonald"]
    assert [w for w, _ in cased_index.vocabulary_prefix("IPH", 10)] == ["iPhone"]
    assert [w for w, _ in cased_index.vocabulary_prefix("aPp", 1)] == ["Apple"]


def test_embed_of_a_case_keeping_model_keeps_case_and_finds_other_cases(
    cased_index: VectorIndex,
) -> None:
    vector, known, oov = cased_index.embed("The Paris of NASA, qzx Sydney")
    assert vector is not None
    assert known == ["the", "Paris", "NASA", "Sydney"]
    assert oov == ["of", "qzx"]


def test_analogy_of_a_case_keeping_model_excludes_the_words_found(
    cased_index: VectorIndex,
) -> None:
    answers = cased_index.analogy("paris", "sydney", "nasa", 10, method="3cosmul")
    words = {n.word for n in answers}
    assert not words & {"paris", "Sydney", "NASA"}


def test_precomputed_lists_answer_a_word_in_any_case(
    cased_index: VectorIndex,
) -> None:
    listed = cased_index.listed("sydney", 5)
    if cased_index.index_info["neighbour_lists"] is None:
        assert listed is None
    else:
        exact = cased_index.listed("Sydney", 5)
        assert listed is not None and exact is not None
        assert listed[0] == exact[0] and "Sydney" not in listed[0]


def test_only_a_case_keeping_index_has_the_folded_table_listed_and_checksummed(
    cased_index: VectorIndex, bundle_path: Path
) -> None:
    assert (
        cased_index.index_info["vocabulary_tables"]["folded_words"]
        == len({w.casefold() for w in CASED_WORDS}) + NUM_FILLER_WORDS
    )
    assert set(FOLDED_FILES) <= set(cased_index.index_info["files"])
    build_index(bundle_path, IndexConfig(kind="flat", threads=1))
    info = json.loads((bundle_path / "index" / "index.json").read_text())
    assert "folded_words" not in info["vocabulary_tables"]
    assert not set(FOLDED_FILES) & set(info["files"])
    assert not any((bundle_path / "index" / name).exists() for name in FOLDED_FILES)


def test_a_case_keeping_bundle_without_an_index_folds_at_load(tmp_path: Path) -> None:
    index = VectorIndex.load(write_cased_bundle(tmp_path / "bundle", IMPORTED))
    assert index.resolve("mcdonald") == "McDonald"
    assert index.resolve("apple") == "apple"


def test_an_index_without_the_folded_table_tries_four_spellings(
    tmp_path: Path,
) -> None:
    # The layout `wordvec index` wrote before the folded table existed.
    path = write_cased_bundle(tmp_path / "bundle", IMPORTED)
    build_index(path, IndexConfig(kind="flat", threads=1))
    directory = path / "index"
    info = json.loads((directory / "index.json").read_text())
    del info["vocabulary_tables"]["folded_words"]
    for name in FOLDED_FILES:
        del info["files"][name]
        (directory / name).unlink()
    (directory / "index.json").write_text(json.dumps(info))
    index = VectorIndex.load(path)
    assert [index.resolve(q) for q in ["Apple", "apple", "PARIS", "sydney"]] == [
        "Apple",
        "apple",
        "paris",
        "Sydney",
    ]
    with pytest.raises(WordNotFound):
        index.neighbours("mcdonald", 3)
    assert [w for w, _ in index.vocabulary_prefix("mcd", 10)] == []
    assert [w for w, _ in index.vocabulary_prefix("McD", 10)] == ["McDonald"]


def test_an_index_naming_a_missing_folded_table_fails_to_load(
    tmp_path: Path,
) -> None:
    path = write_cased_bundle(tmp_path / "bundle", IMPORTED)
    build_index(path, IndexConfig(kind="flat", threads=1))
    (path / "index" / "folded_slots.npy").unlink()
    with pytest.raises(BundleError, match="wordvec index"):
        VectorIndex.load(path)
