"""Errors the index floor raises: a build that misses its recall floor, a
query for a word the vocabulary lacks, a query that makes no sense."""

from training.errors import WordvecError


class IndexBuildError(WordvecError):
    """An index could not be built, or it finds too few of the true neighbours."""


class QueryError(WordvecError, ValueError):
    """A query is malformed: k below 1, no words, a vector of the wrong shape."""


class WordNotFound(WordvecError):
    """A word is not in the vocabulary and no vector can be inferred for it.

    `suggestions` holds up to five vocabulary words spelt like it, closest first.
    """

    def __init__(self, word: str, suggestions: list[str], vocab_size: int) -> None:
        self.word = word
        self.suggestions = suggestions
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(
            f"{word!r} is not among the {vocab_size:,} words in the vocabulary{hint}"
        )
