"""Finding vocabulary words by spelling: words that start with a prefix,
most frequent first, and words spelt like an unknown word."""

import bisect
import difflib

import numpy as np

# Candidates scored per suggestion request, each set capped at its most
# frequent words: words sharing the first two letters, and words of a
# length within one that share the first letter or the last two letters
# (so a typo anywhere but at both ends still meets its word). difflib costs
# about 3-5 microseconds per candidate, so a request scores at most ~750
# candidates, a few milliseconds, whatever the vocabulary size.
_CANDIDATES_PER_BUCKET = 100
_CANDIDATES_BY_PREFIX = 150
_SUGGESTION_CUTOFF = 0.6


class SpellingLookup:
    """Prefix search and spelling suggestions over a frequency-ordered vocabulary.

    `words` must be in id order, which is descending count. Read-only after
    construction, so threads may share one.
    """

    def __init__(self, words: list[str]) -> None:
        order = sorted(range(len(words)), key=words.__getitem__)
        self._sorted_words = [words[i] for i in order]
        self._sorted_ids = np.array(order, dtype=np.int64)
        self._words = words
        buckets: dict[tuple[str, int, str], list[int]] = {}
        for word_id, word in enumerate(words):
            for key in ((word[:1], len(word), ""), ("", len(word), word[-2:])):
                bucket = buckets.setdefault(key, [])
                if len(bucket) < _CANDIDATES_PER_BUCKET:
                    bucket.append(word_id)
        self._buckets = buckets

    def ids_with_prefix(self, prefix: str, limit: int) -> list[int]:
        """Return up to `limit` ids of words starting with `prefix`, lowest id
        (most frequent) first."""
        low = bisect.bisect_left(self._sorted_words, prefix)
        # Every string starting with prefix sorts before prefix + U+10FFFF.
        high = bisect.bisect_left(self._sorted_words, prefix + "\U0010ffff", lo=low)
        ids = self._sorted_ids[low:high]
        if len(ids) > limit:
            ids = np.partition(ids, limit - 1)[:limit]
        return sorted(ids.tolist())

    def suggestions(self, word: str, limit: int = 5) -> list[str]:
        """Return up to `limit` vocabulary words spelt most like `word`, best first."""
        if not word:
            return []
        candidate_ids = set(self.ids_with_prefix(word[:2], _CANDIDATES_BY_PREFIX))
        for length in (len(word) - 1, len(word), len(word) + 1):
            candidate_ids.update(self._buckets.get((word[:1], length, ""), ()))
            candidate_ids.update(self._buckets.get(("", length, word[-2:]), ()))
        # Sorting by id makes ties go to the more frequent word.
        candidates = [self._words[i] for i in sorted(candidate_ids)]
        return difflib.get_close_matches(
            word, candidates, n=limit, cutoff=_SUGGESTION_CUTOFF
        )
