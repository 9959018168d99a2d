"""Fixtures shared by every test package."""

import random
from pathlib import Path

import pytest

# Words of a few topics; a sentence mixes words of one topic with glue words,
# so words of a topic share contexts and a trained model can tell topics apart.
TOPICS = {
    "royalty": ["king", "queen", "prince", "princess", "crown", "throne", "palace"],
    "animals": ["dog", "cat", "horse", "cow", "sheep", "goat", "bird"],
    "food": ["bread", "cheese", "apple", "butter", "milk", "soup", "cake"],
    "places": ["paris", "france", "london", "england", "berlin", "germany", "rome"],
}
GLUE_WORDS = ["the", "a", "and", "of", "in", "with", "was", "is", "to"]


def write_tiny_corpus(path: Path, num_sentences: int = 400, seed: int = 0) -> Path:
    """Write a seeded corpus of `num_sentences` lines of 4-12 words to `path`
    and return `path`; the same seed always gives the same bytes."""
    rng = random.Random(seed)
    topics = list(TOPICS.values())
    lines = []
    for _ in range(num_sentences):
        topic = rng.choice(topics)
        length = rng.randint(4, 12)
        words = [
            rng.choice(topic) if rng.random() < 0.6 else rng.choice(GLUE_WORDS)
            for _ in range(length)
        ]
        lines.append(" ".join(words).capitalize() + ".")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """A 400-sentence seeded text corpus (about 3,000 tokens) in tmp_path."""
    return write_tiny_corpus(tmp_path / "tiny_corpus.txt")
