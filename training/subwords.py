"""fastText-style character n-grams (Bojanowski et al. 2017): each word is
wrapped in boundary markers, `<word>`, and its n-grams of `min_n`..`max_n`
characters are hashed (FNV-1a, 32 bits) into `buckets` shared rows. The word
keeps its own row as well; its vector is the mean of its row and its n-gram
rows, so a word never seen in training still gets a vector from its n-grams.
"""

import logging
from dataclasses import dataclass

import numpy as np

from training.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

_FNV_OFFSET = 2166136261
_FNV_PRIME = 16777619
_MASK_32 = 0xFFFFFFFF
# Words composed per step in compose_word_vectors.
_COMPOSE_BLOCK = 4096


@dataclass
class SubwordTable:
    """The n-gram rows of every vocabulary word in CSR layout: the rows of
    word `i` are `rows[offsets[i]:offsets[i + 1]]`."""

    offsets: np.ndarray  # int64, shape (vocab_size + 1,)
    rows: np.ndarray  # int32, shape (offsets[-1],), values in [0, buckets)
    min_n: int
    max_n: int
    buckets: int

    def settings(self) -> dict[str, int]:
        """Return the settings a bundle's state.json records."""
        return {"min_n": self.min_n, "max_n": self.max_n, "buckets": self.buckets}


def fnv1a_32(data: bytes) -> int:
    """Return the 32-bit FNV-1a hash of `data`."""
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK_32
    return h


def word_ngrams(word: str, min_n: int, max_n: int) -> list[str]:
    """Return the character n-grams of `<word>`, shortest first at each
    start; the whole `<word>` is left out because the word has its own row."""
    marked = f"<{word}>"
    grams = []
    for start in range(len(marked)):
        for n in range(min_n, max_n + 1):
            if start + n > len(marked):
                break
            gram = marked[start : start + n]
            if gram != marked:
                grams.append(gram)
    return grams


def ngram_buckets(word: str, min_n: int, max_n: int, buckets: int) -> list[int]:
    """Return the bucket (row of the subword matrix) of each n-gram of `word`."""
    return [
        fnv1a_32(g.encode("utf-8")) % buckets for g in word_ngrams(word, min_n, max_n)
    ]


def build_subword_table(
    vocabulary: Vocabulary, min_n: int, max_n: int, buckets: int
) -> SubwordTable:
    """Return the n-gram rows of every word of `vocabulary`, in id order."""
    per_word = [ngram_buckets(w, min_n, max_n, buckets) for w in vocabulary.words]
    lengths = np.fromiter(
        (len(r) for r in per_word), dtype=np.int64, count=len(per_word)
    )
    offsets = np.zeros(len(per_word) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    rows = np.fromiter(
        (b for r in per_word for b in r), dtype=np.int32, count=int(offsets[-1])
    )
    logger.info(
        "subwords: %d n-gram rows for %d words (%d buckets)",
        len(rows),
        len(per_word),
        buckets,
    )
    return SubwordTable(offsets, rows, min_n, max_n, buckets)


def compose_word_vectors(
    input_vectors: np.ndarray, subword_vectors: np.ndarray, table: SubwordTable
) -> np.ndarray:
    """Return each word's vector as the mean of its own row and its n-gram rows.

    Float32, shape (vocab_size, dim); `input_vectors` is (vocab_size, dim) and
    `subword_vectors` is (buckets, dim).
    """
    counts = np.diff(table.offsets)
    sums = np.array(input_vectors, dtype=np.float32, copy=True)
    # Blocks of words bound the gathered (n-grams, dim) matrix to tens of MB
    # (all at once it is ~20 rows per word).
    for first in range(0, len(counts), _COMPOSE_BLOCK):
        last = min(first + _COMPOSE_BLOCK, len(counts))
        begin, end = int(table.offsets[first]), int(table.offsets[last])
        if begin == end:
            continue
        gathered = subword_vectors[table.rows[begin:end]]
        has_rows = counts[first:last] > 0
        # reduceat sums each word's run of rows; words without n-grams are
        # left out, as reduceat would hand them the next word's first row.
        starts = table.offsets[first:last][has_rows] - begin
        block = sums[first:last]
        block[has_rows] += np.add.reduceat(gathered, starts, axis=0)
    sums /= (1 + counts)[:, None].astype(np.float32)
    return sums


def word_vector_from_subwords(
    word: str, subword_vectors: np.ndarray, min_n: int, max_n: int, buckets: int
) -> np.ndarray | None:
    """Return a vector for a word outside the vocabulary: the mean of its
    n-gram rows. Float32, shape (dim,); None when the word has no n-grams
    (shorter than `min_n` - 2 characters)."""
    rows = ngram_buckets(word, min_n, max_n, buckets)
    if not rows:
        return None
    return np.asarray(subword_vectors[rows], dtype=np.float32).mean(axis=0)
