"""Vectors for words outside the vocabulary, from the character n-gram
vectors a subword model was trained with (training.subwords)."""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.bundle import STATE, SUBWORD_VECTORS
from training.errors import BundleError
from training.subwords import word_vector_from_subwords

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubwordModel:
    """Memory-mapped float32 (buckets, dim) n-gram vectors and their settings."""

    subword_vectors: np.ndarray
    min_n: int
    max_n: int
    buckets: int

    def vector(self, word: str) -> np.ndarray | None:
        """Return float32 (dim,) unit vector inferred for `word`, or None when
        it has no n-gram or its n-gram vectors sum to zero."""
        vector = word_vector_from_subwords(
            word, self.subword_vectors, self.min_n, self.max_n, self.buckets
        )
        if vector is None:
            return None
        norm = float(np.linalg.norm(vector))
        return (vector / norm).astype(np.float32) if norm > 0 else None


def load_subword_model(bundle_path: Path) -> SubwordModel | None:
    """Return the bundle's subword model, or None when it was trained without one.

    Raises BundleError when state.json describes subwords the bundle lacks.
    """
    state_path = bundle_path / STATE
    if not state_path.is_file():
        return None
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"cannot read {state_path}: {exc}") from exc
    settings = state.get("subwords") if isinstance(state, dict) else None
    if not settings:
        return None
    try:
        vectors = np.load(
            bundle_path / SUBWORD_VECTORS, mmap_mode="r", allow_pickle=False
        )
        min_n, max_n = int(settings["min_n"]), int(settings["max_n"])
        buckets = int(settings["buckets"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(
            f"{bundle_path} describes subwords that cannot be read ({exc}); "
            "train or import the bundle again"
        ) from exc
    if vectors.dtype != np.float32 or vectors.ndim != 2 or len(vectors) != buckets:
        raise BundleError(
            f"{bundle_path / SUBWORD_VECTORS} holds {vectors.dtype} {vectors.shape}, "
            f"expected float32 ({buckets}, dim); the bundle is damaged"
        )
    logger.info("subword vectors: %d buckets, n-grams %d-%d", buckets, min_n, max_n)
    return SubwordModel(vectors, min_n, max_n, buckets)
