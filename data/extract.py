"""Readers for the file formats the default corpus's sources come in: R
lazy-load data, SWORD zText Bible modules, WordNet data files and dictd
databases. Each yields plain text, one paragraph or sentence per line.

Only what these sources use is supported; anything else raises ValueError.
"""

import gzip
import html
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# --- R serialisation (XDR, versions 2 and 3), enough for character vectors ---

_NIL, _SYMBOL, _PAIRLIST, _CHARS, _LOGICAL, _INTEGER = 254, 1, 2, 9, 10, 13
_STRINGS, _LIST, _REFERENCE = 16, 19, 255
_HAS_ATTRIBUTES, _HAS_TAG = 1 << 9, 1 << 10


class _RReader:
    """Unpacks one serialised R object from big-endian (XDR) bytes."""

    def __init__(self, data: bytes) -> None:
        if not data.startswith(b"X\n"):
            raise ValueError("not an XDR-serialised R object")
        self.data, self.pos = data, 2
        version = self.integer()
        self.pos += 8  # writer and minimal reader R versions
        if version == 3:
            encoding_length = self.integer()
            self.pos += encoding_length  # name of the native encoding
        self.references: list[Any] = []

    def integer(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return int(value)

    def item(self) -> Any:
        flags = self.integer()
        kind = flags & 0xFF
        if kind == _NIL:
            return None
        if kind == _REFERENCE:
            index = flags >> 8 or self.integer()
            return self.references[index - 1]
        if kind == _SYMBOL:
            self.references.append(self.item())
            return self.references[-1]
        if kind == _PAIRLIST:
            return self._pairlist(flags)
        if kind == _CHARS:
            length = self.integer()
            if length < 0:
                return None
            start, self.pos = self.pos, self.pos + length
            return self.data[start : self.pos].decode("utf-8")
        value = self._vector(kind)
        attributes = self.item() if flags & _HAS_ATTRIBUTES else {}
        if "names" in attributes:
            return dict(zip(attributes["names"], value, strict=True))
        return value

    def _pairlist(self, flags: int) -> dict[str, Any]:
        if flags & _HAS_ATTRIBUTES:
            self.item()
        tag = self.item() if flags & _HAS_TAG else ""
        head = {tag: self.item()}
        rest = self.item()
        return head | (rest or {})

    def _vector(self, kind: int) -> list[Any]:
        length = self.integer()
        if kind in (_STRINGS, _LIST):
            return [self.item() for _ in range(length)]
        if kind in (_LOGICAL, _INTEGER):
            values = struct.unpack_from(f">{length}i", self.data, self.pos)
            self.pos += 4 * length
            return list(values)
        raise ValueError(f"R object type {kind} is not supported")


def _unpack_r(blob: bytes) -> Any:
    """An R object from lazy-load bytes: 4-byte length, then zlib data."""
    return _RReader(zlib.decompress(blob[4:])).item()


def read_r_lazy_data(directory: Path) -> dict[str, Any]:
    """Return every object in an R package's data/Rdata.rdb by name."""
    index = _RReader(gzip.decompress((directory / "Rdata.rdx").read_bytes())).item()
    blob = (directory / "Rdata.rdb").read_bytes()
    # Each variable's entry is the (offset, length) of its bytes in the .rdb.
    return {
        name: _unpack_r(blob[offset : offset + length])
        for name, (offset, length) in index["variables"].items()
    }


# --- SWORD zText modules ---

_NOTE = re.compile(r"<note\b.*?</note>|<title\b.*?</title>", re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"\s+")


def iter_sword_verses(directory: Path) -> Iterator[str]:
    """Yield each verse of a zText module as plain text (notes and titles
    dropped), Old Testament then New."""
    for testament in ("ot", "nt"):
        if not (directory / f"{testament}.bzz").exists():
            continue
        blocks = _sword_blocks(directory, testament)
        index = (directory / f"{testament}.bzv").read_bytes()
        for block, offset, size in struct.iter_unpack("<IIH", index):
            if size:
                markup = blocks[block][offset : offset + size].decode("utf-8")
                # A note sits between two words with no space around it.
                text = _TAG.sub("", _NOTE.sub(" ", markup))
                text = _SPACES.sub(" ", html.unescape(text)).strip()
                if text:
                    yield text


def _sword_blocks(directory: Path, testament: str) -> list[bytes]:
    compressed = (directory / f"{testament}.bzz").read_bytes()
    index = (directory / f"{testament}.bzs").read_bytes()
    return [
        zlib.decompress(compressed[offset : offset + size])
        for offset, size, _unpacked_size in struct.iter_unpack("<III", index)
    ]


# --- WordNet 3.0 data files ---

_SYNTACTIC_MARKER = re.compile(r"\([a-z]+\)$")


def iter_wordnet_glosses(directory: Path) -> Iterator[str]:
    """Yield one line per synset: its words, a colon, then its gloss
    (definition and examples), e.g. "king, male monarch: a male sovereign".
    """
    for part in ("noun", "verb", "adj", "adv"):
        with open(directory / f"data.{part}", encoding="utf-8") as f:
            for line in f:
                # Licence lines start with spaces; synset lines with an offset.
                if line[:1].isdigit():
                    yield _synset_line(line)


def _synset_line(line: str) -> str:
    fields, _, gloss = line.partition(" | ")
    parts = fields.split(" ")
    word_count = int(parts[3], 16)
    words = [
        _SYNTACTIC_MARKER.sub("", word).replace("_", " ")
        for word in parts[4 : 4 + 2 * word_count : 2]
    ]
    return f"{', '.join(words)}: {gloss.strip()}"


# --- dictd databases ---


def iter_dictd_paragraphs(dict_path: Path, skip_until: str = "") -> Iterator[str]:
    """Yield the paragraphs of a dictd .dict(.dz) file with their line breaks
    undone, from the first line containing `skip_until` on."""
    with gzip.open(dict_path, "rt", encoding="utf-8") as f:
        started = not skip_until
        paragraph: list[str] = []
        for line in f:
            started = started or skip_until in line
            if not started:
                continue
            if line.strip():
                paragraph.append(line.strip())
            elif paragraph:
                yield " ".join(paragraph)
                paragraph = []
        if paragraph:
            yield " ".join(paragraph)
