"""The trainer: encode a corpus, train vectors with a kernel, evaluate them and
write a model bundle.

`train` is the whole run. `train_epochs` is the loop alone: it takes the
parameters to start from, so a fine-tune can continue from a bundle's
training state instead of fresh vectors.
"""

import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from training.bundle import TrainingState, check_bundle_output, write_bundle
from training.config import TrainConfig
from training.corpus import CorpusPaths
from training.encode import EncodedCorpus, encode_corpus
from training.errors import ConfigError
from training.evaluate import evaluate_default
from training.kernels import NOISE_POWER, Kernel, ModelParams, init_params, make_kernel
from training.subwords import build_subword_table
from training.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

# Tokens per kernel call: large enough that Python's share of the time is
# negligible, small enough for a smooth progress bar.
CHUNK_TOKENS = 1 << 20
MEMINFO = Path("/proc/meminfo")
CGROUP_MEMORY = Path("/sys/fs/cgroup")


@dataclass
class TrainResult:
    """What `train` produced: the bundle, run statistics and scores.

    Under torchrun only rank 0 writes the bundle; the other ranks return
    their `rank` with the same path and statistics and no scores.
    """

    bundle_path: Path
    stats: dict[str, Any]
    scores: dict[str, Any] | None
    rank: int = 0


@dataclass
class EpochRun:
    """Totals of a `train_epochs` call."""

    seconds: float = 0.0
    raw_words: int = 0
    trained_words: int = 0
    examples: int = 0
    final_loss: float | None = None
    epoch_losses: list[float] = field(default_factory=list)


@dataclass
class EpochProgress:
    """Where a `train_epochs` call stands after a chunk. Word counts are
    in-vocabulary tokens before subsampling; `loss` is the mean loss of the
    current epoch so far (None before any measured example)."""

    epoch: int  # 0-based
    epochs: int
    words_done: int
    words_total: int
    seconds: float  # since the call started
    lr: float
    loss: float | None


def train(
    paths: CorpusPaths,
    config: TrainConfig,
    output_dir: Path,
    *,
    progress: bool = True,
    evaluate: bool = True,
) -> TrainResult:
    """Train vectors on the corpus at `paths` and write a bundle to `output_dir`.

    With `config.processes` above 1, or when started by torchrun, the run is
    data-parallel over several processes (training/distributed.py).

    Raises ConfigError for settings out of range (also `negative` not below
    the vocabulary size, vectors larger than the available memory, or an
    unavailable device or backend), CorpusError for an unusable corpus and
    BundleError when `output_dir` exists or cannot be created; the settings
    and `output_dir` are checked before the corpus is read.
    """
    config.validate()
    output_dir = Path(output_dir)
    check_bundle_output(output_dir)
    # The smallest vocabulary training accepts, to refuse a huge dim at once.
    check_parameter_memory(config, config.negative + 1)
    # Imported lazily like torch itself; the module does not import torch.
    from training import distributed

    if config.processes > 1 or distributed.launched_by_torchrun():
        return distributed.train_distributed(
            paths, config, output_dir, progress=progress, evaluate=evaluate
        )
    device = resolve_device(config.device)
    threads = resolve_threads(config.threads)
    started = time.perf_counter()
    with encoded_corpus(paths, config, output_dir, progress=progress) as (corpus, _):
        encode_seconds = time.perf_counter() - started
        params = new_params(config, corpus.vocabulary)
        kernel = make_kernel(config, corpus.vocabulary, params, device, threads)
        run = train_epochs(kernel, corpus.ids_path, config, progress=progress)
        kernel.finish()
    stats = run_stats(run, corpus, kernel, device, threads)
    stats["encode_seconds"] = round(encode_seconds, 3)
    return finish_training(
        output_dir, config, corpus, params, run, stats, started, evaluate=evaluate
    )


def finish_training(
    output_dir: Path,
    config: TrainConfig,
    corpus: EncodedCorpus,
    params: ModelParams,
    run: EpochRun,
    stats: dict[str, Any],
    started: float,
    *,
    evaluate: bool,
) -> TrainResult:
    """Evaluate the trained `params` (unless not `evaluate`) and write the
    bundle; returns what `train` returns. `started` is the run's
    `time.perf_counter()` at its start, for `total_seconds`.

    Raises BundleError when the bundle cannot be written.
    """
    stats["total_seconds"] = round(time.perf_counter() - started, 3)
    vectors = params.word_vectors()
    scores = evaluate_default(corpus.vocabulary, vectors) if evaluate else None
    bundle_path = write_bundle(
        output_dir,
        vocabulary=corpus.vocabulary,
        vectors=vectors,
        manifest=trained_manifest(config, corpus, stats, scores),
        training_state=training_state(params, config, run),
    )
    return TrainResult(bundle_path, stats, scores)


@contextmanager
def encoded_corpus(
    paths: CorpusPaths, config: TrainConfig, output_dir: Path, *, progress: bool
) -> Iterator[tuple[EncodedCorpus, Path]]:
    """Encode the corpus at `paths` into a temporary directory beside
    `output_dir` and yield (corpus, that directory); the directory and its
    ids file are removed on exit.

    Raises CorpusError for an unusable corpus and ConfigError when the
    vocabulary is too small for `config.negative` or its vectors too large
    for the available memory.
    """
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(
        prefix=".wordvec-encode-", dir=output_dir.parent
    ) as workdir:
        corpus = encode_corpus(
            paths,
            Path(workdir),
            min_count=config.min_count,
            max_vocab_size=config.max_vocab_size,
            lowercase=config.lowercase,
            progress=progress,
        )
        check_vocabulary_size(config, corpus.vocabulary)
        check_parameter_memory(config, len(corpus.vocabulary))
        yield corpus, Path(workdir)


def resolve_device(device: str) -> str:
    """Return "cpu" or "cuda" for a config value; "auto" picks CUDA when
    available. Raises ConfigError for "cuda" on a machine without it."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise ConfigError(
            "device 'cuda' was asked for but no GPU is available; use cpu"
        )
    return device


def cuda_available() -> bool:
    """Return whether torch can use a GPU. Without a GPU driver (NVIDIA or
    ROCm) the answer is no, and torch is not imported to find that out."""
    if sys.platform.startswith("linux") and not any(
        Path(p).exists() for p in ("/proc/driver/nvidia/version", "/dev/kfd")
    ):
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_threads(threads: int) -> int:
    """Return the worker thread count; 0 means one per available core."""
    if threads > 0:
        return threads
    available = getattr(os, "sched_getaffinity", None)
    return len(available(0)) if available else os.cpu_count() or 1


def check_vocabulary_size(config: TrainConfig, vocabulary: Vocabulary) -> None:
    """Raise ConfigError unless there are more words than negative samples."""
    if config.negative >= len(vocabulary):
        raise ConfigError(
            f"negative ({config.negative}) must be smaller than the vocabulary "
            f"({len(vocabulary)} words); lower --negative or --min-count, or use "
            "a larger corpus"
        )


def check_parameter_memory(config: TrainConfig, vocab_size: int) -> None:
    """Raise ConfigError when the parameter matrices of `vocab_size` words
    (input and output vectors, plus n-gram rows with subwords, float32)
    cannot fit in the memory available now; do nothing when that is unknown.

    Only the certainly impossible is refused: a run also needs memory for
    the corpus buffer and evaluation, so one that passes can still run out.
    """
    available = available_memory()
    rows = 2 * vocab_size + (config.buckets if config.subwords else 0)
    needed = rows * config.dim * 4
    if available is None or needed <= available:
        return
    raise ConfigError(
        f"the vectors of {vocab_size:,} words at --dim {config.dim} need "
        f"{_gib(needed)} of memory but {_gib(available)} is available; lower "
        "--dim, or shrink the vocabulary with --min-count or --max-vocab-size"
    )


def available_memory() -> int | None:
    """Return the bytes of memory a new allocation can get: the kernel's
    MemAvailable, lowered by a cgroup v2 limit (as in a container); None
    where neither can be read (not Linux)."""
    # TODO: a cgroup v1 limit (memory/memory.limit_in_bytes) is not read, so
    # on such hosts a container's limit can be above what this allows; read
    # it too if wordvec is deployed on cgroup v1.
    available = None
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = (CGROUP_MEMORY / "memory.max").read_text().strip()
        if limit != "max":
            used = int((CGROUP_MEMORY / "memory.current").read_text())
            # memory.current counts the page cache, which the kernel gives
            # back under pressure (encoding the corpus has just filled it);
            # its inactive part is as good as free.
            used -= _cgroup_inactive_file()
            left = max(int(limit) - used, 0)
            available = left if available is None else min(available, left)
    except (OSError, ValueError):
        pass
    return available


def _cgroup_inactive_file() -> int:
    """Return the cgroup's reclaimable page cache in bytes (0 if unknown)."""
    try:
        for line in (CGROUP_MEMORY / "memory.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "inactive_file":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _gib(size: int) -> str:
    return f"{size / (1 << 30):,.1f} GiB"


def new_params(config: TrainConfig, vocabulary: Vocabulary) -> ModelParams:
    """Return freshly initialised parameters for `vocabulary` (seeded)."""
    table = None
    if config.subwords:
        table = build_subword_table(
            vocabulary, config.min_n, config.max_n, config.buckets
        )
    return init_params(len(vocabulary), config.dim, table, config.seed)


def train_epochs(
    kernel: Kernel,
    ids_path: Path,
    config: TrainConfig,
    *,
    progress: bool = True,
    lr_start: float | None = None,
    on_chunk: Callable[[EpochProgress], None] | None = None,
    chunk_tokens: int = CHUNK_TOKENS,
) -> EpochRun:
    """Run `config.epochs` passes of `kernel` over the encoded corpus at
    `ids_path`; returns the totals. The learning rate decays linearly from
    `lr_start` (default `config.start_lr`) to `config.min_lr` over all epochs.

    `on_chunk` is called after every chunk of about `chunk_tokens` tokens;
    an exception it raises stops training and propagates (this is how a
    caller cancels a run).
    """
    lr_start = config.start_lr if lr_start is None else lr_start
    total = config.epochs * count_tokens(ids_path)
    run = EpochRun()
    done = 0
    started = time.perf_counter()
    bar = tqdm(
        total=total,
        unit="word",
        unit_scale=True,
        file=sys.stderr,
        disable=not progress,
        desc="training",
        smoothing=0.1,
    )
    with bar:
        for epoch in range(config.epochs):
            epoch_started = time.perf_counter()
            loss_sum, loss_count, epoch_words = 0.0, 0, 0
            for chunk in iter_chunks(ids_path, chunk_tokens):
                words = int(np.count_nonzero(chunk >= 0))
                lr_a = linear_lr(lr_start, config.min_lr, done, total)
                lr_b = linear_lr(lr_start, config.min_lr, done + words, total)
                stats = kernel.train_chunk(chunk, lr_a, lr_b)
                done += words
                epoch_words += stats.raw_words
                run.trained_words += stats.trained_words
                run.examples += stats.examples
                loss_sum += stats.loss_sum
                loss_count += stats.loss_count
                bar.update(words)
                bar.set_postfix(
                    lr=f"{lr_b:.5f}", loss=f"{loss_sum / max(loss_count, 1):.4f}"
                )
                if on_chunk is not None:
                    on_chunk(
                        EpochProgress(
                            epoch=epoch,
                            epochs=config.epochs,
                            words_done=done,
                            words_total=total,
                            seconds=time.perf_counter() - started,
                            lr=lr_b,
                            loss=loss_sum / loss_count if loss_count else None,
                        )
                    )
            seconds = time.perf_counter() - epoch_started
            log_epoch(
                run, epoch, config.epochs, loss_sum, loss_count, epoch_words, seconds
            )
            run.seconds += seconds
            run.raw_words += epoch_words
    return run


def linear_lr(lr_start: float, lr_end: float, done: int, total: int) -> float:
    """Return the learning rate after `done` of `total` words."""
    return lr_start - (lr_start - lr_end) * min(done / max(total, 1), 1.0)


def log_epoch(
    run: EpochRun,
    epoch: int,
    epochs: int,
    loss_sum: float,
    loss_count: int,
    words: int,
    seconds: float,
) -> None:
    """Record the epoch's mean loss in `run` and log it at INFO."""
    loss = loss_sum / loss_count if loss_count else float("nan")
    run.epoch_losses.append(loss)
    run.final_loss = loss
    logger.info(
        "epoch %d/%d: loss %.4f, %.0f words/s",
        epoch + 1,
        epochs,
        loss,
        words / max(seconds, 1e-9),
    )


def count_tokens(ids_path: Path) -> int:
    """Return how many in-vocabulary tokens (not sentence ends) the file holds."""
    return sum(int(np.count_nonzero(c >= 0)) for c in iter_chunks(ids_path, 1 << 22))


def iter_chunks(ids_path: Path, chunk_tokens: int) -> Iterator[np.ndarray]:
    """Yield int32 chunks of about `chunk_tokens` ids that end at a sentence end.

    The file is read into a buffer rather than memory-mapped: pages of a
    mapping count towards the process's resident memory until evicted.
    """
    carry = np.zeros(0, dtype=np.int32)
    with open(ids_path, "rb") as f:
        while True:
            block = np.fromfile(f, dtype=np.int32, count=chunk_tokens)
            if block.size == 0:
                break
            data = np.concatenate([carry, block]) if carry.size else block
            ends = np.flatnonzero(data < 0)
            if ends.size == 0:
                carry = data
                continue
            cut = int(ends[-1]) + 1
            yield data[:cut]
            carry = data[cut:]
    if carry.size:
        yield carry


def run_stats(
    run: EpochRun,
    corpus: EncodedCorpus,
    kernel: Kernel,
    device: str,
    threads: int,
) -> dict[str, Any]:
    """Return the manifest's `training` entry. Words per second counts raw
    corpus words (out-of-vocabulary ones too) over all epochs, as gensim does;
    `threads` is per process."""
    epochs = len(run.epoch_losses)
    return {
        "seconds": round(run.seconds, 3),
        "words_per_second": round(
            corpus.num_raw_tokens * epochs / max(run.seconds, 1e-9)
        ),
        "backend": kernel.name,
        "device": device,
        "processes": 1,
        "threads": threads,
        "final_loss": run.final_loss,
        "epoch_losses": run.epoch_losses,
        "trained_words": run.trained_words,
        "examples": run.examples,
    }


def trained_manifest(
    config: TrainConfig,
    corpus: EncodedCorpus,
    stats: dict[str, Any],
    scores: dict[str, Any] | None,
) -> dict[str, Any]:
    """Return the manifest keys a trained bundle sets."""
    return {
        "source": "trained",
        "config": config.to_dict(),
        "corpus": corpus.manifest(),
        "training": stats,
        "evaluation": scores,
        "counts_estimated": False,
    }


def training_state(
    params: ModelParams, config: TrainConfig, run: EpochRun
) -> TrainingState:
    """Return what a fine-tune needs to continue from these parameters."""
    return TrainingState(
        output_vectors=params.output_vectors,
        subword_vectors=params.subword_vectors,
        state={
            "epochs_done": len(run.epoch_losses),
            "words_processed": run.raw_words,
            "lr": config.start_lr,
            "min_lr": config.min_lr,
            "seed": config.seed,
            "noise_power": NOISE_POWER,
            "subwords": params.subwords.settings() if params.subwords else None,
        },
    )
