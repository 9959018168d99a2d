"""Helpers on word-vector matrices that several floors need."""

import numpy as np

# Rows normalised per block: a memory-mapped matrix is read a block at a time,
# so the float32 temporaries stay small whatever the vocabulary size.
_BLOCK_ROWS = 65_536


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Return float32 (V, D): each row of `vectors` scaled to unit length.

    An all-zero row stays zero (dividing it by 1) rather than becoming NaN.
    """
    out = np.empty(vectors.shape, dtype=np.float32)
    for start in range(0, vectors.shape[0], _BLOCK_ROWS):
        block = np.asarray(vectors[start : start + _BLOCK_ROWS], dtype=np.float32)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + len(block)] = block / np.where(norms > 0, norms, 1)
    return out
