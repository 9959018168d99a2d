"""Recall@k of an approximate searcher against exact search, measured on
query words drawn from the vocabulary itself."""

import logging
from collections.abc import Callable, Sequence

import numpy as np

from index.errors import IndexBuildError
from index.searchers import FlatSearcher, Searcher

logger = logging.getLogger(__name__)

# TODO: efSearch and nprobe are tuned for k = 10; a query for k = 100 gets
# efSearch >= k but its recall is not measured. Storing settings for a few k
# (10, 50, 100) and picking by k at query time would cover large k.
RECALL_K = 10


def recall_sample(vocab_size: int, size: int, seed: int) -> np.ndarray:
    """Return sorted int64 word ids to measure recall on: `size` of them, or
    every id when the vocabulary is smaller.

    One id is drawn (with `seed`) from each of `size` bands of frequency rank
    whose widths grow geometrically, so the frequent words most queries ask
    about are sampled as well as the long tail. Narrow bands at the top give
    repeats; uniformly drawn ids make up the number.
    """
    if vocab_size <= size:
        return np.arange(vocab_size, dtype=np.int64)
    rng = np.random.default_rng(seed)
    edges = np.geomspace(1, vocab_size + 1, num=size + 1)
    low = np.floor(edges[:-1]).astype(np.int64)
    high = np.maximum(np.floor(edges[1:]).astype(np.int64), low + 1)
    chosen = np.unique(np.minimum(rng.integers(low, high), vocab_size) - 1)
    rest = np.setdiff1d(np.arange(vocab_size), chosen)
    extra = rng.choice(rest, size=size - len(chosen), replace=False)
    return np.sort(np.concatenate([chosen, extra]))


def top_k_excluding_self(
    searcher: Searcher, normalised: np.ndarray, word_ids: np.ndarray, k: int
) -> np.ndarray:
    """Return int64 (len(word_ids), k): each word's k nearest other words.

    Searches k + 1 and drops the word itself (or the last hit when ties
    pushed the word out of its own list). Missing results are -1.
    """
    _, found = searcher.search(np.ascontiguousarray(normalised[word_ids]), k + 1)
    rows = []
    for word_id, ids in zip(word_ids, found, strict=True):
        others = ids[ids != word_id]
        rows.append(others[:k])
    return np.stack(rows)


def recall_at_k(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Return the mean share of each row of `exact` ids found in `approximate`.

    Both are int64 (nq, k); -1 slots in `exact` (tiny vocabularies) do not count.
    """
    hits = 0
    total = 0
    for found, truth in zip(approximate, exact, strict=True):
        truth = truth[truth >= 0]
        hits += len(np.intersect1d(found, truth))
        total += len(truth)
    return hits / total if total else 1.0


def tune(
    make_searcher: Callable[[int], Searcher],
    ladder: Sequence[int],
    normalised: np.ndarray,
    sample: np.ndarray,
    recall_floor: float,
    setting_name: str,
) -> tuple[int, float]:
    """Return (setting, recall@10): the smallest setting on `ladder` whose
    searcher reaches `recall_floor`, with the recall it reached.

    Raises IndexBuildError naming the best recall when no setting reaches it.
    """
    exact = top_k_excluding_self(FlatSearcher(normalised), normalised, sample, RECALL_K)
    best = 0.0
    for setting in ladder:
        searcher = make_searcher(setting)
        found = top_k_excluding_self(searcher, normalised, sample, RECALL_K)
        recall = recall_at_k(found, exact)
        logger.info("%s=%d: recall@%d %.4f", setting_name, setting, RECALL_K, recall)
        if recall >= recall_floor:
            return setting, recall
        best = max(best, recall)
    raise IndexBuildError(
        f"recall@{RECALL_K} reached only {best:.4f} (floor {recall_floor}) with "
        f"{setting_name} up to {ladder[-1]}; use --index flat, allow a larger "
        f"{setting_name}, or lower --recall-floor"
    )
