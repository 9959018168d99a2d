"""Loading: processes share the mapped files, subword vectors stand in for
unknown words, and `wordvec index` runs end to end."""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import numpy as np
import pytest

from app.cli import main
from index.build import IndexConfig, build_index
from index.formats import import_vectors
from index.search import VectorIndex, WordNotFound
from training.bundle import TrainingState, write_bundle
from training.vocabulary import Vocabulary

# Loads a bundle in a fresh interpreter and prints which of its index files
# the process has mapped.
_MAPPED_FILES = """
import sys
from pathlib import Path
from index.search import VectorIndex
index = VectorIndex.load(Path(sys.argv[1]))
index.neighbours("king", 10)
maps = Path("/proc/self/maps").read_text()
names = ("normalised.npy", "index.faiss", "neighbour_ids.npy", "neighbour_scores.npy",
         "vocabulary.utf8", "vocabulary_offsets.npy", "vocabulary_slots.npy",
         "spelling_keys.npy")
print(" ".join(n for n in names if n in maps))
"""


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_a_second_process_maps_the_index_files_instead_of_copying(
    indexed_bundles: dict[str, Path],
) -> None:
    bundle = indexed_bundles["hnsw"]
    first = VectorIndex.load(bundle)
    result = subprocess.run(
        [sys.executable, "-c", _MAPPED_FILES, str(bundle)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == [
        "normalised.npy",
        "index.faiss",
        "neighbour_ids.npy",
        "neighbour_scores.npy",
        "vocabulary.utf8",
        "vocabulary_offsets.npy",
        "vocabulary_slots.npy",
        "spelling_keys.npy",
    ]
    first.close()


def test_subword_vectors_give_unknown_words_an_inferred_vector(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    words = ["walking", "talking", "running"]
    vectors = rng.standard_normal((3, 8)).astype(np.float32)
    state = TrainingState(
        output_vectors=np.zeros((3, 8), dtype=np.float32),
        subword_vectors=rng.standard_normal((50, 8)).astype(np.float32),
        state={"subwords": {"min_n": 3, "max_n": 5, "buckets": 50}},
    )
    path = write_bundle(
        tmp_path / "b",
        vocabulary=Vocabulary(words, np.array([3, 2, 1])),
        vectors=vectors,
        manifest={"source": "trained"},
        training_state=state,
    )
    index = VectorIndex.load(path)
    vector, inferred = index.word_vector("stalking")
    assert inferred
    assert np.linalg.norm(vector) == pytest.approx(1.0)
    assert len(index.neighbours("stalking", 2)) == 2
    assert index.word_vector("walking")[1] is False


def test_bundle_without_subwords_raises_word_not_found(bundle_path: Path) -> None:
    with pytest.raises(WordNotFound):
        VectorIndex.load(bundle_path).word_vector("stalking")


def test_wordvec_index_command_builds_an_index_end_to_end(
    bundle_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["index", str(bundle_path), "--index", "hnsw", "--recall-sample", "200"]
    )
    assert status == 0
    assert "built hnsw index" in capsys.readouterr().out
    info = json.loads((bundle_path / "index" / "index.json").read_text())
    assert info["kind"] == "hnsw" and info["recall_at_10"] >= 0.95


def test_wordvec_index_command_fails_with_status_2_below_the_floor(
    bundle_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["index", str(bundle_path), "--index", "ivf-pq", "--recall-floor", "1"]
    status = main(
        [*argv, "--max-nprobe", "1", "--refine-factor", "1", "--threads", "1"]
    )
    assert status == 2
    assert "--index flat" in capsys.readouterr().err
    assert not (bundle_path / "index").exists()


def test_import_with_lowercase_merges_case_variants_keeping_the_first(
    tmp_path: Path,
) -> None:
    source = tmp_path / "vectors.txt"
    source.write_text("3 2\nParis 1 0\nparis 0 1\nLondon 1 1\n", encoding="utf-8")
    bundle = import_vectors(source, "word2vec-text", tmp_path / "b", lowercase=True)
    index = VectorIndex.load(bundle)
    assert index.vocab_size == 2
    assert np.allclose(index.word_vector("PARIS")[0], [1.0, 0.0])


def test_flat_index_over_a_tiny_vocabulary_returns_what_exists(tmp_path: Path) -> None:
    path = write_bundle(
        tmp_path / "b",
        vocabulary=Vocabulary(["a", "b"], np.array([2, 1])),
        vectors=np.eye(2, dtype=np.float32),
        manifest={"source": "trained"},
    )
    build_index(path, IndexConfig(kind="flat"))
    assert [n.word for n in VectorIndex.load(path).neighbours("a", 10)] == ["b"]


def test_a_query_pins_its_own_thread_to_one_openmp_thread(
    indexed_bundles: dict[str, Path],
) -> None:
    index = VectorIndex.load(indexed_bundles["hnsw"])

    def query_then_count_threads() -> int:
        # A word past the precomputed lists, so the query really searches.
        index.neighbours("w2500", 5)
        return int(faiss.omp_get_max_threads())

    # OpenMP limits are per calling thread: loading on this thread does not
    # pin a server's worker threads, so each query must.
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda _: query_then_count_threads(), range(2))) == [1, 1]
