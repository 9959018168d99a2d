"""The kinds of index, how `auto` picks one, and how each is built.

- flat: exact search over every unit vector. No FAISS file is written: the
  searcher reads `normalised.npy` in place.
- hnsw: FAISS IndexHNSWFlat (inner product); fast and accurate, but holds
  the vectors plus a graph of 2*M neighbours per word.
- ivf-pq: FAISS IVF with product-quantised codes, re-ranked exactly from
  `normalised.npy`; a few dozen bytes per word for millions of words.
"""

import logging
import math
from typing import Literal

import faiss
import numpy as np

from index.errors import IndexBuildError

logger = logging.getLogger(__name__)

IndexKind = Literal["flat", "hnsw", "ivf-pq"]
KIND_CHOICES = ("auto", "flat", "hnsw", "ivf-pq")

# Exact search streams vocab_size * dim floats per query. One thread scored
# 5M floats (50k x 100) in 0.6 ms and 40M (400k x 100) in 14 ms here, about
# 0.12-0.35 ms per million; 15M floats (150k words at dim 100, 50k at 300)
# keeps a query near 2 ms, so larger vocabularies get an approximate index.
FLAT_MAX_FLOATS = 15_000_000
# FAISS wants at least this many training points per IVF list (k-means).
_POINTS_PER_LIST = 39
# Bytes per word of an HNSW graph beyond level 0's 2*M int32 neighbours:
# upper levels (about 1/M of words, M neighbours each) and the level table.
_HNSW_EXTRA_BYTES_PER_WORD = 12

EF_SEARCH_LADDER = (16, 32, 64, 128, 256, 512, 1024, 2048)
NPROBE_LADDER = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def choose_kind(
    vocab_size: int, dim: int, hnsw_m: int, memory_budget_mb: float
) -> IndexKind:
    """Return the kind `auto` means for vectors of shape (vocab_size, dim).

    flat while exact search stays near 2 ms, then HNSW while its vectors
    and graph (plus normalised.npy) fit `memory_budget_mb`, then IVF-PQ.
    """
    if vocab_size * dim <= FLAT_MAX_FLOATS:
        return "flat"
    if hnsw_memory_bytes(vocab_size, dim, hnsw_m) <= memory_budget_mb * 2**20:
        return "hnsw"
    return "ivf-pq"


def hnsw_memory_bytes(vocab_size: int, dim: int, hnsw_m: int) -> int:
    """Return the estimated bytes an HNSW index and normalised.npy occupy."""
    vectors = vocab_size * dim * 4
    graph = vocab_size * (2 * hnsw_m * 4 + _HNSW_EXTRA_BYTES_PER_WORD)
    # The HNSW storage holds its own copy of the unit vectors.
    return 2 * vectors + graph


def build_hnsw(
    normalised: np.ndarray, hnsw_m: int, ef_construction: int
) -> faiss.IndexHNSWFlat:
    """Return an HNSW index (inner product) holding every row of `normalised`."""
    # TODO: IndexHNSWFlat stores its own copy of the unit vectors, so disk and
    # page cache hold them twice (400 MB extra at 1M x 100). Searching the
    # graph over normalised.npy itself (or reading the unit vectors out of
    # the mapped index instead of normalised.npy) would drop the copy.
    index = faiss.IndexHNSWFlat(normalised.shape[1], hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.add(normalised)
    return index


def ivf_pq_shape(vocab_size: int, dim: int) -> tuple[int, int]:
    """Return (nlist, m): IVF lists and PQ sub-quantisers for this many words.

    nlist is the power of two nearest 4 * sqrt(vocab_size) (the FAISS
    guideline's lower end, which keeps k-means cheap), capped so each list
    gets enough training points; m gives each sub-quantiser about 4 dims.
    """
    nlist = 2 ** round(math.log2(4 * math.sqrt(vocab_size)))
    nlist = max(1, min(nlist, vocab_size // _POINTS_PER_LIST))
    divisors = [m for m in range(1, dim + 1) if dim % m == 0]
    m = min(divisors, key=lambda m: abs(dim / m - 4))
    return nlist, m


def ivf_pq_factory(nlist: int, m: int) -> str:
    """Return the FAISS factory string of an IVF-PQ index with 8-bit codes."""
    # "np" skips polysemous training, which the factory otherwise turns on:
    # we never use Hamming filtering, and it made training 40x slower here.
    return f"IVF{nlist},PQ{m}np"


def build_ivf_pq(normalised: np.ndarray, nlist: int, m: int, seed: int) -> faiss.Index:
    """Return a trained IVF-PQ index (8-bit codes) holding every row of `normalised`.

    Training uses 40 points per list (FAISS asks for 39; k-means time grows
    with points x lists), at least 10,000, drawn with `seed`. Raises
    IndexBuildError when there are too few words to train the codebooks.
    """
    vocab_size, dim = normalised.shape
    if vocab_size < 256:
        raise IndexBuildError(
            f"IVF-PQ needs at least 256 words to train its codebooks, the bundle "
            f"has {vocab_size}; use --index flat"
        )
    index = faiss.index_factory(
        dim, ivf_pq_factory(nlist, m), faiss.METRIC_INNER_PRODUCT
    )
    rng = np.random.default_rng(seed)
    size = min(vocab_size, max(40 * nlist, 10_000))
    sample = np.sort(rng.choice(vocab_size, size=size, replace=False))
    index.train(np.ascontiguousarray(normalised[sample]))
    index.add(normalised)
    return index
