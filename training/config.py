"""Training settings: one dataclass with the defaults, validated in one place
and written into every bundle's manifest."""

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from training.errors import ConfigError

Architecture = Literal["skip-gram", "cbow"]
Device = Literal["auto", "cpu", "cuda"]
Backend = Literal["auto", "native", "torch"]

# Tokens `wordvec train --dry-run` reads from the start of the corpus.
DRY_RUN_TOKENS = 100_000

# Starting learning rates when none is set: the word2vec C tool's defaults.
# CBOW's higher rate measured better on the default corpus for both wordvec
# and gensim (3 seeds each, BENCHMARKS.md): WordSim-353 0.416 -> 0.540,
# analogies 11.3% -> 17.0% for wordvec.
DEFAULT_LR: dict[str, float] = {"skip-gram": 0.025, "cbow": 0.05}


@dataclass
class TrainConfig:
    """Settings of one training run. Names follow word2vec and gensim."""

    architecture: Architecture = "skip-gram"
    dim: int = 100
    window: int = 5
    negative: int = 5
    min_count: int = 5
    max_vocab_size: int | None = None
    sample: float = 1e-3
    epochs: int = 5
    # Linear decay from `lr` to `min_lr` over all epochs, as in word2vec;
    # None takes the architecture's DEFAULT_LR (see `start_lr`).
    lr: float | None = None
    min_lr: float = 0.0001
    # 0: one per available core, shared among `processes`.
    threads: int = 0
    # Data-parallel training processes (training/distributed.py); under
    # torchrun the group's size.
    processes: int = 1
    # Tokens each process trains between two syncs of the vectors, at which
    # the ranks add up their changes (training/distributed.py).
    sync_every: int = 250_000
    seed: int = 1
    device: Device = "auto"
    backend: Backend = "auto"
    # Examples per SGD step of the PyTorch kernel (the native kernel updates
    # after every example).
    batch_size: int = 4096
    lowercase: bool = True
    # fastText-style character n-grams hashed into `buckets` extra rows.
    subwords: bool = False
    min_n: int = 3
    max_n: int = 6
    buckets: int = 200_000

    def validate(self) -> None:
        """Raise ConfigError naming the first setting out of its range."""
        checks = [
            (
                self.architecture in ("skip-gram", "cbow"),
                "architecture must be skip-gram or cbow",
            ),
            (self.dim >= 1, f"dim must be at least 1, got {self.dim}"),
            (self.window >= 1, f"window must be at least 1, got {self.window}"),
            (self.negative >= 1, f"negative must be at least 1, got {self.negative}"),
            (
                self.min_count >= 1,
                f"min_count must be at least 1, got {self.min_count}",
            ),
            (
                self.max_vocab_size is None or self.max_vocab_size >= 1,
                f"max_vocab_size must be at least 1, got {self.max_vocab_size}",
            ),
            (
                self.sample >= 0,
                f"sample must be 0 (off) or positive, got {self.sample}",
            ),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (0 < self.start_lr <= 1, f"lr must be in (0, 1], got {self.lr}"),
            (
                0 <= self.min_lr <= self.start_lr,
                f"min_lr must be in [0, lr], got {self.min_lr}",
            ),
            (
                self.threads >= 0,
                f"threads must be 0 (all cores) or more, got {self.threads}",
            ),
            (
                self.processes >= 1,
                f"processes must be at least 1, got {self.processes}",
            ),
            (
                self.sync_every >= 1000,
                f"sync_every must be at least 1000 tokens, got {self.sync_every}",
            ),
            (
                self.device in ("auto", "cpu", "cuda"),
                "device must be auto, cpu or cuda",
            ),
            (
                self.backend in ("auto", "native", "torch"),
                "backend must be auto, native or torch",
            ),
            (
                1 <= self.min_n <= self.max_n,
                f"need 1 <= min_n <= max_n, got {self.min_n}, {self.max_n}",
            ),
            (self.buckets >= 1, f"buckets must be at least 1, got {self.buckets}"),
            (
                self.batch_size >= 1,
                f"batch_size must be at least 1, got {self.batch_size}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def start_lr(self) -> float:
        """Return the starting learning rate: `lr`, or the architecture's
        default when `lr` is None."""
        if self.lr is not None:
            return self.lr
        return DEFAULT_LR.get(self.architecture, DEFAULT_LR["skip-gram"])

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a manifest records them, `lr` resolved."""
        return {**dataclasses.asdict(self), "lr": self.start_lr}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build a config from a manifest, ignoring keys this version lacks."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
