"""Fine-tuning: go on training a bundle on new text and write a new bundle.

The base bundle's training state holds the output vectors (and n-gram
vectors), so training resumes where it stopped instead of from noise. The
upload's counts are added to the vocabulary's, words new to it that occur
`min_count` times join with fresh vectors, and the noise distribution and
subsampling follow the summed counts. Ids stay sorted by count, because
evaluation and the index read low ids as frequent words; every array is
permuted to the new order.

Bundles without training state (imports of word2vec, GloVe or fastText
files) are refused: with output vectors started at zero, the first passes
over a small upload would rewrite the known words' vectors from that upload
alone, which is the damage a fine-tune must not do.
"""

import dataclasses
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from training.bundle import Bundle, TrainingState, load_bundle, write_bundle
from training.config import TrainConfig
from training.corpus import CorpusPaths, CorpusReader, split_sentences
from training.encode import EncodedCorpus, encode_with_vocabulary
from training.errors import BundleError, ConfigError, CorpusError, FinetuneCancelled
from training.evaluate import evaluate_default
from training.kernels import ModelParams, init_params, make_kernel
from training.subwords import SubwordTable, build_subword_table, compose_word_vectors
from training.trainer import (
    EpochProgress,
    check_vocabulary_size,
    resolve_device,
    resolve_threads,
    run_stats,
    train_epochs,
)
from training.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

# Default fine-tune learning rate as a share of the base run's starting rate:
# high enough that a new word seen a few dozen times moves into place, low
# enough that the known words drift little (see benchmarks/finetune_time.py).
LR_FRACTION = 0.5
# Tokens per kernel call: a quarter of the trainer's, so progress and
# cancellation are checked several times a second on two cores.
CHUNK_TOKENS = 1 << 18
# New words listed in the manifest; the bundle's vocabulary has all of them.
NEW_WORDS_SAMPLE = 20
# New words start at the median norm of this many of the most frequent known
# words. On the default model (1 MB upload, probe word "buffer" seen 14
# times) the median over all words put it 46th after training, twice that
# 6th, four times 11th and moved a frequent probe ("function") from 1st to
# 306th; the top 10,000's median is about twice the overall one.
# TODO: on a 10 MB upload (5,674 new words) analogy accuracy ends about 0.004
# lower than with random starts (0.143 against 0.147, two runs each), likely
# because thousands of long new rows push the known words' output rows hard
# in the first updates; a start norm that grows with the word's upload count
# would test that.
_NORM_REFERENCE_WORDS = 10_000
_MAX_SENTENCE_LENGTH = 10_000
_DEVICES = ("auto", "cpu", "cuda")


@dataclass
class FinetuneConfig:
    """Settings of one fine-tune; the model's own settings (architecture,
    window, negative samples, subsampling) come from the base bundle."""

    epochs: int = 5
    # None: LR_FRACTION of the base run's starting learning rate.
    lr: float | None = None
    # Occurrences in the upload a word new to the vocabulary needs to join it.
    min_count: int = 5
    threads: int = 0  # 0: one per available core
    # None: the base run's seed.
    seed: int | None = None
    device: str = "auto"
    # The most frequent new words beyond this many are left out.
    max_new_words: int = 50_000

    def validate(self) -> None:
        """Raise ConfigError naming the first setting out of its range."""
        checks = [
            ("epochs", _is_int(self.epochs) and 1 <= self.epochs <= 100, "1 to 100"),
            (
                "lr",
                self.lr is None or (_is_number(self.lr) and 0 < self.lr <= 1),
                "in (0, 1], or unset for the default",
            ),
            ("min_count", _is_int(self.min_count) and self.min_count >= 1, "1 or more"),
            ("threads", _is_int(self.threads) and self.threads >= 0, "0 (all) or more"),
            ("seed", self.seed is None or _is_int(self.seed), "an integer or unset"),
            ("device", self.device in _DEVICES, "auto, cpu or cuda"),
            (
                "max_new_words",
                _is_int(self.max_new_words) and self.max_new_words >= 0,
                "0 or more",
            ),
        ]
        for name, ok, valid in checks:
            if not ok:
                raise ConfigError(
                    f"{name} must be {valid}, got {getattr(self, name)!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class FinetuneProgress:
    """Where a running fine-tune stands. `fraction`, `words_per_second` and
    `eta_seconds` cover the training stage (in-vocabulary tokens over all
    epochs); before it they are 0/None, after it 1."""

    stage: str  # "counting", "training", "evaluating" or "writing"
    fraction: float
    words_per_second: float | None = None
    eta_seconds: float | None = None
    loss: float | None = None
    epoch: int = 0  # 1-based while training
    epochs: int = 0


@dataclass
class FinetuneResult:
    """What `finetune` produced: the new bundle and what changed."""

    bundle_path: Path
    new_words: list[str]  # most frequent first
    evaluation_before: dict[str, Any] | None
    evaluation_after: dict[str, Any] | None
    stats: dict[str, Any] = field(default_factory=dict)


ProgressCallback = Callable[[FinetuneProgress], None]
StopCheck = Callable[[], bool]


def finetune(
    base: Path,
    paths: CorpusPaths,
    config: FinetuneConfig,
    output_dir: Path,
    *,
    version: str | None = None,
    progress: bool = False,
    evaluate: bool = True,
    on_progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> FinetuneResult:
    """Train the bundle at `base` further on the text at `paths` and write the
    result as a new bundle at `output_dir`; returns what changed.

    `on_progress` is called at each stage and after every chunk of training
    (several times a second); `should_stop` is asked as often, and when it
    answers True the run raises FinetuneCancelled and writes nothing.

    Raises ConfigError for settings out of range, BundleError when the base
    is not a bundle or has no training state or `output_dir` exists, and
    CorpusError when the upload holds no words or none that can be trained.
    """
    config.validate()
    started = time.perf_counter()
    output_dir = Path(output_dir)
    if output_dir.exists():
        raise BundleError(f"{output_dir} already exists; choose another path")
    report = _Reporter(on_progress, should_stop)
    base_bundle = load_bundle(base)
    state = _training_state_of(base_bundle)
    base_config = _train_config_of(base_bundle)
    run_config = _run_config(base_config, state, config)
    device = resolve_device(run_config.device)
    threads = resolve_threads(run_config.threads)

    report.stage("counting", 0.0)
    # TODO: the upload is tokenised twice (here and in encode_with_vocabulary),
    # about 2 s of one core per 10 MB; encoding once against the upload's own
    # vocabulary and renumbering the ids after the merge would save the pass.
    upload_counts = count_upload(paths, base_config.lowercase)
    vocabulary, new_words = base_bundle.vocabulary.merged_with(
        upload_counts, config.min_count, config.max_new_words
    )
    _check_trainable(upload_counts, vocabulary, config.min_count)
    check_vocabulary_size(run_config, vocabulary)
    params = merged_params(base_bundle, state, vocabulary, run_config.seed)
    logger.info(
        "fine-tuning %s: %d new words, vocabulary %d -> %d",
        base_bundle.path,
        len(new_words),
        len(base_bundle.vocabulary),
        len(vocabulary),
    )

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(
        prefix=".wordvec-finetune-", dir=output_dir.parent
    ) as workdir:
        corpus = encode_with_vocabulary(
            paths, vocabulary, Path(workdir), lowercase=base_config.lowercase
        )
        report.check("encoding")
        from_contexts = _start_from_contexts(
            params, vocabulary, new_words, corpus, run_config
        )
        kernel = make_kernel(run_config, vocabulary, params, device, threads)
        # TODO: every row trains at one learning rate, so a rare new word owes
        # its place mostly to its start from its contexts (default model,
        # 1 MB of Perl pod pages, a made-up word in every second place of a
        # word W: W ranked 8th for "buffer", 14 places; 100th for "hash", 19;
        # 1,944th for "array", 10); and training on the upload alone moves the
        # known words it mentions (10 MB: WordSim-353 0.507 -> 0.460). A
        # per-row learning-rate scale in the kernels (high for new rows) and
        # mixing a sample of the base corpus into the upload would address both.
        run = train_epochs(
            kernel,
            corpus.ids_path,
            run_config,
            progress=progress,
            on_chunk=report.training,
            chunk_tokens=CHUNK_TOKENS,
        )
        kernel.finish()
    training = run_stats(run, corpus, kernel, device, threads)
    vectors = params.word_vectors()

    report.stage("evaluating", 1.0)
    before = _evaluation_before(base_bundle, evaluate)
    after = evaluate_default(vocabulary, vectors) if evaluate else None
    report.stage("writing", 1.0)
    stats = {
        "config": {
            **config.to_dict(),
            "lr": run_config.start_lr,
            "seed": run_config.seed,
        },
        "upload": {**corpus.manifest(), "raw_tokens": corpus.num_raw_tokens},
        "new_words": len(new_words),
        "new_words_sample": new_words[:NEW_WORDS_SAMPLE],
        "new_words_from_contexts": from_contexts,
        "vocab_size_before": len(base_bundle.vocabulary),
        "training_seconds": training["seconds"],
        "words_per_second": training["words_per_second"],
        "seconds": round(time.perf_counter() - started, 3),
    }
    manifest = {
        "source": "finetuned",
        "base_version": base_bundle.version,
        "config": base_config.to_dict(),
        "corpus": base_bundle.manifest.get("corpus"),
        "training": training,
        "finetune": stats,
        "evaluation": after,
        "evaluation_before": before,
        "counts_estimated": bool(base_bundle.manifest.get("counts_estimated", False)),
    }
    if version is not None:
        manifest["version"] = version
    bundle_path = write_bundle(
        output_dir,
        vocabulary=vocabulary,
        vectors=vectors,
        manifest=manifest,
        training_state=_next_state(params, state, run.raw_words, len(run.epoch_losses)),
    )
    logger.info(
        "fine-tuned %s into %s in %.1f s",
        base_bundle.path,
        bundle_path,
        stats["seconds"],
    )
    return FinetuneResult(bundle_path, new_words, before, after, stats)


def count_upload(paths: CorpusPaths, lowercase: bool) -> Counter[str]:
    """Return the token counts of the text at `paths`, tokenised as training
    does. Raises CorpusError when it holds no words."""
    reader = CorpusReader(paths)
    counts: Counter[str] = Counter()
    for tokens in split_sentences(reader, lowercase, _MAX_SENTENCE_LENGTH):
        counts.update(tokens)
    if not counts:
        raise CorpusError(
            f"the upload holds no words ({len(reader.files)} file(s), "
            f"{reader.total_bytes} bytes); send a text file with words in it"
        )
    return counts


def merged_params(
    base: Bundle, state: TrainingState, vocabulary: Vocabulary, seed: int
) -> ModelParams:
    """Return the base bundle's parameters laid out for `vocabulary` (a merge
    of the base's): known words keep their rows, new words get fresh input
    rows (the mean of their n-gram rows with subwords) and zero output rows.
    `finetune` then moves new words' input rows to where their contexts in
    the upload point (start_new_words_from_contexts).
    """
    old_ids = np.array(
        [base.vocabulary.word_to_id.get(w, -1) for w in vocabulary.words],
        dtype=np.int64,
    )
    known = old_ids >= 0
    table = _subword_table(state, vocabulary)
    input_vectors = np.empty((len(vocabulary), base.dim), dtype=np.float32)
    input_vectors[known] = base.vectors[old_ids[known]]
    output_vectors = np.zeros_like(input_vectors)
    output_vectors[known] = state.output_vectors[old_ids[known]]
    fresh = init_params(int((~known).sum()), base.dim, None, seed).input_vectors
    input_vectors[~known] = fresh
    if table is not None and state.subword_vectors is not None:
        _own_rows_from_composed(input_vectors, known, state.subword_vectors, table)
    return ModelParams(input_vectors, output_vectors, state.subword_vectors, table)


def start_new_words_from_contexts(
    params: ModelParams,
    vocabulary: Vocabulary,
    new_ids: np.ndarray,
    ids: np.ndarray,
    window: int,
    sample: float,
) -> int:
    """Set the input vectors of the words `new_ids` from the known words around
    them in the encoded upload `ids`; returns how many were set.

    With negative sampling, a word's input vector is pulled towards the output
    vectors of its context words and pushed from those of noise words, so from
    zero its first step points along (mean context output vector - noise-
    weighted mean output vector). A new word starts on that line, at the
    median norm of the most frequent known words: a rare word then needs only
    a few updates to settle, where a random start needs hundreds. Context
    words are weighted as the kernel reads them: by their chance of surviving
    subsampling and of falling inside the shrunk window. Other new words and
    words beyond a sentence end do not count; a new word with no known word
    near it keeps its random row. Shapes: `new_ids` (n,), `ids` as in
    EncodedCorpus.ids().
    """
    known = np.ones(len(vocabulary), dtype=bool)
    known[new_ids] = False
    weights = vocabulary.keep_probabilities(sample).astype(np.float64)
    weights[~known] = 0.0
    noise = vocabulary.noise_distribution()
    noise[~known] = 0.0
    # (dim,): the mean output vector of the noise words.
    noise_mean = (noise / noise.sum()) @ params.output_vectors
    sums, totals = context_sums(ids, new_ids, params.output_vectors, window, weights)
    started = totals > 0
    # (started, dim)
    estimate = sums[started] / totals[started, None] - noise_mean
    estimate *= _typical_norm(params.input_vectors, known) / np.maximum(
        np.linalg.norm(estimate, axis=1, keepdims=True), 1e-12
    )
    params.input_vectors[new_ids[started]] = estimate
    return int(started.sum())


def context_sums(
    ids: np.ndarray,
    targets: np.ndarray,
    vectors: np.ndarray,
    window: int,
    weights: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Return, for each word in `targets`, the weighted sum of `vectors` over
    the words within `window` of its occurrences in `ids`, and the summed
    weights: shapes (len(targets), dim) and (len(targets),), float64.

    A context word counts `weights[word]` times the chance, 1 - (d - 1) /
    window, that the kernel's shrunk window (uniform in 1..window) reaches d
    places; words past a sentence end (-1 in `ids`) do not count.
    """
    slot = np.full(len(weights), -1, dtype=np.int64)
    slot[targets] = np.arange(len(targets))
    # Full-length temporaries are int32 or bool: an upload's ids can run to
    # tens of millions.
    is_target = slot >= 0
    positions = np.flatnonzero(is_target[np.maximum(ids, 0)] & (ids >= 0))
    ends = np.flatnonzero(ids < 0)
    sentence = np.searchsorted(ends, positions)
    rows, columns, values = [], [], []
    for offset in [*range(-window, 0), *range(1, window + 1)]:
        other = positions + offset
        inside = (other >= 0) & (other < len(ids))
        centre, other = positions[inside], other[inside]
        word = ids[other].astype(np.int64)
        same = (word >= 0) & (np.searchsorted(ends, other) == sentence[inside])
        reach = (window - abs(offset) + 1) / window
        rows.append(slot[ids[centre[same]]])
        columns.append(word[same])
        values.append(weights[word[same]] * reach)
    # (len(targets), vocab_size), one entry per (target, context word) pair.
    matrix = scipy.sparse.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
        shape=(len(targets), len(weights)),
    )
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    return np.asarray(matrix @ vectors), totals


def _typical_norm(vectors: np.ndarray, known: np.ndarray) -> float:
    """Median norm of the most frequent known words' rows (ids are sorted by
    count); rare words' rows stay short, far from where training takes a
    word seen often enough to be placed."""
    rows = np.flatnonzero(known)[:_NORM_REFERENCE_WORDS]
    return float(np.median(np.linalg.norm(vectors[rows], axis=1)))


def _start_from_contexts(
    params: ModelParams,
    vocabulary: Vocabulary,
    new_words: list[str],
    corpus: EncodedCorpus,
    config: TrainConfig,
) -> int:
    # TODO: with subwords, new words keep their n-gram start: the context
    # estimate would have to be split between the own row and the shared
    # n-gram rows; measure on a subword model and blend the two starts.
    if not new_words or params.subwords is not None:
        return 0
    lookup = vocabulary.word_to_id
    new_ids = np.array([lookup[w] for w in new_words], dtype=np.int64)
    started = start_new_words_from_contexts(
        params, vocabulary, new_ids, corpus.ids(), config.window, config.sample
    )
    logger.info("%d of %d new words start from their contexts", started, len(new_ids))
    return started


def _own_rows_from_composed(
    input_vectors: np.ndarray,
    known: np.ndarray,
    subword_vectors: np.ndarray,
    table: SubwordTable,
) -> None:
    """Turn `input_vectors` from bundle vectors into the rows the kernel trains.

    With subwords a bundle stores each word's composed vector, the mean of
    its own row and its n n-gram rows, (own + S) / (1 + n); the own row is
    therefore (1 + n) * (composed - S / (1 + n)). A new word's own row is set
    to the mean of its n-gram rows, S / n, so it starts where its n-grams put
    it; one without n-grams keeps its random row.
    """
    ngrams = np.diff(table.offsets).astype(np.float32)[:, None]
    # compose_word_vectors of zero own rows is S / (1 + n).
    share = compose_word_vectors(np.zeros_like(input_vectors), subword_vectors, table)
    input_vectors[known] = (1 + ngrams[known]) * (input_vectors[known] - share[known])
    new_with_ngrams = ~known & (ngrams[:, 0] > 0)
    input_vectors[new_with_ngrams] = (
        share[new_with_ngrams] * (1 + ngrams[new_with_ngrams]) / ngrams[new_with_ngrams]
    )


def _subword_table(state: TrainingState, vocabulary: Vocabulary) -> SubwordTable | None:
    settings = state.state.get("subwords")
    if not settings:
        return None
    return build_subword_table(
        vocabulary, settings["min_n"], settings["max_n"], settings["buckets"]
    )


def _training_state_of(bundle: Bundle) -> TrainingState:
    state = bundle.load_training_state()
    if state is None:
        source = bundle.manifest.get("source", "unknown")
        raise BundleError(
            f"{bundle.path} has no training state (source: {source}), so it "
            "cannot be fine-tuned: imported vectors lack the output vectors "
            "training continues from; fine-tune a bundle made by `wordvec train`"
        )
    return state


def _train_config_of(bundle: Bundle) -> TrainConfig:
    values = bundle.manifest.get("config")
    if not isinstance(values, dict):
        raise BundleError(
            f"{bundle.path} records no training config in its manifest; "
            "fine-tune a bundle made by `wordvec train`"
        )
    return TrainConfig.from_dict(values)


def _run_config(
    base: TrainConfig, state: TrainingState, config: FinetuneConfig
) -> TrainConfig:
    """Return the base run's settings with the fine-tune's schedule."""
    base_lr = float(state.state.get("lr", base.start_lr))
    lr = config.lr if config.lr is not None else base_lr * LR_FRACTION
    run_config = dataclasses.replace(
        base,
        epochs=config.epochs,
        lr=lr,
        min_lr=min(base.min_lr, lr),
        threads=config.threads,
        # A fine-tune runs in one process whatever the base run used.
        processes=1,
        seed=base.seed if config.seed is None else config.seed,
        device=config.device,  # type: ignore[arg-type]
        # The kernel follows the device (the base may have run elsewhere).
        backend="auto",
    )
    run_config.validate()
    return run_config


def _check_trainable(
    counts: Counter[str], vocabulary: Vocabulary, min_count: int
) -> None:
    if not any(word in vocabulary for word in counts):
        raise CorpusError(
            f"none of the {len(counts)} distinct words of the upload is in the "
            f"vocabulary or occurs {min_count} times; send more text in the "
            "model's language, or lower min_count"
        )


def _evaluation_before(base: Bundle, evaluate: bool) -> dict[str, Any] | None:
    recorded = base.manifest.get("evaluation")
    if recorded is not None or not evaluate:
        return recorded if isinstance(recorded, dict) else None
    return evaluate_default(base.vocabulary, base.vectors)


def _next_state(
    params: ModelParams, state: TrainingState, words: int, epochs: int
) -> TrainingState:
    """Return the state that lets the new bundle be fine-tuned again; the
    base run's lr and seed stay, so defaults do not shrink with each round."""
    values = dict(state.state)
    values["epochs_done"] = int(values.get("epochs_done", 0)) + epochs
    values["words_processed"] = int(values.get("words_processed", 0)) + words
    values["finetunes"] = int(values.get("finetunes", 0)) + 1
    return TrainingState(params.output_vectors, params.subword_vectors, values)


class _Reporter:
    """Turns trainer progress into FinetuneProgress calls and stop checks."""

    def __init__(
        self, on_progress: ProgressCallback | None, should_stop: StopCheck | None
    ):
        self._on_progress = on_progress
        self._should_stop = should_stop

    def check(self, stage: str) -> None:
        if self._should_stop is not None and self._should_stop():
            logger.info("fine-tune stopped on request while %s", stage)
            raise FinetuneCancelled(
                f"the fine-tune was stopped while {stage}; no bundle was written"
            )

    def stage(self, stage: str, fraction: float) -> None:
        self.check(stage)
        if self._on_progress is not None:
            self._on_progress(FinetuneProgress(stage, fraction))

    def training(self, epoch: EpochProgress) -> None:
        rate = epoch.words_done / max(epoch.seconds, 1e-9)
        remaining = epoch.words_total - epoch.words_done
        if self._on_progress is not None:
            self._on_progress(
                FinetuneProgress(
                    stage="training",
                    fraction=epoch.words_done / max(epoch.words_total, 1),
                    words_per_second=rate,
                    eta_seconds=remaining / rate if rate > 0 else None,
                    loss=epoch.loss,
                    epoch=epoch.epoch + 1,
                    epochs=epoch.epochs,
                )
            )
        self.check("training")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
