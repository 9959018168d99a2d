"""Building indexes: recall against exact search, index.json, atomic
replacement, and how `auto` picks a kind."""

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from index.build import IndexConfig, build_index
from index.errors import IndexBuildError
from index.evaluate import recall_samples
from index.kinds import choose_kind
from index.search import VectorIndex
from index.store import verify_index
from tests.index.conftest import PRECOMPUTED_WORDS
from training.durable import exchange_paths
from training.errors import BundleError, ConfigError


def _recall_against_flat(approximate: Path, flat: Path) -> float:
    fast, exact = VectorIndex.load(approximate), VectorIndex.load(flat)
    # Words without a precomputed list, so the approximate search answers.
    words = [f"w{i:04d}" for i in range(PRECOMPUTED_WORDS, 3000, 5)]
    hits = 0
    for word in words:
        found = {n.word for n in fast.neighbours(word, 10)}
        hits += len(found & {n.word for n in exact.neighbours(word, 10)})
    return hits / (10 * len(words))


def test_hnsw_recall_at_10_against_flat_is_above_0_95(
    indexed_bundles: dict[str, Path],
) -> None:
    recall = _recall_against_flat(indexed_bundles["hnsw"], indexed_bundles["flat"])
    assert recall >= 0.95


def test_ivf_pq_recall_at_10_against_flat_is_above_0_95(
    indexed_bundles: dict[str, Path],
) -> None:
    recall = _recall_against_flat(indexed_bundles["ivf-pq"], indexed_bundles["flat"])
    assert recall >= 0.95


def test_index_json_records_kind_settings_recall_and_checksum(
    indexed_bundles: dict[str, Path],
) -> None:
    bundle = indexed_bundles["hnsw"]
    info = json.loads((bundle / "index" / "index.json").read_text())
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert info["kind"] == "hnsw"
    assert info["params"]["efSearch"] >= 16
    assert info["recall_at_10"] >= 0.95
    by_sample = info["recall_at_10_by_sample"]
    assert set(by_sample) == {"frequency_banded", "uniform"}
    assert min(by_sample.values()) >= 0.95
    assert info["recall_at_10"] == min(by_sample.values())
    assert info["recall_sample_size"] == 300
    assert info["vectors_sha256"] == manifest["files"]["vectors.npy"]["sha256"]
    assert info["vocabulary_sha256"] == manifest["files"]["vocabulary.tsv"]["sha256"]
    assert sorted(p.name for p in (bundle / "index").iterdir()) == [
        "index.faiss",
        "index.json",
        "neighbour_ids.npy",
        "neighbour_scores.npy",
        "normalised.npy",
        "spelling_ids.npy",
        "spelling_keys.npy",
        "spelling_starts.npy",
        "vocabulary.utf8",
        "vocabulary_counts.npy",
        "vocabulary_offsets.npy",
        "vocabulary_slots.npy",
        "vocabulary_sorted_ids.npy",
    ]


def test_normalised_vectors_are_unit_rows_and_zero_rows_stay_zero(
    indexed_bundles: dict[str, Path],
) -> None:
    normalised = np.load(indexed_bundles["flat"] / "index" / "normalised.npy")
    norms = np.linalg.norm(normalised, axis=1)
    assert norms[7] == 0.0  # "zero"
    assert np.allclose(np.delete(norms, 7), 1.0, atol=1e-5)


def test_build_missing_the_recall_floor_keeps_the_old_index(bundle_path: Path) -> None:
    build_index(bundle_path, IndexConfig(kind="flat"))
    before = (bundle_path / "index" / "index.json").read_text()
    hopeless = IndexConfig(
        kind="ivf-pq", recall_floor=1.0, max_nprobe=1, refine_factor=1, threads=1
    )
    with pytest.raises(IndexBuildError, match="recall@10 reached only"):
        build_index(bundle_path, hopeless)
    assert (bundle_path / "index" / "index.json").read_text() == before
    assert sorted(p.name for p in bundle_path.iterdir() if p.name.startswith(".")) == []


def test_rebuild_replaces_the_index_and_leaves_no_temporary_directory(
    bundle_path: Path,
) -> None:
    build_index(bundle_path, IndexConfig(kind="flat"))
    build_index(bundle_path, IndexConfig(kind="hnsw", recall_sample=100))
    assert VectorIndex.load(bundle_path).index_info["kind"] == "hnsw"
    assert [p.name for p in bundle_path.iterdir() if p.name.startswith(".")] == []


def test_exchange_swaps_two_directories_in_one_step(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "from-a").write_text("a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "from-b").write_text("b")
    assert exchange_paths(tmp_path / "a", tmp_path / "b")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["from-b"]
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["from-a"]
    with pytest.raises(FileNotFoundError):
        exchange_paths(tmp_path / "a", tmp_path / "missing")


def test_a_reader_never_finds_the_index_missing_during_a_rebuild(
    bundle_path: Path,
) -> None:
    build_index(bundle_path, IndexConfig(kind="flat"))
    info = bundle_path / "index" / "index.json"
    missing = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal missing
        while not done.is_set():
            missing += not info.exists()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(5):
            build_index(bundle_path, IndexConfig(kind="flat"))
    finally:
        done.set()
        watcher.join()
    assert missing == 0
    assert [p.name for p in bundle_path.iterdir() if p.name.startswith(".")] == []


def test_index_built_from_other_vectors_is_refused(bundle_path: Path) -> None:
    build_index(bundle_path, IndexConfig(kind="flat"))
    info_path = bundle_path / "index" / "index.json"
    info = json.loads(info_path.read_text())
    info["vectors_sha256"] = "0" * 64
    info_path.write_text(json.dumps(info))
    with pytest.raises(BundleError, match="wordvec index"):
        VectorIndex.load(bundle_path)


def test_auto_picks_flat_for_a_small_vocabulary(bundle_path: Path) -> None:
    assert build_index(bundle_path, IndexConfig(kind="auto"))["kind"] == "flat"


def test_auto_picks_hnsw_for_large_vocabularies_and_ivf_pq_past_the_budget() -> None:
    assert choose_kind(50_000, 100, 32, memory_budget_mb=4096) == "flat"
    assert choose_kind(1_000_000, 100, 32, memory_budget_mb=4096) == "hnsw"
    assert choose_kind(1_000_000, 100, 32, memory_budget_mb=512) == "ivf-pq"


def test_recall_floor_outside_0_to_1_is_refused(bundle_path: Path) -> None:
    with pytest.raises(ConfigError, match="recall floor"):
        build_index(bundle_path, IndexConfig(kind="hnsw", recall_floor=1.01))


def test_index_json_lists_every_index_file_and_verify_catches_damage(
    bundle_path: Path,
) -> None:
    build_index(bundle_path, IndexConfig(kind="flat", threads=1))
    directory = bundle_path / "index"
    info = json.loads((directory / "index.json").read_text())
    listed = set(info["files"])
    assert listed == {p.name for p in directory.iterdir()} - {"index.json"}
    verify_index(bundle_path)
    target = directory / sorted(listed)[0]
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="fails its SHA-256 check"):
        verify_index(bundle_path)


def test_recall_is_measured_on_frequent_and_uniformly_drawn_words() -> None:
    samples = recall_samples(50_000, 1000, seed=3)
    banded, uniform = samples["frequency_banded"], samples["uniform"]
    for ids in (banded, uniform):
        assert len(np.unique(ids)) == 1000
        assert ids.min() >= 0 and ids.max() < 50_000
    # The banded sample holds most of the 100 most frequent words; a uniform
    # draw of 1,000 in 50,000 holds about 2 of them.
    assert (banded < 100).sum() > 50
    assert (uniform < 100).sum() < 20
    assert recall_samples(500, 1000, seed=3).keys() == {"all"}
