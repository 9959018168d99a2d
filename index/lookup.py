"""Finding vocabulary words without a private copy of the vocabulary: word to
id, id to word, words by prefix and words spelt like an unknown word.

Everything lives in flat arrays (`LookupTables`) that `wordvec index` writes
into BUNDLE/index/ and each server worker memory-maps, so N workers share
one copy through the page cache instead of each building a dict and a list
of 50k-1M str objects. The layout is in docs/index.md ("Vocabulary lookup").
"""

import bisect
import difflib
import logging
import mmap
import os
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from index.store import map_array
from index.store import save_normalised as save_array
from training.errors import BundleError
from training.tokenizer import normalise_word

logger = logging.getLogger(__name__)

# Candidates scored per suggestion request, each set capped at its most
# frequent words: words sharing the first two letters, and words of a
# length within one that share the first letter or the last two letters
# (so a typo anywhere but at both ends still meets its word). difflib costs
# about 3-5 microseconds per candidate, so a request scores at most ~750
# candidates, a few milliseconds, whatever the vocabulary size.
_CANDIDATES_PER_BUCKET = 100
_CANDIDATES_BY_PREFIX = 150
_SUGGESTION_CUTOFF = 0.6
# A spelling bucket key packs a tag bit, two code points (plus one, so 0
# means "no character") and a length into one int64; see `_bucket_key`.
_MAX_KEY_LENGTH = 4095
_EMPTY_SLOT = -1


@dataclass(frozen=True)
class FoldedTables:
    """The case-insensitive table of a case-keeping model (V words, F
    distinct case-folded forms, `str.casefold`).

    - utf8, offsets, slots: the folded forms in byte order, laid out and
      hashed as `LookupTables` lays out and hashes the words.
    - starts: int64 (F + 1,); ids: int32 (V,): the ids of the words with
      folded form j are ids[starts[j]:starts[j + 1]], ascending, so the
      first is the most frequent.
    """

    utf8: bytes | mmap.mmap
    offsets: np.ndarray
    slots: np.ndarray
    starts: np.ndarray
    ids: np.ndarray


@dataclass(frozen=True)
class LookupTables:
    """The arrays behind `WordTable` and `SpellingLookup` (V words).

    - utf8: every word's UTF-8 bytes in id order, back to back (B bytes;
      a raw file, mapped with mmap, whose slices are bytes).
    - offsets: int64 (V + 1,), word i is utf8[offsets[i]:offsets[i + 1]].
    - slots: int32 (S,), S a power of two >= 2V: an open-addressing hash
      table (CRC-32 of the UTF-8 bytes, linear probing) of word ids, -1 empty.
    - sorted_ids: int32 (V,), word ids in byte order of their UTF-8 (which
      is code point order), for prefix search.
    - counts: int64 (V,), corpus counts, descending.
    - spelling_keys: int64 (K,), sorted bucket keys (`_bucket_key`);
      spelling_starts int64 (K + 1,) and spelling_ids int32 (P,) hold the
      ids of bucket j in spelling_ids[starts[j]:starts[j + 1]], ascending.
    - folded: the `FoldedTables` of a case-keeping model; None for a
      case-folding one, or an index written before they existed.
    """

    utf8: bytes | mmap.mmap
    offsets: np.ndarray
    slots: np.ndarray
    sorted_ids: np.ndarray
    counts: np.ndarray
    spelling_keys: np.ndarray
    spelling_starts: np.ndarray
    spelling_ids: np.ndarray
    folded: FoldedTables | None = None


WORDS_FILE = "vocabulary.utf8"
# File name and dtype of each array table in BUNDLE/index/.
TABLE_FILES: dict[str, tuple[str, np.dtype]] = {
    "offsets": ("vocabulary_offsets.npy", np.dtype(np.int64)),
    "slots": ("vocabulary_slots.npy", np.dtype(np.int32)),
    "sorted_ids": ("vocabulary_sorted_ids.npy", np.dtype(np.int32)),
    "counts": ("vocabulary_counts.npy", np.dtype(np.int64)),
    "spelling_keys": ("spelling_keys.npy", np.dtype(np.int64)),
    "spelling_starts": ("spelling_starts.npy", np.dtype(np.int64)),
    "spelling_ids": ("spelling_ids.npy", np.dtype(np.int32)),
}
FOLDED_WORDS_FILE = "folded_vocabulary.utf8"
FOLDED_TABLE_FILES: dict[str, tuple[str, np.dtype]] = {
    "offsets": ("folded_offsets.npy", np.dtype(np.int64)),
    "slots": ("folded_slots.npy", np.dtype(np.int32)),
    "starts": ("folded_starts.npy", np.dtype(np.int64)),
    "ids": ("folded_ids.npy", np.dtype(np.int32)),
}


def build_tables(words: list[str], counts: np.ndarray) -> LookupTables:
    """Return the lookup tables of `words` (in id order) and their counts.

    Python loops: 0.3-0.5 s at 50k words on the shared 2-core machine.
    """
    encoded = [word.encode("utf-8") for word in words]
    offsets = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    utf8 = b"".join(encoded)
    order = sorted(range(len(words)), key=encoded.__getitem__)
    keys, starts, ids = _spelling_buckets(words)
    return LookupTables(
        utf8=utf8,
        offsets=offsets,
        slots=_hash_slots(encoded),
        sorted_ids=np.array(order, dtype=np.int32),
        counts=np.asarray(counts, dtype=np.int64),
        spelling_keys=keys,
        spelling_starts=starts,
        spelling_ids=ids,
    )


def build_bundle_tables(
    words: list[str], counts: np.ndarray, manifest: dict[str, Any]
) -> LookupTables:
    """Return the lookup tables of a bundle's vocabulary, with the folded
    table when the bundle keeps case (`folds_case`)."""
    tables = build_tables(words, counts)
    if folds_case(manifest, WordTable(tables)):
        return tables
    return replace(tables, folded=build_folded(words))


def build_folded(words: list[str]) -> FoldedTables:
    """Return the table from each case-folded form of `words` (in id order)
    to the ids of the words that fold to it."""
    groups: dict[bytes, list[int]] = {}
    for word_id, word in enumerate(words):
        groups.setdefault(_fold(word), []).append(word_id)
    forms = sorted(groups)
    offsets = np.zeros(len(forms) + 1, dtype=np.int64)
    np.cumsum([len(form) for form in forms], out=offsets[1:])
    starts = np.zeros(len(forms) + 1, dtype=np.int64)
    np.cumsum([len(groups[form]) for form in forms], out=starts[1:])
    ids = [word_id for form in forms for word_id in groups[form]]
    return FoldedTables(
        utf8=b"".join(forms),
        offsets=offsets,
        slots=_hash_slots(forms),
        starts=starts,
        ids=np.array(ids, dtype=np.int32),
    )


def describe_tables(tables: LookupTables) -> dict[str, int]:
    """Return the index.json entry of `tables`: their sizes (and
    `folded_words`, the number of folded forms, when they have them)."""
    sizes = {
        "words": len(tables.offsets) - 1,
        "slots": len(tables.slots),
        "spelling_buckets": len(tables.spelling_keys),
    }
    if tables.folded is not None:
        sizes["folded_words"] = len(tables.folded.offsets) - 1
    return sizes


def save_tables(directory: Path, tables: LookupTables) -> None:
    """Write every table into `directory`, fsynced: .npy files and the
    raw UTF-8 of the words."""
    _save_words(directory / WORDS_FILE, tables.utf8)
    for name, (file_name, _) in TABLE_FILES.items():
        save_array(directory / file_name, getattr(tables, name))
    if tables.folded is not None:
        _save_words(directory / FOLDED_WORDS_FILE, tables.folded.utf8)
        for name, (file_name, _) in FOLDED_TABLE_FILES.items():
            save_array(directory / file_name, getattr(tables.folded, name))


def load_tables(directory: Path, vocab_size: int, folded: bool = False) -> LookupTables:
    """Return the tables in `directory`, memory-mapped read-only, with the
    folded table when `folded` (index.json names it).

    Raises BundleError when a file is unreadable, of another dtype, or does
    not fit a vocabulary of `vocab_size` words; `wordvec index` rebuilds them.
    """
    arrays = _map_arrays(directory, WORDS_FILE, TABLE_FILES)
    if folded:
        folded_arrays = _map_arrays(directory, FOLDED_WORDS_FILE, FOLDED_TABLE_FILES)
        arrays["folded"] = FoldedTables(**folded_arrays)
    tables = LookupTables(**arrays)
    _check_sizes(directory, tables, vocab_size)
    if tables.folded is not None:
        _check_folded_sizes(directory, tables.folded, vocab_size)
    return tables


class HashedWords:
    """Exact string <-> position over UTF-8 strings laid out back to back with
    their offsets and hash slots (`_hash_slots`); read-only, so threads may
    share one. `WordTable` is the one over the vocabulary."""

    def __init__(
        self, utf8: bytes | mmap.mmap, offsets: np.ndarray, slots: np.ndarray
    ) -> None:
        # A memoryview indexes to Python ints several times faster than
        # numpy does, and slicing bytes or an mmap gives bytes directly:
        # that is the whole hot path (see docs/index.md for the timings).
        self._utf8 = utf8
        self._offsets = offsets.data
        self._slots = slots.data
        self._mask = len(slots) - 1
        self._size = len(offsets) - 1

    def __len__(self) -> int:
        return self._size

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self.id_of(word) is not None

    def id_of(self, word: str) -> int | None:
        """Return the id of `word` (spelt exactly), or None when it is unknown."""
        # TODO: this costs several times a dict hit (encode, CRC-32, three
        # memoryview reads and a slice; benchmarks/http_load.py prints both),
        # about 1% of a request today. A small C extension doing the probe,
        # or a per-process dict of the most frequent words, would close it.
        try:
            key = word.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (possible in JSON input) is in no vocabulary.
            return None
        slots, offsets, utf8 = self._slots, self._offsets, self._utf8
        slot = zlib.crc32(key) & self._mask
        while True:
            word_id = slots[slot]
            if word_id == _EMPTY_SLOT:
                return None
            if utf8[offsets[word_id] : offsets[word_id + 1]] == key:
                return int(word_id)
            slot = (slot + 1) & self._mask

    def word(self, word_id: int) -> str:
        """Return the word with id `word_id` (0 <= word_id < len(self))."""
        offsets = self._offsets
        return self._utf8[offsets[word_id] : offsets[word_id + 1]].decode("utf-8")

    def words(self, word_ids: list[int]) -> list[str]:
        """Return the words of `word_ids`, in order."""
        utf8, offsets = self._utf8, self._offsets
        return [utf8[offsets[i] : offsets[i + 1]].decode("utf-8") for i in word_ids]

    def word_bytes(self, word_id: int) -> bytes:
        """Return the UTF-8 bytes of the word with id `word_id`."""
        offsets = self._offsets
        return self._utf8[offsets[word_id] : offsets[word_id + 1]]


class WordTable(HashedWords):
    """Word <-> id over `LookupTables`; read-only, so threads may share one."""

    def __init__(self, tables: LookupTables) -> None:
        super().__init__(tables.utf8, tables.offsets, tables.slots)
        self.tables = tables


class FoldedWords:
    """Case-insensitive word -> id and prefix search over `FoldedTables`;
    read-only, so threads may share one."""

    def __init__(self, folded: FoldedTables) -> None:
        self._forms = HashedWords(folded.utf8, folded.offsets, folded.slots)
        self._sorted_forms = _StoredOrder(self._forms)
        self._starts = folded.starts.data
        self._ids = folded.ids

    def id_of(self, word: str) -> int | None:
        """Return the id of the most frequent word that `word` folds like, or
        None when no word does."""
        form = self._forms.id_of(word.casefold())
        if form is None:
            return None
        return int(self._ids[self._starts[form]])

    def ids_with_prefix(self, prefix: str, limit: int) -> list[int]:
        """Return up to `limit` ids of words whose folded form starts with
        the folded `prefix`, lowest id (most frequent) first."""
        try:
            key = prefix.casefold().encode("utf-8")
        except UnicodeEncodeError:
            return []
        # casefold maps each character on its own, so the folded form of a
        # word starting with the prefix starts with the folded prefix.
        low, high = _prefix_range(self._sorted_forms, key)
        starts = self._starts
        return _lowest(self._ids[starts[low] : starts[high]], limit)


class _ByteStrings(Protocol):
    """A sequence of UTF-8 strings in byte order, as bisect reads it."""

    def __len__(self) -> int: ...

    def __getitem__(self, position: int) -> bytes: ...


class _SortedWords:
    """The UTF-8 bytes of the words in sorted order, as a sequence for bisect."""

    def __init__(self, table: HashedWords, sorted_ids: np.ndarray) -> None:
        self._table = table
        self._sorted_ids = sorted_ids.data

    def __len__(self) -> int:
        return len(self._sorted_ids)

    def __getitem__(self, position: int) -> bytes:
        return self._table.word_bytes(self._sorted_ids[position])


class _StoredOrder:
    """Strings stored in byte order (the folded forms), as a sequence for
    bisect."""

    def __init__(self, strings: HashedWords) -> None:
        self._strings = strings

    def __len__(self) -> int:
        return len(self._strings)

    def __getitem__(self, position: int) -> bytes:
        return self._strings.word_bytes(position)


class SpellingLookup:
    """Prefix search and spelling suggestions over a `WordTable` whose ids
    run by descending count. Read-only, so threads may share one."""

    def __init__(self, table: WordTable) -> None:
        tables = table.tables
        self._table = table
        self._sorted_words = _SortedWords(table, tables.sorted_ids)
        self._sorted_ids = tables.sorted_ids
        self._keys = tables.spelling_keys
        self._starts = tables.spelling_starts
        self._ids = tables.spelling_ids

    def ids_with_prefix(self, prefix: str, limit: int) -> list[int]:
        """Return up to `limit` ids of words starting with `prefix`, lowest id
        (most frequent) first."""
        try:
            key = prefix.encode("utf-8")
        except UnicodeEncodeError:
            return []
        low, high = _prefix_range(self._sorted_words, key)
        return _lowest(self._sorted_ids[low:high], limit)

    def suggestions(self, word: str, limit: int = 5) -> list[str]:
        """Return up to `limit` vocabulary words spelt most like `word`, best first."""
        if not word:
            return []
        candidate_ids = set(self.ids_with_prefix(word[:2], _CANDIDATES_BY_PREFIX))
        for length in (len(word) - 1, len(word), len(word) + 1):
            candidate_ids.update(self._bucket(_first_letter_key(word, length)))
            candidate_ids.update(self._bucket(_last_letters_key(word, length)))
        # Sorting by id makes ties go to the more frequent word.
        candidates = self._table.words(sorted(candidate_ids))
        return difflib.get_close_matches(
            word, candidates, n=limit, cutoff=_SUGGESTION_CUTOFF
        )

    def _bucket(self, key: int) -> list[int]:
        position = int(np.searchsorted(self._keys, key))
        if position == len(self._keys) or self._keys[position] != key:
            return []
        start, stop = self._starts[position], self._starts[position + 1]
        return self._ids[start:stop].tolist()


class QueryWords:
    """Query words to vocabulary words, with the case rule the bundle was made
    with. Read-only, so threads may share one.

    A case-folding model looks up the folded word only. A case-keeping one
    looks up the word as given, then its case-folded form in `folded`, which
    answers for the most frequent word of that form: "mcdonald" finds
    "McDonald". Without `folded` (an index written before it existed) it
    tries the lower-case, capitalised and upper-case forms (`case_variants`).
    """

    def __init__(
        self,
        table: WordTable,
        spelling: SpellingLookup,
        folds: bool,
        folded: FoldedWords | None = None,
    ) -> None:
        self.folds_case = folds
        self._table = table
        self._spelling = spelling
        self._folded = None if folds else folded

    def key(self, word: str) -> str:
        """Return `word` normalised as the vocabulary's words were."""
        return normalise_word(word, lowercase=self.folds_case)

    def find(self, word: str) -> tuple[str, int | None]:
        """Return (vocabulary spelling, id) of `word`, or (its key, None)."""
        key = self.key(word)
        word_id = self._table.id_of(key)
        if word_id is not None or self.folds_case:
            return key, word_id
        if self._folded is not None:
            word_id = self._folded.id_of(key)
            if word_id is None:
                return key, None
            return self._table.word(word_id), word_id
        for variant in case_variants(key)[1:]:
            word_id = self._table.id_of(variant)
            if word_id is not None:
                return variant, word_id
        return key, None

    def resolve(self, word: str) -> str:
        """Return the spelling `word` is answered for: the folded key of a
        case-folding model (no lookup: the hot path), else `find`'s spelling."""
        return self.key(word) if self.folds_case else self.find(word)[0]

    def ids_with_prefix(self, prefix: str, limit: int) -> list[int]:
        """Return up to `limit` ids of words starting with `prefix` (in any
        case for a case-keeping model), most frequent first."""
        key = self.key(prefix)
        if self._folded is not None:
            return self._folded.ids_with_prefix(key, limit)
        variants = (key,) if self.folds_case else case_variants(key)
        ids = {i for v in variants for i in self._spelling.ids_with_prefix(v, limit)}
        return sorted(ids)[:limit]

    def suggestions(self, key: str, limit: int = 5) -> list[str]:
        """Return up to `limit` vocabulary words spelt like unknown word `key`
        that a query finds as suggested, best first."""
        variants = (key,) if self.folds_case else case_variants(key)
        found = [s for v in variants for s in self._spelling.suggestions(v, limit)]
        # A word the query path cannot reach (an upper-case word in a bundle
        # that says it folds case, say) would send the user in a circle.
        usable = [s for s in dict.fromkeys(found) if self.find(s)[0] == s]
        return usable[:limit]


def case_variants(word: str) -> tuple[str, ...]:
    """Return `word`, then its lower-case, capitalised and upper-case forms,
    without repeats: the spellings a case-keeping model is searched for
    when its index has no folded table."""
    capitalised = word[:1].upper() + word[1:].lower()
    return tuple(dict.fromkeys((word, word.lower(), capitalised, word.upper())))


def folds_case(manifest: dict[str, Any], table: WordTable) -> bool:
    """Return True when the bundle's words were case-folded, so queries must be.

    Trained and fine-tuned bundles record `config.lowercase`, imported ones
    `imported_from.lowercase`. A bundle that records neither (written by
    hand or by an older wordvec) folds case when no word has upper case.
    """
    for section in ("config", "imported_from"):
        values = manifest.get(section)
        if isinstance(values, dict) and isinstance(values.get("lowercase"), bool):
            return bool(values["lowercase"])
    # One decode of every word's bytes: about 10 MB at a million words.
    text = bytes(table.tables.utf8).decode("utf-8")
    return text.lower() == text


def _fold(word: str) -> bytes:
    # casefold, not lower: it is Unicode's form for caseless matching ("ß"
    # and "SS" meet as "ss", final and other sigmas meet) and maps each
    # character on its own, which prefix search over folded forms needs.
    return word.casefold().encode("utf-8")


def _prefix_range(sorted_words: _ByteStrings, key: bytes) -> tuple[int, int]:
    """Return the positions [low, high) of the words starting with `key`."""
    low = bisect.bisect_left(sorted_words, key)
    # UTF-8 never holds the byte 0xff, so every word starting with the
    # prefix sorts before prefix + 0xff and every other word after it.
    high = bisect.bisect_left(sorted_words, key + b"\xff", lo=low)
    return low, high


def _lowest(ids: np.ndarray, limit: int) -> list[int]:
    """Return the `limit` lowest of `ids` (the most frequent words), sorted."""
    if len(ids) > limit:
        ids = np.partition(ids, limit - 1)[:limit]
    return sorted(ids.tolist())


def _hash_slots(encoded: list[bytes]) -> np.ndarray:
    # At most half full, so a probe for an unknown word ends at an empty
    # slot after ~2.5 steps on average (linear probing at load 0.5).
    size = 8
    while size < 2 * len(encoded):
        size *= 2
    slots = [_EMPTY_SLOT] * size
    mask = size - 1
    for word_id, key in enumerate(encoded):
        slot = zlib.crc32(key) & mask
        while slots[slot] != _EMPTY_SLOT:
            slot = (slot + 1) & mask
        slots[slot] = word_id
    return np.array(slots, dtype=np.int32)


def _spelling_buckets(words: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    buckets: dict[int, list[int]] = {}
    for word_id, word in enumerate(words):
        length = len(word)
        for key in (_first_letter_key(word, length), _last_letters_key(word, length)):
            bucket = buckets.setdefault(key, [])
            if len(bucket) < _CANDIDATES_PER_BUCKET:
                bucket.append(word_id)
    keys = sorted(buckets)
    sizes = [len(buckets[key]) for key in keys]
    starts = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    ids = [word_id for key in keys for word_id in buckets[key]]
    return (
        np.array(keys, dtype=np.int64),
        starts,
        np.array(ids, dtype=np.int32),
    )


def _bucket_key(tag: int, letters: str, length: int) -> int:
    # tag: bit 60; the two code points + 1: bits 33-53 and 12-32 (a single
    # letter goes in the low place); the length, capped: bits 0-11.
    # Words longer than the cap share buckets, which only adds candidates.
    points = [ord(c) + 1 for c in letters[-2:]]
    first, second = [0, 0, *points][-2:]
    capped = min(max(length, 0), _MAX_KEY_LENGTH)
    return (tag << 60) | (first << 33) | (second << 12) | capped


def _first_letter_key(word: str, length: int) -> int:
    return _bucket_key(0, word[:1], length)


def _last_letters_key(word: str, length: int) -> int:
    return _bucket_key(1, word[-2:], length)


def _check_sizes(directory: Path, tables: LookupTables, vocab_size: int) -> None:
    expected = {
        "offsets": vocab_size + 1,
        "sorted_ids": vocab_size,
        "counts": vocab_size,
        "spelling_starts": len(tables.spelling_keys) + 1,
    }
    for name, length in expected.items():
        if len(getattr(tables, name)) != length:
            raise BundleError(
                f"{directory / TABLE_FILES[name][0]} holds "
                f"{len(getattr(tables, name))} entries, expected {length} for "
                f"{vocab_size} words; rebuild it with `wordvec index`"
            )
    slots = len(tables.slots)
    if slots < 2 * vocab_size or slots & (slots - 1):
        raise BundleError(
            f"{directory / TABLE_FILES['slots'][0]} has {slots} slots, not a power "
            f"of two >= {2 * vocab_size}; rebuild it with `wordvec index`"
        )
    if int(tables.offsets[-1]) != len(tables.utf8):
        raise BundleError(
            f"{directory / WORDS_FILE} does not match its offsets; "
            "rebuild it with `wordvec index`"
        )


def _check_folded_sizes(directory: Path, folded: FoldedTables, vocab_size: int) -> None:
    forms = len(folded.offsets) - 1
    slots = len(folded.slots)
    fits = (
        forms >= 0
        and len(folded.starts) == forms + 1
        and len(folded.ids) == vocab_size
        and int(folded.starts[-1]) == vocab_size
        and int(folded.offsets[-1]) == len(folded.utf8)
        and slots >= 2 * forms
        and not slots & (slots - 1)
    )
    if not fits:
        raise BundleError(
            f"the folded vocabulary table in {directory} does not fit its "
            f"{vocab_size} words; rebuild it with `wordvec index`"
        )


def _save_words(path: Path, utf8: bytes | mmap.mmap) -> None:
    with open(path, "wb") as f:
        f.write(utf8)
        f.flush()
        os.fsync(f.fileno())


def _map_arrays(
    directory: Path, words_file: str, files: dict[str, tuple[str, np.dtype]]
) -> dict[str, Any]:
    arrays: dict[str, Any] = {"utf8": _map_words(directory / words_file)}
    for name, (file_name, dtype) in files.items():
        array = map_array(directory / file_name, np.dtype(dtype), (None,))
        # Plain ndarray views: indexing a np.memmap wraps every result.
        arrays[name] = np.asarray(array)
    return arrays


def _map_words(path: Path) -> bytes | mmap.mmap:
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return b""
            # The mapping stays valid after the file is closed.
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise BundleError(
            f"cannot read {path}: {exc}; rebuild with `wordvec index`"
        ) from exc
