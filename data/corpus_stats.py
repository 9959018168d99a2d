"""Print what a corpus offers the evaluation sets: vocabulary size, token
count, encoding speed and how many similarity pairs and analogy questions
fall inside the vocabulary. Run from the repository root:

    .venv/bin/python -m data.corpus_stats [CORPUS ...] [--min-count 5]
"""

import argparse
import tempfile
import time
from pathlib import Path

from training.encode import encode_corpus
from training.vocabulary import Vocabulary

ROOT = Path(__file__).resolve().parent
EVALUATION_DIR = ROOT.parent / "training" / "data"
COMMON_WORDS = [
    *("king", "queen", "man", "woman", "prince", "princess"),
    *("france", "paris", "london", "england", "germany", "berlin"),
    *("italy", "rome", "spain", "madrid", "city", "country"),
    *("good", "bad", "big", "small", "day", "night"),
    *("father", "mother", "son", "daughter", "brother", "sister"),
    *("boy", "girl", "husband", "wife"),
]


def pairs_in_vocabulary(path: Path, vocabulary: Vocabulary) -> tuple[int, int]:
    """(pairs with both words known, all pairs) of a word-pair TSV file."""
    known = total = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        first, second = line.lower().split("\t")[:2]
        if first == "word1":
            continue
        total += 1
        known += first in vocabulary and second in vocabulary
    return known, total


def analogies_in_vocabulary(path: Path, top_words: set[str]) -> tuple[int, int]:
    """(questions whose four words are all in `top_words`, all questions)."""
    known = total = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(":") or not line.strip():
            continue
        total += 1
        known += all(word in top_words for word in line.lower().split())
    return known, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", nargs="*", type=Path, default=[ROOT / "corpus"])
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--analogy-vocabulary", type=int, default=30_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        encoded = encode_corpus(args.corpus, Path(workdir), min_count=args.min_count)
        seconds = time.perf_counter() - started
    vocabulary = encoded.vocabulary
    print(f"tokens read:      {encoded.num_raw_tokens:,}")
    print(
        f"tokens kept:      {encoded.num_tokens:,} in {encoded.num_sentences:,} lines"
    )
    print(f"vocabulary:       {len(vocabulary):,} words at min_count {args.min_count}")
    print(
        f"encoding:         {seconds:.1f} s, "
        f"{encoded.num_raw_tokens / seconds / 1e6:.2f} M tokens/s"
    )
    missing = [word for word in COMMON_WORDS if word not in vocabulary]
    print(
        f"common words:     {len(COMMON_WORDS) - len(missing)} of {len(COMMON_WORDS)}"
        f" known; missing: {', '.join(missing) or 'none'}"
    )
    for name in ("wordsim353.tsv", "simlex999.txt"):
        known, total = pairs_in_vocabulary(EVALUATION_DIR / name, vocabulary)
        print(f"{name + ':':18}{known} of {total} pairs in vocabulary")
    top_words = set(vocabulary.words[: args.analogy_vocabulary])
    known, total = analogies_in_vocabulary(
        EVALUATION_DIR / "questions-words.txt", top_words
    )
    print(
        f"analogies:        {known:,} of {total:,} questions within the "
        f"{args.analogy_vocabulary:,} most frequent words"
    )


if __name__ == "__main__":
    main()
