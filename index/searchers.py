"""How a query finds its nearest words in each kind of index.

Every searcher takes float32 (nq, dim) unit query vectors and returns
float32 (nq, k) inner products (cosine scores, since rows are unit length)
and int64 (nq, k) word ids, best first; a slot with no result holds id -1.
Searchers hold no mutable state after construction, so threads may share one.
"""

from typing import Protocol

import faiss
import numpy as np

from index.errors import QueryError


class Searcher(Protocol):
    """Anything that finds the k words with the highest cosine score."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores, ids), each (nq, k), best first; missing slots are -1."""
        ...


class FlatSearcher:
    """Exact search: every row of the memory-mapped unit vectors is scored.

    `faiss.knn` reads the numpy array in place (no copy, so the pages stay
    shared between processes) and runs the same kernel as IndexFlatIP.
    """

    def __init__(self, normalised: np.ndarray) -> None:
        self.normalised = normalised

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the exact top-k (scores, ids) of each query row."""
        k_found = min(k, self.normalised.shape[0])
        scores, ids = faiss.knn(
            _checked(queries, self.normalised.shape[1]),
            self.normalised,
            k_found,
            metric=faiss.METRIC_INNER_PRODUCT,
        )
        return _pad(scores, ids, k)


class HnswSearcher:
    """Approximate search in an HNSW graph with a fixed efSearch.

    efSearch goes in per-call search parameters rather than on the shared
    index, so a build can try several values while nothing is mutated.
    """

    def __init__(self, index: faiss.Index, ef_search: int) -> None:
        self.index = index
        self.ef_search = ef_search

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the approximate top-k (scores, ids) of each query row."""
        # efSearch below k would cut the candidate list short of k results.
        # The SWIG module defines these classes at run time; mypy cannot see them.
        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
        params.efSearch = max(self.ef_search, k)
        scores, ids = self.index.search(
            _checked(queries, self.index.d), k, params=params
        )
        return scores, ids


class IvfPqSearcher:
    """IVF-PQ finds `refine_factor * k` candidates by compressed codes, then
    their exact scores are computed from the memory-mapped unit vectors and
    the best k kept. PQ scores alone are too coarse for recall@10 >= 0.95;
    re-ranking touches only the candidates' rows, so memory stays small.
    """

    def __init__(
        self,
        index: faiss.Index,
        normalised: np.ndarray,
        nprobe: int,
        refine_factor: int,
    ) -> None:
        self.index = index
        self.normalised = normalised
        self.nprobe = nprobe
        self.refine_factor = refine_factor

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the re-ranked top-k (scores, ids) of each query row."""
        queries = _checked(queries, self.index.d)
        params = faiss.SearchParametersIVF()
        params.nprobe = self.nprobe
        _, candidates = self.index.search(
            queries, k * self.refine_factor, params=params
        )
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for row, (query, found) in enumerate(zip(queries, candidates, strict=True)):
            found = found[found >= 0]
            exact = self.normalised[found] @ query
            best = np.argsort(-exact, kind="stable")[:k]
            scores[row, : len(best)] = exact[best]
            ids[row, : len(best)] = found[best]
        return scores, ids


def _checked(queries: np.ndarray, dim: int) -> np.ndarray:
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise QueryError(
            f"query vectors must have shape (n, {dim}), got {queries.shape}"
        )
    return queries


def _pad(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    missing = k - ids.shape[1]
    if missing <= 0:
        return scores, ids
    scores = np.pad(scores, ((0, 0), (0, missing)), constant_values=-np.inf)
    ids = np.pad(ids, ((0, 0), (0, missing)), constant_values=-1)
    return scores, ids
