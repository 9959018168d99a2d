"""Model bundles: what write_bundle stores is what load_bundle returns, and
every damaged, partial or foreign directory is refused with a BundleError."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from training.bundle import (
    BUNDLE_FORMAT_VERSION,
    TrainingState,
    is_temporary_name,
    load_bundle,
    verify_bundle,
    write_bundle,
)
from training.errors import BundleError
from training.vocabulary import Vocabulary

WORDS = ["the", "king", "queen", "café", "tab\tword"]


def make_vocabulary() -> Vocabulary:
    return Vocabulary(WORDS, np.array([50, 9, 7, 3, 1]))


def make_vectors(rows: int = len(WORDS), dim: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)


def make_state(subwords: bool = True) -> TrainingState:
    return TrainingState(
        output_vectors=make_vectors(seed=1),
        subword_vectors=make_vectors(rows=11, seed=2) if subwords else None,
        state={
            "epochs_done": 5,
            "words_processed": 1234,
            "lr": 0.0001,
            "min_lr": 0.0001,
            "seed": 1,
            "noise_power": 0.75,
            "subwords": {"min_n": 3, "max_n": 6, "buckets": 11} if subwords else None,
        },
    )


def write(path: Path, **overrides: object) -> Path:
    arguments: dict = {
        "vocabulary": make_vocabulary(),
        "vectors": make_vectors(),
        "manifest": {"source": "trained", "evaluation": {"wordsim353": None}},
    }
    arguments.update(overrides)
    return write_bundle(path, **arguments)


def test_load_returns_the_vectors_vocabulary_and_manifest_written(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "v1")
    bundle = load_bundle(path)
    np.testing.assert_array_equal(bundle.vectors, make_vectors())
    assert bundle.vocabulary.words == WORDS
    assert bundle.vocabulary.counts.tolist() == [50, 9, 7, 3, 1]
    assert bundle.manifest["source"] == "trained"
    assert (bundle.vocab_size, bundle.dim, bundle.version) == (5, 4, "v1")


def test_manifest_records_format_shape_and_checksum_of_every_file(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "b", training_state=make_state())
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format_version"] == BUNDLE_FORMAT_VERSION
    assert (manifest["vocab_size"], manifest["dim"]) == (5, 4)
    assert "created_at" in manifest and "wordvec_version" in manifest
    assert set(manifest["files"]) == {
        "vectors.npy",
        "vocabulary.tsv",
        "training/output_vectors.npy",
        "training/subword_vectors.npy",
        "training/state.json",
    }
    vocabulary_bytes = (path / "vocabulary.tsv").stat().st_size
    assert manifest["files"]["vocabulary.tsv"]["bytes"] == vocabulary_bytes


def test_loaded_vectors_are_a_read_only_memory_map(tmp_path: Path) -> None:
    bundle = load_bundle(write(tmp_path / "b"))
    assert isinstance(bundle.vectors, np.memmap)
    with pytest.raises(ValueError):
        bundle.vectors[0, 0] = 1.0


def test_load_without_mmap_reads_the_same_vectors(tmp_path: Path) -> None:
    bundle = load_bundle(write(tmp_path / "b"), mmap=False)
    assert not isinstance(bundle.vectors, np.memmap)
    np.testing.assert_array_equal(bundle.vectors, make_vectors())


def test_version_comes_from_the_manifest_when_it_names_one(tmp_path: Path) -> None:
    path = write(tmp_path / "dir-name", manifest={"version": "2024-06-01"})
    assert load_bundle(path).version == "2024-06-01"


def test_training_state_round_trips_with_subword_vectors(tmp_path: Path) -> None:
    state = make_state()
    loaded = load_bundle(
        write(tmp_path / "b", training_state=state)
    ).load_training_state()
    assert loaded is not None
    np.testing.assert_array_equal(loaded.output_vectors, state.output_vectors)
    assert loaded.subword_vectors is not None and state.subword_vectors is not None
    np.testing.assert_array_equal(loaded.subword_vectors, state.subword_vectors)
    assert loaded.state == state.state
    loaded.output_vectors[0, 0] = 0.0  # writable: training goes on from it


def test_training_state_without_subwords_round_trips(tmp_path: Path) -> None:
    path = write(tmp_path / "b", training_state=make_state(subwords=False))
    loaded = load_bundle(path).load_training_state()
    assert loaded is not None and loaded.subword_vectors is None
    assert not (path / "training" / "subword_vectors.npy").exists()


def test_bundle_without_training_state_returns_none(tmp_path: Path) -> None:
    assert load_bundle(write(tmp_path / "b")).load_training_state() is None


def test_write_refuses_an_existing_directory_without_overwrite(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    with pytest.raises(BundleError, match="already exists"):
        write(tmp_path / "b")
    assert os.listdir(tmp_path) == ["b"]


def test_overwrite_replaces_the_bundle_and_leaves_no_temporary_directory(
    tmp_path: Path,
) -> None:
    write(tmp_path / "b")
    write(tmp_path / "b", vectors=make_vectors(seed=7), overwrite=True)
    np.testing.assert_array_equal(
        load_bundle(tmp_path / "b").vectors, make_vectors(seed=7)
    )
    assert os.listdir(tmp_path) == ["b"]


def test_overwrite_refuses_a_directory_that_is_not_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("keep me")
    with pytest.raises(BundleError, match="not a bundle"):
        write(tmp_path / "home", overwrite=True)
    assert (tmp_path / "home" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        (make_vectors().astype(np.float64), "float32"),
        (make_vectors(rows=4), "shape"),
        (make_vectors()[:, :0], "dim >= 1"),
        (
            np.where(np.eye(5, 4) > 0, np.nan, make_vectors()).astype(np.float32),
            "row 0",
        ),
        (np.full((5, 4), np.inf, dtype=np.float32), "NaN or infinity"),
    ],
    ids=["float64", "wrong-rows", "zero-dim", "nan", "inf"],
)
def test_write_rejects_bad_vectors_and_leaves_nothing_behind(
    tmp_path: Path, vectors: np.ndarray, message: str
) -> None:
    with pytest.raises(BundleError, match=message):
        write(tmp_path / "b", vectors=vectors)
    assert os.listdir(tmp_path) == []


def test_write_rejects_training_state_of_another_shape(tmp_path: Path) -> None:
    state = make_state()
    state.output_vectors = make_vectors(dim=3)
    with pytest.raises(BundleError, match="output_vectors"):
        write(tmp_path / "b", training_state=state)


def test_write_rejects_a_nan_score_and_removes_its_temporary_directory(
    tmp_path: Path,
) -> None:
    with pytest.raises(BundleError, match="JSON"):
        write(tmp_path / "b", manifest={"evaluation": {"spearman": float("nan")}})
    assert os.listdir(tmp_path) == []


def test_load_of_a_missing_directory_says_it_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nowhere")


def test_load_of_a_directory_without_manifest_says_it_is_not_a_bundle(
    tmp_path: Path,
) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(BundleError, match=r"no manifest\.json"):
        load_bundle(tmp_path / "plain")


def test_load_refuses_an_unknown_format_version(tmp_path: Path) -> None:
    path = write(tmp_path / "b")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = 99
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format_version 99"):
        load_bundle(path)


def test_load_refuses_a_truncated_vectors_file(tmp_path: Path) -> None:
    path = write(tmp_path / "b")
    data = (path / "vectors.npy").read_bytes()
    (path / "vectors.npy").write_bytes(data[:-8])
    with pytest.raises(BundleError, match=r"vectors\.npy has \d+ bytes"):
        load_bundle(path)


def test_verify_names_a_file_changed_in_place(tmp_path: Path) -> None:
    path = write(tmp_path / "b", training_state=make_state())
    target = path / "training" / "output_vectors.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    load_bundle(path)  # sizes still match: only the checksum can tell
    with pytest.raises(BundleError, match=r"output_vectors\.npy fails its SHA-256"):
        verify_bundle(path)
    with pytest.raises(BundleError, match="SHA-256"):
        load_bundle(path, verify=True)


def test_verify_passes_an_untouched_bundle(tmp_path: Path) -> None:
    verify_bundle(write(tmp_path / "b", training_state=make_state()))


def test_load_refuses_a_vocabulary_of_another_length(tmp_path: Path) -> None:
    path = write(tmp_path / "b")
    text = (path / "vocabulary.tsv").read_text(encoding="utf-8") + "extra\t1\n"
    (path / "vocabulary.tsv").write_text(text, encoding="utf-8")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["vocabulary.tsv"]["bytes"] = len(text.encode())
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="has 6 words but the manifest says 5"):
        load_bundle(path)


def test_load_refuses_vectors_of_another_shape_than_the_manifest(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "b")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["dim"] = 3
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        BundleError, match=r"vectors\.npy holds .* expected float32 \(5, 3\)"
    ):
        load_bundle(path)


def test_a_leftover_temporary_directory_is_never_loaded(tmp_path: Path) -> None:
    path = write(tmp_path / "b")
    leftover = path.rename(tmp_path / ".b.tmp-0a1b2c3d")
    assert is_temporary_name(leftover.name)
    assert not is_temporary_name("b")
    with pytest.raises(BundleError, match="interrupted"):
        load_bundle(leftover)


def test_bundle_holds_no_pickle(tmp_path: Path) -> None:
    path = write(tmp_path / "b", training_state=make_state())
    for array_file in path.rglob("*.npy"):
        array = np.load(array_file, allow_pickle=False)
        assert array.dtype == np.float32
