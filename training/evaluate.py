"""Intrinsic evaluation of word vectors: Spearman correlation with human
similarity judgements and accuracy on word analogies.

Every scorer takes a plain (words, vectors) pair as well as a Vocabulary, so
the benchmark scores gensim's vectors and ours with the same code.
"""

import functools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from training.errors import ConfigError, EvaluationError
from training.tokenizer import normalise_word
from training.vectors import normalise_rows
from training.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).parent / "data"
WORDSIM353 = DATA_DIR / "wordsim353.tsv"
SIMLEX999 = DATA_DIR / "simlex999.txt"
ANALOGIES = DATA_DIR / "questions-words.txt"

Words = Vocabulary | Sequence[str]
T = TypeVar("T")

# Questions scored per matrix product: the (Q, V) float32 score block is
# 120 MB at Q=1000 and V=30,000, which bounds the memory of a run.
_QUESTION_BATCH = 1000


@dataclass
class PairScores:
    """Agreement with human similarity scores on one word-pair file."""

    spearman: float | None  # None when fewer than two pairs could be scored
    pairs: int  # pairs scored (both words known)
    oov_pairs: int  # pairs skipped because a word is not in the vocabulary

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SectionScores:
    """Analogy accuracy on one `: section` of the question file."""

    accuracy: float | None  # None when no question could be answered
    correct: int
    questions: int  # every question of the section, OOV ones included
    oov_questions: int

    @classmethod
    def of(cls, correct: int, answered: int, questions: int) -> "SectionScores":
        accuracy = correct / answered if answered else None
        return cls(accuracy, correct, questions, questions - answered)


@dataclass
class AnalogyScores:
    """3CosAdd analogy accuracy; accuracies leave OOV questions out."""

    semantic: float | None
    syntactic: float | None
    total: float | None
    questions: int
    oov_questions: int
    sections: dict[str, SectionScores] = field(default_factory=dict)

    def to_dict(self, *, sections: bool = False) -> dict[str, Any]:
        scores = asdict(self)
        if not sections:
            del scores["sections"]
        return scores


def evaluate_word_pairs(
    words_or_vocab: Words, vectors: np.ndarray, path: Path | str
) -> PairScores:
    """Return the Spearman correlation between human scores and cosine_score.

    `vectors` is (vocab_size, dim) in the order of `words_or_vocab`. Pairs
    with a word outside the vocabulary are counted and skipped. Raises
    EvaluationError if `path` is unreadable or holds no scored pair.
    """
    path = Path(path)
    lookup = _lookup(words_or_vocab, vectors, limit=None)
    pairs = _parsed(read_word_pairs, path)
    known = [
        (lookup[a], lookup[b], s) for a, b, s in pairs if a in lookup and b in lookup
    ]
    oov_pairs = len(pairs) - len(known)
    if oov_pairs:
        logger.info(
            "%s: %d of %d pairs have an unknown word", path.name, oov_pairs, len(pairs)
        )
    if not known:
        return PairScores(None, 0, oov_pairs)
    first = normalise_rows(vectors[[a for a, _, _ in known]])
    second = normalise_rows(vectors[[b for _, b, _ in known]])
    cosine_scores = np.einsum("ij,ij->i", first, second, dtype=np.float64)
    human = np.array([s for _, _, s in known], dtype=np.float64)
    return PairScores(spearman(human, cosine_scores), len(known), oov_pairs)


def evaluate_analogies(
    words_or_vocab: Words,
    vectors: np.ndarray,
    path: Path | str,
    restrict_vocab: int = 30_000,
) -> AnalogyScores:
    """Return 3CosAdd accuracy on the analogy questions in `path`.

    For "a b c d" the answer is the word w, other than a, b and c, among the
    `restrict_vocab` most frequent (lowest ids) that maximises
    cos(w, b - a + c) on L2-normalised vectors; it is right if w is d.
    A question with a word outside those `restrict_vocab` words is OOV.
    Raises EvaluationError if `path` is unreadable or holds no question,
    ConfigError if `restrict_vocab` is below 1.
    """
    if restrict_vocab < 1:
        raise ConfigError(f"restrict_vocab must be at least 1, got {restrict_vocab}")
    lookup = _lookup(words_or_vocab, vectors, limit=restrict_vocab)
    sections = _parsed(read_analogies, Path(path))
    unit = normalise_rows(vectors[: min(restrict_vocab, len(vectors))])
    # All answerable questions share the batched products; `owner` holds
    # the section number of each.
    known, owner = _known_questions(sections, lookup)
    hits = _answer_correctly(unit, known)
    answered = np.bincount(owner, minlength=len(sections))
    correct = np.bincount(owner, weights=hits, minlength=len(sections))
    scores = {
        name: SectionScores.of(int(correct[i]), int(answered[i]), len(questions))
        for i, (name, questions) in enumerate(sections.items())
    }
    return _summarise(scores)


def evaluate_default(
    words_or_vocab: Words, vectors: np.ndarray, restrict_vocab: int = 30_000
) -> dict[str, Any]:
    """Return JSON-ready scores on the shipped WordSim-353, SimLex-999 and
    Google analogy sets (see training/data/README.md). Never contains NaN.

    `restrict_vocab` applies to the analogies as in `evaluate_analogies`.
    """
    return {
        "wordsim353": evaluate_word_pairs(
            words_or_vocab, vectors, WORDSIM353
        ).to_dict(),
        "simlex999": evaluate_word_pairs(words_or_vocab, vectors, SIMLEX999).to_dict(),
        "analogies": evaluate_analogies(
            words_or_vocab, vectors, ANALOGIES, restrict_vocab=restrict_vocab
        ).to_dict(),
    }


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Return Spearman's rank correlation of `x` and `y` (tied values share
    their average rank), or None if it is undefined (fewer than two values,
    or one side constant)."""
    if len(x) < 2:
        return None
    rx = _ranks(np.asarray(x, dtype=np.float64))
    ry = _ranks(np.asarray(y, dtype=np.float64))
    rx -= rx.mean()
    ry -= ry.mean()
    denominator = math.sqrt(float(rx @ rx) * float(ry @ ry))
    if denominator == 0.0:
        return None
    return float(rx @ ry) / denominator


def read_word_pairs(path: Path | str) -> list[tuple[str, str, float]]:
    """Return (word1, word2, human score) triples from a word-pair file.

    Lines are `word1 word2 score ...`, split on tabs if the line has one,
    otherwise on spaces; `#` lines are comments. A first line without a
    number after the two words is a header; if a header column is named
    SimLex999 that column is the score, otherwise the first numeric column
    after the words. Words are normalised as the vocabulary spells them.
    Raises EvaluationError.
    """
    path = Path(path)
    score_column = None
    header_seen = False
    pairs: list[tuple[str, str, float]] = []
    skipped = 0
    for line_no, line in _lines(path):
        # Tabs separate fields when present, so a header may say "Word 1".
        fields = line.split("\t") if "\t" in line else line.split()
        column = score_column if score_column is not None else _first_number(fields)
        if column is None and not header_seen and not pairs:
            header_seen = True
            names = [f.strip().lower() for f in fields]
            score_column = names.index("simlex999") if "simlex999" in names else None
            continue
        if column is None or column >= len(fields) or not _is_number(fields[column]):
            skipped += 1
            logger.debug("%s line %d: no score, skipped", path.name, line_no)
            continue
        a, b = normalise_word(fields[0]), normalise_word(fields[1])
        pairs.append((a, b, float(fields[column])))
    if skipped:
        logger.warning("%s: %d lines without a score skipped", path.name, skipped)
    if not pairs:
        raise EvaluationError(
            f"{path} holds no 'word1 word2 score' line; give a word-pair file "
            "such as WordSim-353 or SimLex-999"
        )
    return pairs


def read_analogies(path: Path | str) -> dict[str, list[tuple[str, str, str, str]]]:
    """Return the questions of a Google-style analogy file by section.

    `: name` lines open a section; every other line is `a b c d`, meaning
    a is to b as c is to d. Words are normalised as the vocabulary spells
    them. Raises EvaluationError for an unreadable file, a question before
    the first section, a line without four words, or no question at all.
    """
    sections: dict[str, list[tuple[str, str, str, str]]] = {}
    current: list[tuple[str, str, str, str]] | None = None
    for line_no, line in _lines(path):
        if line.startswith(":"):
            current = sections.setdefault(line[1:].strip(), [])
            continue
        fields = [normalise_word(w) for w in line.split()]
        if current is None or len(fields) != 4:
            raise EvaluationError(
                f"{path} line {line_no} is not an analogy question: expected "
                "': section' or four words 'a b c d'"
            )
        current.append((fields[0], fields[1], fields[2], fields[3]))
    if not any(sections.values()):
        raise EvaluationError(f"{path} holds no analogy question")
    return sections


def _parsed(reader: Callable[[Path], T], path: Path) -> T:
    """Return `reader(path)`, parsed once per file version and process.

    The trainer and the server score many models on the same files; the
    cached result is shared, so callers must not change it.
    """
    try:
        stat = path.stat()
    except OSError:
        return reader(path)  # let the reader raise its EvaluationError
    return _parsed_version(reader, path.resolve(), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _parsed_version(
    reader: Callable[[Path], T], path: Path, mtime: int, size: int
) -> T:
    return reader(path)


def _answer_correctly(unit: np.ndarray, questions: np.ndarray) -> np.ndarray:
    """Return a bool per question: is d the 3CosAdd answer to "a b c d"?

    unit: (V, D) normalised rows; questions: (Q, 4) ids of a, b, c, d.
    """
    hits = np.zeros(len(questions), dtype=bool)
    for start in range(0, len(questions), _QUESTION_BATCH):
        batch = questions[start : start + _QUESTION_BATCH]
        a, b, c, d = batch.T
        # Normalising the query would not change the argmax, so it is skipped.
        scores = (unit[b] - unit[a] + unit[c]) @ unit.T  # (Q, V)
        rows = np.arange(len(batch))
        for excluded in (a, b, c):
            scores[rows, excluded] = -np.inf
        hits[start : start + len(batch)] = scores.argmax(axis=1) == d
    return hits


def _known_questions(
    sections: dict[str, list[tuple[str, str, str, str]]], lookup: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Return the (Q, 4) ids of the questions whose words are all in `lookup`
    and the (Q,) number of the section each comes from."""
    known: list[list[int]] = []
    owner: list[int] = []
    for number, questions in enumerate(sections.values()):
        for question in questions:
            ids = [lookup.get(w, -1) for w in question]
            if min(ids) >= 0:
                known.append(ids)
                owner.append(number)
    return np.array(known, dtype=np.int64).reshape(-1, 4), np.array(
        owner, dtype=np.int64
    )


def _summarise(scores: dict[str, SectionScores]) -> AnalogyScores:
    def accuracy(names: list[str]) -> float | None:
        correct = sum(scores[n].correct for n in names)
        answered = sum(scores[n].questions - scores[n].oov_questions for n in names)
        return correct / answered if answered else None

    syntactic = [n for n in scores if n.startswith("gram")]
    semantic = [n for n in scores if not n.startswith("gram")]
    return AnalogyScores(
        semantic=accuracy(semantic),
        syntactic=accuracy(syntactic),
        total=accuracy(list(scores)),
        questions=sum(s.questions for s in scores.values()),
        oov_questions=sum(s.oov_questions for s in scores.values()),
        sections=scores,
    )


def _lookup(
    words_or_vocab: Words, vectors: np.ndarray, limit: int | None
) -> dict[str, int]:
    """Map each normalised word among the first `limit` to its lowest id.

    On a case-sensitive vocabulary (an imported file) "Paris" and "paris"
    both normalise to "paris"; the more frequent one stands for both.
    """
    words = (
        words_or_vocab.words
        if isinstance(words_or_vocab, Vocabulary)
        else words_or_vocab
    )
    if len(words) != len(vectors):
        raise EvaluationError(
            f"{len(words)} words but {len(vectors)} vectors; pass the vectors "
            "in the order of the vocabulary"
        )
    lookup: dict[str, int] = {}
    for word_id, word in enumerate(words[:limit]):
        lookup.setdefault(normalise_word(word), word_id)
    return lookup


def _ranks(values: np.ndarray) -> np.ndarray:
    """Return 1-based ranks of `values`; ties get the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # Start index of each run of equal values in sorted order.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    run_ranks = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(run_ranks, ends - starts)
    return ranks


def _lines(path: Path | str) -> list[tuple[int, str]]:
    """Return (line number, text) of the non-blank, non-comment lines."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise EvaluationError(f"evaluation file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise EvaluationError(f"cannot read evaluation file {path}: {exc}") from exc
    stripped = ((n, line.strip()) for n, line in enumerate(text.splitlines(), 1))
    return [(n, line) for n, line in stripped if line and not line.startswith("#")]


def _first_number(fields: list[str]) -> int | None:
    return next((i for i in range(2, len(fields)) if _is_number(fields[i])), None)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
