"""Precomputed exact neighbour lists: the top-K neighbours of the N most
frequent words, computed by exact search when the index is built and stored
as `BUNDLE/index/neighbour_ids.npy` (int32 (N, K)) and
`neighbour_scores.npy` (float32 (N, K)). Serving slices a memory-mapped row
instead of searching; see docs/index.md ("Precomputed neighbour lists")."""

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index.store import map_array
from index.store import save_normalised as save_array
from training.errors import BundleError

logger = logging.getLogger(__name__)

NEIGHBOUR_IDS = "neighbour_ids.npy"
NEIGHBOUR_SCORES = "neighbour_scores.npy"
# The whole vocabulary up to this many words: 200k x 100 lists take 160 MB
# on disk (shared by every worker through the page cache).
DEFAULT_PRECOMPUTE_WORDS = 200_000
# The server's default max_k, so every GET /similar of a listed word is a slice.
DEFAULT_PRECOMPUTE_K = 100
# Query rows per exact search: 4,096 x (K + 1) results plus FAISS's per-block
# score tiles stay a few MB while BLAS still gets large matrix products.
_BATCH_ROWS = 4096


@dataclass(frozen=True)
class NeighbourLists:
    """Read-only neighbour lists of word ids 0..words-1 (the most frequent).

    `ids[w, j]` is the j-th nearest word of word w (never w itself) and
    `scores[w, j]` its cosine score, best first.
    """

    ids: np.ndarray
    scores: np.ndarray

    @property
    def words(self) -> int:
        """Return how many words (rows) have a list."""
        return int(self.ids.shape[0])

    @property
    def k(self) -> int:
        """Return how many neighbours each list holds."""
        return int(self.ids.shape[1])

    def row(self, word_id: int, k: int) -> tuple[list[int], np.ndarray] | None:
        """Return (ids, float32 (k,) scores) of the `k` nearest words of
        `word_id`, best first, or None when that word has no list or its list
        is shorter. The scores are a read-only view of the mapped file."""
        if word_id >= self.ids.shape[0] or k > self.ids.shape[1]:
            return None
        return self.ids[word_id, :k].tolist(), self.scores[word_id, :k]


def compute(
    normalised: np.ndarray, words: int, k: int
) -> tuple[NeighbourLists, dict[str, Any]]:
    """Return the exact lists of the first `words` rows of unit vectors
    `normalised` (float32 (V, D)) and their index.json entry.

    Each row holds the min(k, V - 1) highest inner products, the row's own
    word left out, best first. Uses as many threads as FAISS and BLAS allow,
    so call it inside the build's thread limits. Raises ValueError when
    `words` or `k` is below 1.
    """
    if words < 1 or k < 1 or normalised.shape[0] < 2:
        raise ValueError(
            f"need words >= 1, k >= 1 and two vectors, got {words}, {k} and "
            f"{normalised.shape[0]}"
        )
    started = time.perf_counter()
    vocab_size = normalised.shape[0]
    words, k = min(words, vocab_size), min(k, vocab_size - 1)
    ids = np.empty((words, k), dtype=np.int32)
    scores = np.empty((words, k), dtype=np.float32)
    database = np.ascontiguousarray(normalised, dtype=np.float32)
    for start in range(0, words, _BATCH_ROWS):
        stop = min(start + _BATCH_ROWS, words)
        # One more than k, so the list is still k long once the word itself
        # (normally first, with score 1) is dropped.
        found_scores, found_ids = faiss.knn(
            database[start:stop], database, k + 1, metric=faiss.METRIC_INNER_PRODUCT
        )
        own = found_ids == np.arange(start, stop)[:, None]
        # A word not in its own top k + 1 (a zero vector, or duplicates that
        # tie) keeps its first k results, as the search path does.
        own[:, -1] |= ~own.any(axis=1)
        keep = ~own
        ids[start:stop] = found_ids[keep].reshape(stop - start, k)
        # Clipped here, once, as the search path clips every score it returns.
        scores[start:stop] = np.clip(
            found_scores[keep].reshape(stop - start, k), -1.0, 1.0
        )
    seconds = round(time.perf_counter() - started, 3)
    logger.info("precomputed %d neighbours of %d words in %.1f s", k, words, seconds)
    return NeighbourLists(ids, scores), {"words": words, "k": k, "seconds": seconds}


def save(directory: Path, lists: NeighbourLists) -> None:
    """Write both .npy files into `directory`, fsynced."""
    # save_normalised writes any array as .npy and fsyncs it.
    save_array(directory / NEIGHBOUR_IDS, lists.ids)
    save_array(directory / NEIGHBOUR_SCORES, lists.scores)


def load(
    directory: Path, info: dict[str, Any], vocab_size: int
) -> NeighbourLists | None:
    """Return the memory-mapped lists described by index.json `info`, or None
    when the index has none (built before they existed, or with 0 words).

    Raises BundleError when the files are missing, unreadable, or do not
    match index.json and the vocabulary; `wordvec index` rebuilds them.
    """
    entry = info.get("neighbour_lists")
    if not entry:
        return None
    shape = (int(entry["words"]), int(entry["k"]))
    ids = map_array(directory / NEIGHBOUR_IDS, np.dtype(np.int32), shape)
    scores = map_array(directory / NEIGHBOUR_SCORES, np.dtype(np.float32), shape)
    if shape[0] > vocab_size or shape[1] >= vocab_size:
        raise BundleError(
            f"{directory} lists neighbours of {shape[0]} words but the vocabulary "
            f"has {vocab_size}; rebuild it with `wordvec index`"
        )
    # Plain ndarray views of the maps: slicing a np.memmap builds a memmap
    # per slice, which tripled the cost of reading one row (1.1 vs 3.9 us).
    return NeighbourLists(np.asarray(ids), np.asarray(scores))
