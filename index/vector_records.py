"""Parsing the records of word2vec and GloVe vector files: header, text
lines and binary records, each checked and failing with a FormatError that
names the file and the line or word index. Used by index.formats."""

from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from training.errors import FormatError

_CHUNK = 1 << 20
# A binary record whose word runs longer than this means the header's dim
# is wrong or the file is not word2vec binary; stop instead of reading on.
_MAX_WORD_BYTES = 4096
# Control bytes never found in a text vector file but common in float32 data.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\x0b\x0c") + b"\x7f"


def parse_header(path: Path, line: bytes) -> tuple[int, int]:
    """Return (word count, dim) from a word2vec header line; raise FormatError."""
    fields = line.split()
    if len(fields) != 2 or not all(f.isdigit() for f in fields):
        raise FormatError(
            f"{path} line 1 should be the header 'vocab_size dim', got {line[:60]!r}; "
            "for a GloVe file without a header use the glove format"
        )
    count, dim = int(fields[0]), int(fields[1])
    if dim < 1:
        raise FormatError(f"{path} header gives dim {dim}; it must be at least 1")
    return count, dim


def choose_layout(path: Path, f: IO[bytes], dim: int, binary: bool | None) -> bool:
    """Return True to read `f` as binary, judging by the bytes after the header.

    The first record parsing as a word and `dim` numbers means text; control
    bytes (float32 data nearly always has some) mean binary; otherwise the
    name decides (`.bin` is binary). Raises FormatError when an explicit
    `binary` contradicts clear evidence. Rewinds `f`.
    """
    start = f.tell()
    sample = f.read(64 * 1024)
    f.seek(start)
    fields = sample.split(b"\n", 1)[0].split()
    if len(fields) == dim + 1 and all(_is_number(v) for v in fields[1:]):
        seen: str | None = "text"
    elif sample.translate(None, _CONTROL_BYTES) != sample:
        seen = "binary"
    else:
        seen = None
    if binary is None:
        return seen == "binary" or (seen is None and ".bin" in path.suffixes)
    if seen is not None and binary != (seen == "binary"):
        raise FormatError(
            f"{path} looks like word2vec {seen}, not "
            f"{'binary' if binary else 'text'}; read it as word2vec-{seen}"
        )
    return binary


def read_text_records(
    path: Path, f: IO[bytes], count: int, dim: int
) -> tuple[list[str], np.ndarray, bytes]:
    """Return the first `count` words, their (count, dim) vectors and the
    unread rest of the last chunk (always empty for text)."""
    words: list[str] = []
    vectors = np.empty((count, dim), dtype=np.float32)
    if count == 0:
        return words, vectors, b""
    for line_no, line in numbered_lines(f, first_line_no=2):
        word, vectors[len(words)] = parse_text_line(path, line_no, line, dim)
        words.append(word)
        if len(words) == count:
            return words, vectors, b""
    raise FormatError(
        f"{path} is truncated: the header promises {count} words but the file "
        f"ends after {len(words)}"
    )


def read_binary_records(
    path: Path, f: IO[bytes], count: int, dim: int
) -> tuple[list[str], np.ndarray, bytes]:
    """Return the first `count` words, their (count, dim) vectors and the
    bytes already read past the last record."""
    records = _BinaryRecords(path, f, dim)
    words: list[str] = []
    vectors = np.empty((count, dim), dtype=np.float32)
    for index in range(count):
        raw, vectors[index] = records.next(index, count)
        words.append(_binary_word(path, index, raw))
        _check_finite(path, f"word {index} ({words[-1]!r})", vectors[index])
    return words, vectors, records.rest()


class _BinaryRecords:
    """Cuts binary word2vec records (word, b" ", float32 * dim, optional
    b"\n") out of a stream read in 1 MiB chunks."""

    def __init__(self, path: Path, f: IO[bytes], dim: int) -> None:
        self.path = path
        self.f = f
        self.dim = dim
        self.buffer = bytearray()
        self.pos = 0

    def next(self, index: int, count: int) -> tuple[bytes, np.ndarray]:
        """Return the raw word and the (dim,) vector of record `index`."""
        while True:
            space = self.buffer.find(b" ", self.pos, self.pos + _MAX_WORD_BYTES)
            end_of_vector = space + 1 + 4 * self.dim
            if space >= 0 and len(self.buffer) >= end_of_vector:
                break
            self._fill(index, count, space)
        word = bytes(self.buffer[self.pos : space])
        vector = np.frombuffer(self.buffer, "<f4", self.dim, space + 1).copy()
        self.pos = end_of_vector
        return word, vector

    def rest(self) -> bytes:
        """Return the bytes read past the last record."""
        return bytes(self.buffer[self.pos :])

    def _fill(self, index: int, count: int, space: int) -> None:
        if space < 0 and len(self.buffer) - self.pos >= _MAX_WORD_BYTES:
            raise FormatError(
                f"{self.path}: word {index} has no space within {_MAX_WORD_BYTES} "
                "bytes; the header's dim is wrong or the file is not word2vec binary"
            )
        chunk = self.f.read(_CHUNK)
        if not chunk:
            raise FormatError(
                f"{self.path} is truncated: the header promises {count} words but "
                f"the file ends inside word {index}"
            )
        del self.buffer[: self.pos]
        self.pos = 0
        self.buffer += chunk


def _binary_word(path: Path, index: int, raw: bytes) -> str:
    raw = raw.lstrip(b"\n")
    if not raw or any(b in raw for b in b"\t\n\r"):
        raise FormatError(
            f"{path}: word {index} ({raw[:40]!r}) is empty or holds a line break; "
            "the header's dim is wrong or the file is damaged"
        )
    return _decode(path, raw, f"word {index}")


def numbered_lines(f: IO[bytes], first_line_no: int) -> Iterator[tuple[int, bytes]]:
    """Yield (line number, line) for the non-blank lines of `f`."""
    for line_no, line in enumerate(f, first_line_no):
        if line.strip():
            yield line_no, line


def parse_text_line(
    path: Path, line_no: int, line: bytes, dim: int
) -> tuple[str, np.ndarray]:
    """Return the word and (dim,) float32 vector of one text line."""
    fields = line.split()
    where = f"{path} line {line_no}"
    if len(fields) != dim + 1:
        raise FormatError(
            f"{where} has {len(fields) - 1} values after the word, expected {dim}; "
            "the header (or first line) and this line disagree"
        )
    try:
        # Overflow to infinity is reported below, not warned about.
        with np.errstate(over="ignore"):
            values = np.array(fields[1:], dtype=np.float32)
    except ValueError as exc:
        raise FormatError(f"{where} holds a value that is not a number") from exc
    _check_finite(path, f"line {line_no}", values)
    return _decode(path, fields[0], f"line {line_no}"), values


def glove_dim(path: Path, line: bytes) -> int:
    """Return the dim of a GloVe file: the number of values on `line`, its first."""
    fields = line.split()
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        raise FormatError(
            f"{path} starts with a 'vocab_size dim' header; read it as word2vec-text "
            "or fasttext-vec instead of glove"
        )
    if len(fields) < 2:
        raise FormatError(f"{path} line 1 holds no values after the word")
    return len(fields) - 1


def _check_finite(path: Path, where: str, values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        raise FormatError(
            f"{path} {where} holds NaN or infinity; fix or drop that vector"
        )


def _decode(path: Path, raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"{path} {where}: the word {raw[:40]!r} is not valid UTF-8; "
            "convert the file to UTF-8 (e.g. with iconv)"
        ) from exc


def _is_number(text: bytes) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_nothing_follows(path: Path, f: IO[bytes], rest: bytes, count: int) -> None:
    """Raise FormatError unless `rest` and the remainder of `f` are blank."""
    while True:
        if rest.strip():
            raise FormatError(
                f"{path} holds more than the {count} words its header promises; "
                "fix the header's count"
            )
        rest = f.read(_CHUNK)
        if not rest:
            return
