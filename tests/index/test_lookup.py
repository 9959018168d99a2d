"""Vocabulary lookup tables: word <-> id, prefixes and spelling suggestions
agree with plain Python structures, whether built in memory or mapped from
BUNDLE/index/, and old or damaged indexes are handled."""

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from index.build import IndexConfig, build_index
from index.lookup import (
    TABLE_FILES,
    WORDS_FILE,
    FoldedWords,
    SpellingLookup,
    WordTable,
    build_folded,
    build_tables,
    load_tables,
    save_tables,
)
from index.search import VectorIndex
from training.bundle import load_bundle
from training.errors import BundleError

# Accents, scripts of 2-4 UTF-8 bytes, JSON-special characters and prefixes
# of each other, so byte order, lengths and escaping all matter.
WORDS = [
    "the",
    "them",
    "théâtre",
    "then",
    "東京",
    "a",
    'say"what',
    "back\\slash",
    "𝄞clef",
    "th",
    "zebra",
    "thé",
]


@pytest.fixture(params=["memory", "mapped"])
def table(request: pytest.FixtureRequest, tmp_path: Path) -> WordTable:
    tables = build_tables(WORDS, np.arange(len(WORDS), 0, -1))
    if request.param == "mapped":
        save_tables(tmp_path, tables)
        tables = load_tables(tmp_path, len(WORDS))
    return WordTable(tables)


def test_every_word_finds_its_id_and_back(table: WordTable) -> None:
    assert len(table) == len(WORDS)
    assert [table.id_of(word) for word in WORDS] == list(range(len(WORDS)))
    assert [table.word(i) for i in range(len(WORDS))] == WORDS
    assert table.words([4, 0, 8]) == ["東京", "the", "𝄞clef"]


def test_unknown_words_have_no_id(table: WordTable) -> None:
    for word in ["", "The", "thé ", "東", "zebras", "\ud800"]:
        assert table.id_of(word) is None
        assert word not in table


@pytest.mark.parametrize("prefix", ["", "t", "th", "thé", "東", "z", "q", "\ud800"])
def test_prefix_search_matches_a_scan_of_the_words(
    table: WordTable, prefix: str
) -> None:
    spelling = SpellingLookup(table)
    expected = [i for i, word in enumerate(WORDS) if word.startswith(prefix)]
    if prefix == "\ud800":
        expected = []
    assert spelling.ids_with_prefix(prefix, 100) == expected
    assert spelling.ids_with_prefix(prefix, 2) == expected[:2]


def test_suggestions_find_a_typo_at_either_end(table: WordTable) -> None:
    spelling = SpellingLookup(table)
    assert "zebra" in spelling.suggestions("zebrq")
    assert "zebra" in spelling.suggestions("xebra")
    assert "théâtre" in spelling.suggestions("théatre")
    assert spelling.suggestions("") == []


def test_a_large_vocabulary_round_trips_through_the_hash_table(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    letters = list("abcdefghijklmnopqrstuvwxyzéø")
    words = list(
        dict.fromkeys(
            "".join(rng.choice(letters, size=n))
            for n in rng.integers(1, 9, size=20_000)
        )
    )
    save_tables(tmp_path, build_tables(words, np.ones(len(words))))
    table = WordTable(load_tables(tmp_path, len(words)))
    assert all(table.id_of(word) == i for i, word in enumerate(words))
    assert table.id_of("notawordatall") is None


@pytest.mark.parametrize("source", ["memory", "mapped"])
def test_the_folded_table_finds_the_most_frequent_word_of_each_folded_form(
    tmp_path: Path, source: str
) -> None:
    words = [*WORDS, "The", "THE", "Straße", "STRASSE", "ΟΔΟΣ", "οδος", "McDonald"]
    tables = replace(
        build_tables(words, np.ones(len(words))), folded=build_folded(words)
    )
    if source == "mapped":
        save_tables(tmp_path, tables)
        tables = load_tables(tmp_path, len(words), folded=True)
    assert tables.folded is not None
    folded = FoldedWords(tables.folded)
    queries = [*words, "mcdonald", "strasse", "THÉÂTRE", "odos", "", "\ud800"]
    for query in queries + [q.upper() for q in queries]:
        same = [i for i, w in enumerate(words) if w.casefold() == query.casefold()]
        assert folded.id_of(query) == (same[0] if same else None)
    for prefix in ["", "t", "TH", "thé", "STRAS", "οδ", "mcd", "q"]:
        key = prefix.casefold()
        expected = [i for i, w in enumerate(words) if w.casefold().startswith(key)]
        assert folded.ids_with_prefix(prefix, 100) == expected
        assert folded.ids_with_prefix(prefix, 2) == expected[:2]


def test_the_server_reads_no_vocabulary_file_when_the_index_has_tables(
    tmp_path: Path, indexed_bundles: dict[str, Path]
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(indexed_bundles["flat"], bundle)
    # Same size, other bytes: only reading the file could notice.
    vocabulary = bundle / "vocabulary.tsv"
    vocabulary.write_bytes(b"x" * vocabulary.stat().st_size)
    index = VectorIndex.load(bundle)
    original = load_bundle(indexed_bundles["flat"]).vocabulary
    counts = dict(zip(original.words, original.counts.tolist(), strict=True))
    assert index.has_word("king")
    assert index.vocabulary_prefix("app", 5) == [
        (word, counts[word]) for word in ["apple", "apply", "applause"]
    ]


def test_an_index_without_tables_still_loads_and_warns(
    bundle_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    build_index(bundle_path, IndexConfig(kind="flat", threads=1))
    directory = bundle_path / "index"
    info = json.loads((directory / "index.json").read_text())
    del info["vocabulary_tables"], info["vocabulary_sha256"]
    (directory / "index.json").write_text(json.dumps(info))
    for name in [WORDS_FILE, *(file for file, _ in TABLE_FILES.values())]:
        (directory / name).unlink()
    with caplog.at_level(logging.WARNING, logger="index.search"):
        index = VectorIndex.load(bundle_path)
    assert "without vocabulary lookup tables" in caplog.text
    assert [n.word for n in index.analogy("man", "woman", "king", 1)] == ["queen"]
    assert index.vocabulary_prefix("appl", 1)[0][0] == "apple"


def test_tables_missing_from_an_index_that_names_them_fail_to_load(
    bundle_path: Path,
) -> None:
    build_index(bundle_path, IndexConfig(kind="flat", threads=1))
    (bundle_path / "index" / "vocabulary_slots.npy").unlink()
    with pytest.raises(BundleError, match="wordvec index"):
        VectorIndex.load(bundle_path)


def test_tables_of_another_vocabulary_size_fail_to_load(bundle_path: Path) -> None:
    build_index(bundle_path, IndexConfig(kind="flat", threads=1))
    path = bundle_path / "index" / "vocabulary_counts.npy"
    np.save(path, np.ones(5, dtype=np.int64))
    with pytest.raises(BundleError, match="rebuild it with `wordvec index`"):
        VectorIndex.load(bundle_path)


def test_an_index_of_another_vocabulary_fails_to_load(bundle_path: Path) -> None:
    build_index(bundle_path, IndexConfig(kind="flat", threads=1))
    info_path = bundle_path / "index" / "index.json"
    info = json.loads(info_path.read_text())
    info["vocabulary_sha256"] = "0" * 64
    info_path.write_text(json.dumps(info))
    with pytest.raises(BundleError, match="another vocabulary"):
        VectorIndex.load(bundle_path)
