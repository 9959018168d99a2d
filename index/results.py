"""What queries return and the small checks they share: the `Neighbour`
result, k and vector validation, score clipping and top-k selection."""

from dataclasses import dataclass

import numpy as np

from index.errors import QueryError


@dataclass(frozen=True)
class Neighbour:
    """A vocabulary word and its cosine score (finite, in [-1, 1])."""

    word: str
    score: float


def check_k(k: int) -> None:
    """Raise QueryError when `k` is below 1."""
    if k < 1:
        raise QueryError(f"k must be at least 1, got {k}")


def unit(vector: np.ndarray, dim: int) -> np.ndarray:
    """Return float (dim,) `vector` scaled to unit length (a zero vector stays
    zero). Raises QueryError for another shape, NaN or infinity."""
    if vector.shape != (dim,):
        raise QueryError(f"vector must have shape ({dim},), got {vector.shape}")
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm):
        raise QueryError("vector holds NaN or infinity")
    return vector / norm if norm > 0 else np.zeros(dim, dtype=np.float32)


def clipped(score: float) -> float:
    """Return `score` as a float clipped to [-1, 1]."""
    # Rounding lets a unit vector score 1.0000001 against itself.
    return min(1.0, max(-1.0, float(score)))


def top_ids(scores: np.ndarray, k: int) -> list[int]:
    """Return the ids of the `k` highest finite values of float (V,) `scores`,
    highest first (fewer when fewer are finite)."""
    k = min(k, int(np.isfinite(scores).sum()))
    top = np.argpartition(-scores, k - 1)[:k] if k else np.array([], dtype=np.int64)
    return sorted(top.tolist(), key=lambda i: -scores[i])
