"""Vocabulary: word counts, frequency-sorted ids and the sampling tables
derived from counts (noise distribution, subsampling keep probabilities)."""

import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training.errors import BundleError, ConfigError, CorpusError

logger = logging.getLogger(__name__)


@dataclass
class Vocabulary:
    """Words ordered by descending count; a word's id is its position.

    `counts[i]` is how often `words[i]` occurred in the training corpus.
    """

    words: list[str]
    counts: np.ndarray  # int64, shape (vocab_size,)
    word_to_id: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.counts = np.asarray(self.counts, dtype=np.int64)
        if len(self.words) != len(self.counts):
            raise ValueError("words and counts differ in length")
        self.word_to_id = {w: i for i, w in enumerate(self.words)}
        if len(self.word_to_id) != len(self.words):
            raise ValueError("vocabulary has duplicate words")

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.word_to_id

    @property
    def total_count(self) -> int:
        return int(self.counts.sum())

    @classmethod
    def from_counter(
        cls,
        counter: Counter[str],
        min_count: int = 5,
        max_vocab_size: int | None = None,
    ) -> "Vocabulary":
        """Keep words seen at least `min_count` times, the `max_vocab_size` most
        frequent of them; ties are broken alphabetically so ids are stable."""
        if min_count < 1:
            raise ConfigError(f"min_count must be at least 1, got {min_count}")
        kept = [(w, c) for w, c in counter.items() if c >= min_count]
        kept.sort(key=lambda wc: (-wc[1], wc[0]))
        if max_vocab_size is not None:
            kept = kept[:max_vocab_size]
        if not kept:
            raise CorpusError(
                f"no word occurs at least {min_count} times "
                f"({len(counter)} distinct words in the corpus); "
                "lower --min-count or give a larger corpus"
            )
        logger.info(
            "vocabulary: %d of %d distinct words kept (min_count=%d)",
            len(kept),
            len(counter),
            min_count,
        )
        return cls([w for w, _ in kept], np.array([c for _, c in kept]))

    @classmethod
    def build(
        cls,
        sentences: Iterable[list[str]],
        min_count: int = 5,
        max_vocab_size: int | None = None,
    ) -> "Vocabulary":
        """Count the tokens of `sentences` and keep the frequent ones."""
        counter: Counter[str] = Counter()
        for sentence in sentences:
            counter.update(sentence)
        if not counter:
            raise CorpusError("the corpus holds no words; check the input files")
        return cls.from_counter(counter, min_count, max_vocab_size)

    def merged_with(
        self,
        counts: Mapping[str, int],
        min_count: int,
        max_new_words: int | None = None,
    ) -> tuple["Vocabulary", list[str]]:
        """Return this vocabulary with `counts` added, and the words it gained.

        Known words keep their place in the vocabulary whatever their count in
        `counts`; an unknown word joins when it occurs at least `min_count`
        times, the `max_new_words` most frequent of them. Ids are sorted by
        the summed counts again (ties alphabetical, as in `from_counter`), so
        low ids still mean frequent words. The new words come most frequent
        first.
        """
        if min_count < 1:
            raise ConfigError(f"min_count must be at least 1, got {min_count}")
        lookup = self.word_to_id
        candidates = [
            (w, c) for w, c in counts.items() if c >= min_count and w not in lookup
        ]
        candidates.sort(key=lambda wc: (-wc[1], wc[0]))
        if max_new_words is not None:
            candidates = candidates[:max_new_words]
        merged = self.counts.copy()
        for word, count in counts.items():
            word_id = lookup.get(word)
            if word_id is not None:
                merged[word_id] += count
        entries = list(zip(self.words, merged.tolist(), strict=True)) + candidates
        entries.sort(key=lambda wc: (-wc[1], wc[0]))
        vocabulary = Vocabulary(
            [w for w, _ in entries], np.array([c for _, c in entries])
        )
        return vocabulary, [w for w, _ in candidates]

    def ids(self, tokens: Iterable[str]) -> list[int]:
        """Ids of the known tokens, in order; unknown tokens are dropped."""
        lookup = self.word_to_id
        return [lookup[t] for t in tokens if t in lookup]

    def noise_distribution(self, power: float = 0.75) -> np.ndarray:
        """Probabilities of drawing each word as a negative sample: unigram
        counts raised to `power` (0.75 in Mikolov et al. 2013), normalised.
        Float64, shape (vocab_size,)."""
        weights = self.counts.astype(np.float64) ** power
        return weights / weights.sum()

    def keep_probabilities(self, sample: float) -> np.ndarray:
        """Probability of keeping each occurrence under frequent-word
        subsampling with threshold `sample` (0 disables it).

        Uses the word2vec C tool's formula, (sqrt(f/t) + 1) * t/f with f the
        word's share of the corpus, capped at 1. Float32, shape (vocab_size,).
        """
        if sample <= 0:
            return np.ones(len(self), dtype=np.float32)
        ratio = self.counts.astype(np.float64) / (sample * self.total_count)
        keep = (np.sqrt(ratio) + 1.0) / ratio
        return np.minimum(keep, 1.0).astype(np.float32)

    def save(self, path: Path) -> None:
        """Write one `word<TAB>count` line per word, in id order."""
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for word, count in zip(self.words, self.counts.tolist(), strict=True):
                f.write(f"{word}\t{count}\n")
            f.flush()
            os.fsync(f.fileno())

    @classmethod
    def load(cls, path: Path) -> "Vocabulary":
        """Read a file written by `save`."""
        words: list[str] = []
        counts: list[int] = []
        try:
            with open(path, encoding="utf-8") as f:
                for line_no, line in enumerate(f, 1):
                    word, sep, count = line.rstrip("\n").rpartition("\t")
                    if not sep or not count.isdigit():
                        raise BundleError(
                            f"{path.name} line {line_no} is not 'word<TAB>count'"
                        )
                    words.append(word)
                    counts.append(int(count))
        except (OSError, UnicodeDecodeError) as exc:
            raise BundleError(f"cannot read vocabulary {path.name}: {exc}") from exc
        return cls(words, np.array(counts, dtype=np.int64))
