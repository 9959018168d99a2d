"""Streaming corpus readers: text files (plain, gzip, bzip2 or xz), directories
of them and Wikipedia XML dumps, read one text unit at a time.

Nothing here holds a whole corpus in memory; a corpus is only ever a list of
paths that can be read again from the start.
"""

import bz2
import codecs
import gzip
import hashlib
import io
import logging
import lzma
import re
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, cast

from training import wikipedia
from training.errors import CorpusError
from training.tokenizer import tokenize

logger = logging.getLogger(__name__)

CorpusPaths = Sequence[Path | str]

# Compression is recognised by the file's first bytes, so a renamed or
# suffix-less archive still reads as text.
_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
# What a damaged archive raises while being read: EOFError for a truncated
# stream, OSError/zlib.error/LZMAError for corrupt bytes.
_READ_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError)
_PROBE_BYTES = 64 * 1024
_WIKI_NAME = re.compile(r"-pages-articles.*\.xml", re.IGNORECASE)
_HASH_BLOCK = 1 << 20


def corpus_files(paths: CorpusPaths) -> list[Path]:
    """Return the files `paths` stand for: each file as given, each directory
    expanded recursively in sorted order without hidden files.

    Raises CorpusError for a missing path or a directory holding no files.
    """
    return [path for path, _ in _named_files(paths)]


def _named_files(paths: CorpusPaths) -> list[tuple[Path, str]]:
    """Each corpus file with the name the fingerprint and manifest use: the
    path below the directory that was given, or the bare file name."""
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths:
        raise CorpusError("no corpus given; pass at least one file or directory")
    named: list[tuple[Path, str]] = []
    for given in map(Path, paths):
        if given.is_dir():
            named.extend(_directory_files(given))
        elif given.is_file():
            named.append((given, given.name))
        elif given.exists():
            raise CorpusError(
                f"corpus path {given} is not a regular file or directory (a device, "
                "pipe or socket); give text files or directories of them"
            )
        else:
            raise CorpusError(f"corpus path {given} does not exist; check the path")
    return named


def _directory_files(directory: Path) -> list[tuple[Path, str]]:
    found = []
    for path in directory.rglob("*"):
        relative = path.relative_to(directory)
        if path.is_file() and not any(p.startswith(".") for p in relative.parts):
            found.append((path, relative.as_posix()))
    if not found:
        raise CorpusError(
            f"corpus directory {directory} holds no files; put text files in it"
        )
    return sorted(found, key=lambda item: item[1])


def corpus_fingerprint(paths: CorpusPaths) -> str:
    """Return "sha256:<hex>" over each file's name, size and raw bytes, in
    corpus order; renaming the corpus directory keeps the fingerprint."""
    digest = hashlib.sha256()
    for path, name in _named_files(paths):
        digest.update(f"{name}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as f:
            while block := f.read(_HASH_BLOCK):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


def corpus_file_sizes(paths: CorpusPaths) -> list[dict[str, str | int]]:
    """Return `[{"name": ..., "bytes": ...}]` for the manifest, in corpus order;
    bytes are on-disk (compressed) sizes."""
    return [{"name": n, "bytes": p.stat().st_size} for p, n in _named_files(paths)]


class CorpusReader:
    """Reads the text units of a corpus in order and reports how many on-disk
    bytes it has got through, for progress bars."""

    def __init__(self, paths: CorpusPaths) -> None:
        self.files = corpus_files(paths)
        self.total_bytes = sum(path.stat().st_size for path in self.files)
        self._done_bytes = 0
        self._raw: io.BufferedReader | None = None

    @property
    def bytes_read(self) -> int:
        """On-disk bytes consumed so far (approximate within a read buffer)."""
        if self._raw is None or self._raw.closed:
            return self._done_bytes
        return self._done_bytes + self._raw.tell()

    def __iter__(self) -> Iterator[str]:
        for path in self.files:
            yield from self._file_texts(path)
            self._done_bytes += path.stat().st_size

    def _file_texts(self, path: Path) -> Iterator[str]:
        is_wiki = _probe(path)
        with _open_binary(path) as (raw, stream):
            self._raw = raw
            try:
                if is_wiki:
                    yield from wikipedia.iter_wiki_texts(stream, path.name)
                else:
                    yield from _text_lines(stream)
            except UnicodeDecodeError as exc:
                raise CorpusError(
                    f"{path} holds bytes that are not UTF-8 (within its first "
                    f"{raw.tell():,} bytes on disk); convert it to UTF-8, "
                    "e.g. with iconv"
                ) from exc
            except _READ_ERRORS as exc:
                raise _damaged(path, exc) from exc
            finally:
                self._raw = None


def iter_texts(paths: CorpusPaths) -> Iterator[str]:
    """Yield the corpus's text units in order: each non-blank line of a text
    file, each paragraph of a Wikipedia article.

    Raises CorpusError for missing paths, binary files, damaged archives and
    malformed Wikipedia XML.
    """
    yield from CorpusReader(paths)


def iter_sentences(
    paths: CorpusPaths, lowercase: bool = True, max_sentence_length: int = 10_000
) -> Iterator[list[str]]:
    """Yield the tokens of each text unit, split into sentences of at most
    `max_sentence_length` tokens; units without tokens are skipped."""
    yield from split_sentences(iter_texts(paths), lowercase, max_sentence_length)


def split_sentences(
    texts: Iterator[str] | CorpusReader, lowercase: bool, max_sentence_length: int
) -> Iterator[list[str]]:
    """Tokenise each text and cut it into pieces of at most
    `max_sentence_length` tokens; texts without tokens yield nothing."""
    if max_sentence_length < 1:
        raise ValueError(
            f"max_sentence_length must be at least 1, got {max_sentence_length}"
        )
    for text in texts:
        tokens = tokenize(text, lowercase)
        if len(tokens) <= max_sentence_length:
            if tokens:
                yield tokens
            continue
        for start in range(0, len(tokens), max_sentence_length):
            yield tokens[start : start + max_sentence_length]


def _text_lines(stream: io.BufferedIOBase) -> Iterator[str]:
    # utf-8-sig drops a byte-order mark that some editors write.
    # The cast: typeshed's TextIOWrapper wants attributes that decompressing
    # streams have at run time but do not declare.
    text = io.TextIOWrapper(cast(BinaryIO, stream), encoding="utf-8-sig")
    for line in text:
        if not line.isspace():
            yield line.rstrip("\r\n")


@contextmanager
def _open_binary(
    path: Path,
) -> Iterator[tuple[io.BufferedReader, io.BufferedIOBase]]:
    """Open `path` and yield (the on-disk file, its decompressed bytes)."""
    with open(path, "rb") as raw:
        head = raw.read(len(_XZ_MAGIC))
        raw.seek(0)
        stream: io.BufferedIOBase
        if head.startswith(_GZIP_MAGIC):
            stream = gzip.GzipFile(fileobj=raw, mode="rb")
        elif head.startswith(_BZIP2_MAGIC):
            stream = bz2.BZ2File(raw, mode="rb")
        elif head.startswith(_XZ_MAGIC):
            stream = lzma.LZMAFile(raw, mode="rb")  # noqa: SIM115 - closed below
        else:
            yield raw, raw
            return
        with stream:
            yield raw, stream


def _probe(path: Path) -> bool:
    """Check that the file's first block is UTF-8 text and return whether it
    is a Wikipedia XML dump."""
    try:
        with _open_binary(path) as (_, stream):
            block = stream.read(_PROBE_BYTES)
    except _READ_ERRORS as exc:
        raise _damaged(path, exc) from exc
    if b"\0" in block:
        raise _not_text(path, "it holds NUL bytes")
    try:
        # final=False: the block may end inside a multi-byte character.
        head = codecs.getincrementaldecoder("utf-8")().decode(block, final=False)
    except UnicodeDecodeError as exc:
        raise _not_text(path, f"byte {exc.start} is not UTF-8") from exc
    return bool(_WIKI_NAME.search(path.name)) or "<mediawiki" in head[:4096]


def _not_text(path: Path, why: str) -> CorpusError:
    return CorpusError(
        f"{path} looks binary ({why}); a corpus file must be UTF-8 text, "
        "plain or compressed with gzip, bzip2 or xz"
    )


def _damaged(path: Path, exc: BaseException) -> CorpusError:
    return CorpusError(
        f"cannot read {path}: the compressed data is truncated or corrupt ({exc}); "
        "download or compress it again"
    )
