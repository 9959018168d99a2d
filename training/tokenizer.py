"""The one tokeniser: the trainer splits corpora with it and the server splits
queries with it, so a word means the same thing on both sides."""

import re
from collections.abc import Iterator

# A token is a run of letters or digits (any script), optionally joined by an
# apostrophe ("don't", "o'clock") or a hyphen-free dotted abbreviation is split.
# Underscores count as separators, unlike in `\w`.
_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Return the tokens of `text`, lower-cased unless `lowercase` is false."""
    if lowercase:
        text = text.lower()
    # Unifying quotes on the whole text gives the same tokens as doing it per
    # token (neither quote is a word character) and saves a call per token.
    if "’" in text:
        text = text.replace("’", "'")
    return _TOKEN.findall(text)


def iter_tokens(text: str, lowercase: bool = True) -> Iterator[str]:
    """Yield the tokens of `text` one at a time (same rules as `tokenize`)."""
    if lowercase:
        text = text.lower()
    for match in _TOKEN.finditer(text):
        yield match.group().replace("’", "'")


def normalise_word(word: str, lowercase: bool = True) -> str:
    """Return `word` as the vocabulary spells it: stripped and case-folded.

    A query word is not split: "new york" stays one (probably unknown) key.
    """
    word = word.strip().replace("’", "'")
    return word.lower() if lowercase else word
