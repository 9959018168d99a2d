"""Vector files other tools read and write: word2vec text and binary, GloVe
text and fastText `.vec`, and their conversion to and from bundles.

word2vec text (and fastText `.vec`) is a header line "V D", then one line
per word: the word and D numbers separated by spaces. word2vec binary has
the same header, then per word the UTF-8 word, a space and D little-endian
float32 values, optionally followed by a newline. GloVe text is word2vec
text without the header. Readers stream the file (`.gz` and `.bz2` too)
and raise FormatError naming the file and the line or word index.

A file that repeats a word keeps its first vector and logs one warning
with the number of repeats, as the word2vec tools and gensim do.
"""

import bz2
import gzip
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, cast

import numpy as np

from index.vector_records import (
    check_nothing_follows,
    choose_layout,
    glove_dim,
    numbered_lines,
    parse_header,
    parse_text_line,
    read_binary_records,
    read_text_records,
)
from training.bundle import load_bundle, write_bundle
from training.durable import atomic_file
from training.errors import ConfigError, FormatError
from training.evaluate import evaluate_default
from training.tokenizer import normalise_word
from training.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

IMPORT_FORMATS: tuple[str, ...] = (
    "word2vec-text",
    "word2vec-binary",
    "glove",
    "fasttext-vec",
)
EXPORT_FORMATS: tuple[str, ...] = ("word2vec-text", "word2vec-binary")

_ROWS_PER_WRITE = 4096
_GLOVE_BLOCK_ROWS = 65_536
# Bytes that split a word2vec line into fields.
_ASCII_WHITESPACE = frozenset(" \t\n\r\x0b\x0c")


def read_word2vec(
    path: Path | str, *, binary: bool | None = None, limit: int | None = None
) -> tuple[list[str], np.ndarray]:
    """Return the words and float32 (V, D) vectors of a word2vec file.

    `binary=None` tells text from binary by the bytes after the header; an
    explicit `binary` that the bytes clearly contradict raises FormatError.
    `limit` reads only the first `limit` words (the most frequent, in files
    written by word2vec, fastText or gensim). Raises FormatError, or
    ConfigError for a `limit` below 1.
    """
    path = Path(path)
    _check_limit(limit)
    with _open(path) as f:
        count, dim = parse_header(path, f.readline())
        binary = choose_layout(path, f, dim, binary)
        wanted = count if limit is None else min(count, limit)
        if binary:
            words, vectors, rest = read_binary_records(path, f, wanted, dim)
        else:
            words, vectors, rest = read_text_records(path, f, wanted, dim)
        if wanted == count:
            check_nothing_follows(path, f, rest, count)
    logger.info("read %d words of dim %d from %s", len(words), dim, path)
    return _drop_duplicates(path, words, vectors)


def read_glove(
    path: Path | str, limit: int | None = None
) -> tuple[list[str], np.ndarray]:
    """Return the words and float32 (V, D) vectors of a GloVe text file.

    D is the number of values on the first line. Raises FormatError.
    """
    # TODO: glove.840B.300d has a few lines whose word holds spaces (". . .");
    # they fail here as lines with too many values. Skipping them with a
    # warning would make that popular file importable.
    path = Path(path)
    _check_limit(limit)
    words: list[str] = []
    blocks: list[np.ndarray] = []
    dim = 0
    with _open(path) as f:
        for line_no, line in numbered_lines(f, first_line_no=1):
            if limit is not None and len(words) >= limit:
                break
            if not words:
                dim = glove_dim(path, line)
            if len(words) % _GLOVE_BLOCK_ROWS == 0:
                blocks.append(np.empty((_GLOVE_BLOCK_ROWS, dim), dtype=np.float32))
            word, values = parse_text_line(path, line_no, line, dim)
            blocks[-1][len(words) % _GLOVE_BLOCK_ROWS] = values
            words.append(word)
    if not words:
        raise FormatError(f"{path} holds no vectors; is it the right file?")
    vectors = np.concatenate(blocks)[: len(words)]
    logger.info("read %d words of dim %d from %s", len(words), dim, path)
    return _drop_duplicates(path, words, vectors)


def write_word2vec(
    path: Path | str, words: Sequence[str], vectors: np.ndarray, *, binary: bool
) -> None:
    """Write `words` and float32 (V, D) `vectors` as a word2vec file.

    Text keeps every float32 exactly (9 significant digits). Binary writes
    a newline after each vector, as the word2vec tool does. The file is
    written under a temporary name, fsynced and renamed. Raises FormatError
    for a word with whitespace, mismatched sizes or NaN/infinite values.
    """
    path = Path(path)
    vectors = _checked_for_writing(words, vectors)
    with atomic_file(path) as f:
        f.write(f"{len(words)} {vectors.shape[1]}\n".encode())
        for start in range(0, len(words), _ROWS_PER_WRITE):
            stop = start + _ROWS_PER_WRITE
            f.write(_encode_rows(words[start:stop], vectors[start:stop], binary))
    logger.info("wrote %d words to %s", len(words), path)


def import_vectors(
    path: Path | str,
    fmt: str,
    output_dir: Path | str,
    *,
    limit: int | None = None,
    overwrite: bool = False,
    lowercase: bool = False,
) -> Path:
    """Read a vector file and write it as a bundle; return the bundle's path.

    Files carry no counts, so word i (0-based, in file order) gets the
    estimated count ceil(V / (i + 1)) (Zipf's law, ending at 1); the
    manifest says `counts_estimated: true`. `lowercase` folds every word
    with training.tokenizer.normalise_word, as the server folds queries,
    and keeps the first (most frequent) vector of words that then
    coincide; `limit` counts words before folding. Raises FormatError or
    ConfigError (unknown `fmt`) or BundleError (`output_dir` exists).
    """
    path = Path(path)
    if fmt not in IMPORT_FORMATS:
        raise ConfigError(
            f"unknown format {fmt!r}; use one of {', '.join(IMPORT_FORMATS)}"
        )
    if fmt == "glove":
        words, vectors = read_glove(path, limit=limit)
    else:
        words, vectors = read_word2vec(
            path, binary=fmt == "word2vec-binary", limit=limit
        )
    if lowercase:
        words, vectors = _drop_duplicates(
            path, [normalise_word(w) for w in words], vectors
        )
    vocabulary = Vocabulary(words, estimated_counts(len(words)))
    manifest = {
        "source": "imported",
        "imported_from": {
            "file": path.name,
            "format": fmt,
            "limit": limit,
            "lowercase": lowercase,
        },
        "config": None,
        "corpus": None,
        "training": None,
        "counts_estimated": True,
        "evaluation": evaluate_default(vocabulary, vectors),
    }
    return write_bundle(
        Path(output_dir),
        vocabulary=vocabulary,
        vectors=vectors,
        manifest=manifest,
        overwrite=overwrite,
    )


def export_vectors(bundle_dir: Path | str, fmt: str, output: Path | str) -> Path:
    """Write a bundle's words and vectors as a word2vec file; return its path.

    Raises ConfigError for a format other than word2vec-text or
    word2vec-binary, BundleError for a bad bundle.
    """
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(
            f"cannot export {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}"
        )
    bundle = load_bundle(Path(bundle_dir))
    output = Path(output)
    write_word2vec(
        output, bundle.vocabulary.words, bundle.vectors, binary=fmt == "word2vec-binary"
    )
    return output


def estimated_counts(vocab_size: int) -> np.ndarray:
    """Return int64 counts ceil(V / rank) for ranks 1..V (Zipf's law, exponent 1).

    The most frequent word gets V and the least frequent 1, so frequent
    words take realistic shares of the noise distribution and subsampling.
    """
    ranks = np.arange(1, vocab_size + 1, dtype=np.int64)
    return -(-vocab_size // ranks)


@contextmanager
def _open(path: Path) -> Iterator[IO[bytes]]:
    try:
        with _open_raw(path) as f:
            yield f
    except FileNotFoundError as exc:
        raise FormatError(f"vector file {path} does not exist") from exc
    except (OSError, EOFError) as exc:
        raise FormatError(f"cannot read vector file {path}: {exc}") from exc


def _open_raw(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    if path.suffix == ".bz2":
        return cast(IO[bytes], bz2.open(path, "rb"))
    return open(path, "rb")


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be at least 1 (or none), got {limit}")


def _drop_duplicates(
    path: Path, words: list[str], vectors: np.ndarray
) -> tuple[list[str], np.ndarray]:
    first: dict[str, int] = {}
    for index, word in enumerate(words):
        first.setdefault(word, index)
    if len(first) == len(words):
        return words, vectors
    repeats = len(words) - len(first)
    logger.warning(
        "%s repeats %d words; the first vector of each is kept", path, repeats
    )
    keep = np.fromiter(first.values(), dtype=np.int64, count=len(first))
    return list(first), vectors[keep]


def _encode_rows(words: Sequence[str], vectors: np.ndarray, binary: bool) -> bytes:
    rows = zip(words, vectors, strict=True)
    if binary:
        return b"".join(w.encode() + b" " + v.tobytes() + b"\n" for w, v in rows)
    # %.9g: nine significant digits bring every float32 back exactly.
    line = " ".join(["%.9g"] * vectors.shape[1])
    return "".join(f"{w} {line % tuple(v.tolist())}\n" for w, v in rows).encode()


def _checked_for_writing(words: Sequence[str], vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != len(words) or vectors.shape[1] < 1:
        raise FormatError(
            f"{len(words)} words need vectors of shape ({len(words)}, dim), "
            f"got {vectors.shape}"
        )
    vectors = vectors.astype("<f4", copy=False)
    for index, word in enumerate(words):
        if not word or not _ASCII_WHITESPACE.isdisjoint(word):
            raise FormatError(
                f"word {index} ({word!r}) is empty or holds whitespace, which a "
                "word2vec file cannot store"
            )
    if not np.isfinite(vectors).all():
        row = int(np.argwhere(~np.isfinite(vectors))[0][0])
        raise FormatError(f"vector {row} ({words[row]!r}) holds NaN or infinity")
    return vectors
