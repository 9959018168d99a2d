"""Encode a corpus as token ids once, so training epochs never tokenise again.

The ids file is raw int32 in corpus order; -1 ends each sentence, sentences
are never empty and the file never starts with -1. `encode_corpus` reads the
corpus once: it numbers words in order of first appearance while counting
them, then renumbers the ids file into vocabulary order block by block.
"""

import contextlib
import itertools
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from tqdm import tqdm

from training.corpus import (
    CorpusPaths,
    CorpusReader,
    corpus_file_sizes,
    corpus_fingerprint,
    split_sentences,
)
from training.errors import ConfigError, CorpusError
from training.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

SENTENCE_END = -1
_DROPPED = -2
IDS_FILE = "token_ids.int32"
# Token ids are buffered in Python lists and written in blocks of this many.
_WRITE_BLOCK = 1 << 20
# The renumbering pass works on this many int32 ids at a time (16 MB).
_REMAP_BLOCK = 1 << 22
_MAX_SENTENCE_LENGTH = 10_000


@dataclass
class EncodedCorpus:
    """A corpus as token ids plus the vocabulary and statistics behind them."""

    vocabulary: Vocabulary
    ids_path: Path
    num_tokens: int
    num_raw_tokens: int
    num_sentences: int
    fingerprint: str
    files: list[dict[str, Any]]

    def ids(self) -> np.ndarray:
        """Return the ids file as a read-only int32 memmap, shape (num_tokens +
        num_sentences,): token ids with -1 after each sentence."""
        return np.memmap(self.ids_path, dtype=np.int32, mode="r")

    def manifest(self) -> dict[str, Any]:
        """Return the `corpus` entry of a bundle manifest."""
        return {
            "fingerprint": self.fingerprint,
            "files": self.files,
            "tokens": self.num_tokens,
            "sentences": self.num_sentences,
        }


def encode_corpus(
    paths: CorpusPaths,
    workdir: Path,
    *,
    min_count: int = 5,
    max_vocab_size: int | None = None,
    lowercase: bool = True,
    progress: bool = False,
) -> EncodedCorpus:
    """Return the corpus encoded against a vocabulary built from it, with the
    ids in `workdir`/token_ids.int32 (overwritten).

    Raises ConfigError for min_count or max_vocab_size below 1, CorpusError
    when the corpus holds no words or no word occurs `min_count` times, and
    for unreadable input (see training.corpus).
    """
    # Checked before reading: the vocabulary would only complain after a pass.
    if min_count < 1:
        raise ConfigError(f"min_count must be at least 1, got {min_count}")
    if max_vocab_size is not None and max_vocab_size < 1:
        raise ConfigError(f"max_vocab_size must be at least 1, got {max_vocab_size}")
    workdir.mkdir(parents=True, exist_ok=True)
    reader = CorpusReader(paths)
    provisional_path = workdir / (IDS_FILE + ".provisional")
    ids_path = workdir / IDS_FILE
    try:
        with _texts_with_progress(reader, progress) as texts:
            words, counts, num_raw_tokens = _first_pass(
                texts, lowercase, provisional_path
            )
        if num_raw_tokens == 0:
            raise CorpusError(_empty_message(reader))
        vocabulary = Vocabulary.from_counter(
            Counter(dict(zip(words, counts.tolist(), strict=True))),
            min_count,
            max_vocab_size,
        )
        lookup = vocabulary.word_to_id
        remap = np.array([lookup.get(w, _DROPPED) for w in words], dtype=np.int32)
        num_tokens, num_sentences = _renumber(provisional_path, remap, ids_path)
    finally:
        provisional_path.unlink(missing_ok=True)
    return _finish(
        paths, vocabulary, ids_path, num_tokens, num_raw_tokens, num_sentences
    )


def encode_with_vocabulary(
    paths: CorpusPaths, vocabulary: Vocabulary, workdir: Path, *, lowercase: bool = True
) -> EncodedCorpus:
    """Return the corpus encoded against a fixed `vocabulary` (for fine-tuning);
    words outside it are dropped and sentences left empty vanish.

    Raises CorpusError when the corpus holds no words or none of them is in
    the vocabulary.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    reader = CorpusReader(paths)
    lookup = vocabulary.word_to_id
    ids_path = workdir / IDS_FILE
    num_raw_tokens = num_tokens = num_sentences = 0
    with _AtomicIdsWriter(ids_path) as writer:
        for tokens in split_sentences(reader, lowercase, _MAX_SENTENCE_LENGTH):
            num_raw_tokens += len(tokens)
            known = [i for i in map(lookup.get, tokens) if i is not None]
            if known:
                num_tokens += len(known)
                num_sentences += 1
                known.append(SENTENCE_END)
                writer.add(known)
        # Raising inside the writer discards its temporary file.
        if num_raw_tokens == 0:
            raise CorpusError(_empty_message(reader))
        if num_tokens == 0:
            raise CorpusError(
                f"none of the {num_raw_tokens} tokens in the corpus is among the "
                f"{len(vocabulary)} words of the vocabulary; give text in the same "
                "language and casing as the model's corpus"
            )
    return _finish(
        paths, vocabulary, ids_path, num_tokens, num_raw_tokens, num_sentences
    )


def _first_pass(
    texts: Iterator[str], lowercase: bool, path: Path
) -> tuple[list[str], np.ndarray, int]:
    """Write provisional ids (numbered by first appearance) to `path`; return
    the distinct words in provisional-id order, their counts and the number
    of tokens read."""
    # A missing word takes the next number from the counter, so the lookup
    # below runs in C with no Python call per token.
    # TODO: tokenising runs on one core (about 0.75M tokens/s of CPU time on
    # the default corpus), so a large corpus spends minutes here; tokenising
    # files in a process pool and merging their provisional ids would use
    # every core.
    provisional: defaultdict[str, int] = defaultdict(itertools.count().__next__)
    counts = np.zeros(0, dtype=np.int64)
    with open(path, "wb") as f:
        buffer: list[int] = []
        for tokens in split_sentences(texts, lowercase, _MAX_SENTENCE_LENGTH):
            buffer.extend(map(provisional.__getitem__, tokens))
            buffer.append(SENTENCE_END)
            if len(buffer) >= _WRITE_BLOCK:
                counts = _write_and_count(f, buffer, counts)
                buffer = []
        counts = _write_and_count(f, buffer, counts)
    return list(provisional), counts, int(counts.sum())


def _write_and_count(f: IO[bytes], buffer: list[int], counts: np.ndarray) -> np.ndarray:
    """Append `buffer` to `f` as int32 and return `counts` grown by its ids."""
    block = np.array(buffer, dtype=np.int32)
    block.tofile(f)
    tokens = block[block >= 0]
    if tokens.size == 0:
        return counts
    added = np.bincount(tokens, minlength=len(counts))
    added[: len(counts)] += counts
    return added


def _renumber(source: Path, remap: np.ndarray, target: Path) -> tuple[int, int]:
    """Rewrite provisional ids in `source` as final ids in `target`, dropping
    words outside the vocabulary and the sentences that leaves empty; return
    (tokens, sentences) written."""
    # Index -1 of the extended table is the sentence end, which maps to itself.
    table = np.append(remap, np.int32(SENTENCE_END))
    provisional = np.memmap(source, dtype=np.int32, mode="r")
    num_tokens = num_sentences = 0
    # Starting as if after a sentence end drops any leading end marker.
    previous = SENTENCE_END
    with _AtomicIdsWriter(target) as writer:
        for start in range(0, len(provisional), _REMAP_BLOCK):
            block = table[provisional[start : start + _REMAP_BLOCK]]
            block = block[block != _DROPPED]
            if block.size == 0:
                continue
            before = np.empty_like(block)
            before[0] = previous
            before[1:] = block[:-1]
            block = block[(block != SENTENCE_END) | (before != SENTENCE_END)]
            if block.size:
                previous = int(block[-1])
                ends = int(np.count_nonzero(block == SENTENCE_END))
                num_sentences += ends
                num_tokens += block.size - ends
                writer.add_array(block)
    del provisional
    return num_tokens, num_sentences


class _AtomicIdsWriter:
    """Writes int32 ids to a temporary name, then fsyncs and renames it into
    place on success; on error the temporary file is removed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._temporary = path.with_name(path.name + ".tmp")
        self._buffer: list[int] = []

    def __enter__(self) -> "_AtomicIdsWriter":
        self._file = open(self._temporary, "wb")
        return self

    def add(self, ids: list[int]) -> None:
        self._buffer.extend(ids)
        if len(self._buffer) >= _WRITE_BLOCK:
            self._flush()

    def add_array(self, ids: np.ndarray) -> None:
        self._flush()
        ids.astype(np.int32, copy=False).tofile(self._file)

    def _flush(self) -> None:
        np.array(self._buffer, dtype=np.int32).tofile(self._file)
        self._buffer = []

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            if exc_type is None:
                self._flush()
                self._file.flush()
                os.fsync(self._file.fileno())
        except BaseException:
            self._discard()
            raise
        if exc_type is not None:
            self._discard()
            return
        self._file.close()
        os.replace(self._temporary, self.path)

    def _discard(self) -> None:
        # Unlinked before closing, and closed whatever happens: on a full disk
        # the close flushes the buffer and fails again, and an open descriptor
        # would keep the space of the deleted file in use.
        self._temporary.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self._file.close()


@contextmanager
def _texts_with_progress(
    reader: CorpusReader, enabled: bool
) -> Iterator[Iterator[str]]:
    """Yield the reader's texts, with a tqdm bar on stderr over on-disk bytes
    when `enabled`."""
    if not enabled:
        yield iter(reader)
        return
    with tqdm(
        total=reader.total_bytes, unit="B", unit_scale=True, desc="encoding corpus"
    ) as bar:

        def texts() -> Iterator[str]:
            for number, text in enumerate(reader):
                # Asking for the file position on every line would cost more
                # than the bar is worth.
                if number % 4096 == 0:
                    bar.update(reader.bytes_read - bar.n)
                yield text

        yield texts()
        bar.update(reader.total_bytes - bar.n)


def _finish(
    paths: CorpusPaths,
    vocabulary: Vocabulary,
    ids_path: Path,
    num_tokens: int,
    num_raw_tokens: int,
    num_sentences: int,
) -> EncodedCorpus:
    logger.info(
        "encoded corpus: %d words in the vocabulary, %d of %d tokens kept "
        "in %d sentences",
        len(vocabulary),
        num_tokens,
        num_raw_tokens,
        num_sentences,
    )
    return EncodedCorpus(
        vocabulary=vocabulary,
        ids_path=ids_path,
        num_tokens=num_tokens,
        num_raw_tokens=num_raw_tokens,
        num_sentences=num_sentences,
        fingerprint=corpus_fingerprint(paths),
        files=corpus_file_sizes(paths),
    )


def _empty_message(reader: CorpusReader) -> str:
    return (
        f"the corpus holds no words ({len(reader.files)} file(s), "
        f"{reader.total_bytes} bytes); give text files with words in them"
    )
