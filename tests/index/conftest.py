"""Small real bundles for the index tests: clustered synthetic vectors (a
Gaussian mixture, the shape real word vectors have) plus a few hand-made
words for analogies, spelling and zero vectors."""

from pathlib import Path

import numpy as np
import pytest

from index.build import IndexConfig, build_index
from training.bundle import write_bundle
from training.vocabulary import Vocabulary

DIM = 32
NUM_CLUSTERS = 60
NUM_FILLER_WORDS = 3000
# Known words first, so they are the most frequent and ids 0.. in this order.
KNOWN_WORDS = ["man", "woman", "king", "queen", "apple", "apply", "applause", "zero"]
# The shared indexed bundles precompute lists for the first 1,000 words only,
# so words past them still exercise each kind's own search.
PRECOMPUTED_WORDS = 1000
PRECOMPUTED_K = 20


def clustered_vectors(rows: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    """Return float32 (rows, dim): points around `clusters` random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    members = rng.integers(0, clusters, size=rows)
    noise = rng.standard_normal((rows, dim)) * 0.6
    return (centres[members] + noise).astype(np.float32)


def known_vectors(seed: int) -> np.ndarray:
    """Return float32 (len(KNOWN_WORDS), DIM): man:woman :: king:queen holds,
    the apple words are close, and "zero" is the zero vector."""
    rng = np.random.default_rng(seed)
    royal, person, male, female, fruit = rng.standard_normal((5, DIM)) * 2
    small = rng.standard_normal((8, DIM)) * 0.05
    rows = [
        person + male,
        person + female,
        royal + male,
        royal + female,
        fruit,
        fruit + small[0] * 10,
        fruit + small[1] * 20,
        np.zeros(DIM),
    ]
    return (np.stack(rows) + small).astype(np.float32) * (np.arange(8) != 7)[:, None]


def write_test_bundle(path: Path, seed: int = 0) -> Path:
    """Write a bundle of the known words and 3,000 clustered words to `path`."""
    filler = clustered_vectors(NUM_FILLER_WORDS, DIM, NUM_CLUSTERS, seed)
    vectors = np.concatenate([known_vectors(seed), filler])
    words = KNOWN_WORDS + [f"w{i:04d}" for i in range(NUM_FILLER_WORDS)]
    counts = np.arange(len(words), 0, -1) * 10
    return write_bundle(
        path,
        vocabulary=Vocabulary(words, counts),
        vectors=vectors,
        manifest={"source": "trained", "version": "test-1"},
    )


@pytest.fixture
def bundle_path(tmp_path: Path) -> Path:
    """A fresh bundle without an index, in tmp_path."""
    return write_test_bundle(tmp_path / "bundle")


@pytest.fixture(scope="session")
def indexed_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One bundle per index kind, each with its index built (shared, read-only)."""
    paths = {}
    for kind in ("flat", "hnsw", "ivf-pq"):
        path = write_test_bundle(tmp_path_factory.mktemp(kind) / "bundle")
        build_index(
            path,
            IndexConfig(
                kind=kind,
                recall_sample=300,
                ef_construction=64,
                threads=1,
                precompute_words=PRECOMPUTED_WORDS,
                precompute_k=PRECOMPUTED_K,
            ),
        )
        paths[kind] = path
    return paths
