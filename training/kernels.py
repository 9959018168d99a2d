"""Training kernels: turn a chunk of token ids into SGD updates of the
vectors (skip-gram or CBOW with negative sampling, Mikolov et al. 2013).

Two kernels share one contract, `Kernel.train_chunk`:

- `NativeKernel` wraps the C++ extension `training._native`, built at install
  time: lock-free Hogwild threads (Recht et al. 2011) with the GIL released.
  The fast path on CPU.
- `TorchKernel` (training/torch_kernel.py) is pure PyTorch: examples built for
  a whole chunk at once and trained in batches with analytic gradients. It
  runs on CUDA, and on CPU when the extension is not built.

A chunk is a 1-D int32 array of token ids in corpus order, -1 ending each
sentence (see training/encode.py). The parameters are NumPy arrays that both
kernels update in place (the PyTorch kernel through `torch.from_numpy` on the
CPU, or on a device copy that `finish` writes back).

This module does not import torch: on the CPU with the native kernel a run
never loads it, which keeps a training process's resident memory at about
half of what importing torch alone costs (~190 MB).
"""

import logging
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from training.config import TrainConfig
from training.errors import ConfigError
from training.subwords import SubwordTable, compose_word_vectors
from training.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

# Exponent of the unigram counts in the noise distribution (Mikolov et al.
# 2013, section 2.2).
NOISE_POWER = 0.75

try:
    from training import _native  # type: ignore[attr-defined]
except ImportError:
    _native = None


@dataclass
class ChunkStats:
    """What one `train_chunk` call did. `raw_words` counts tokens before
    subsampling, `trained_words` after; `examples` counts (centre, context)
    pairs for skip-gram and centre words for CBOW; the mean loss per
    measured example is `loss_sum / loss_count`."""

    raw_words: int
    trained_words: int
    examples: int
    loss_sum: float
    loss_count: int


class Kernel(Protocol):
    """Trains the parameters it holds on chunks of the encoded corpus."""

    name: str

    def train_chunk(
        self, token_ids: np.ndarray, lr_start: float, lr_end: float
    ) -> ChunkStats:
        """Train on `token_ids` (int32, 1-D, -1 ends a sentence) with the
        learning rate decaying linearly from `lr_start` to `lr_end`."""
        ...

    def finish(self) -> None:
        """Make the arrays of the kernel's ModelParams hold the trained values."""
        ...


@dataclass
class ModelParams:
    """The trainable arrays, float32 and C-contiguous.

    `input_vectors` and `output_vectors` are (vocab_size, dim);
    `subword_vectors` is (buckets, dim) when `subwords` is set.
    """

    input_vectors: np.ndarray
    output_vectors: np.ndarray
    subword_vectors: np.ndarray | None = None
    subwords: SubwordTable | None = None

    @property
    def dim(self) -> int:
        return int(self.input_vectors.shape[1])

    def word_vectors(self) -> np.ndarray:
        """Return the word vectors as float32 (vocab_size, dim): the input
        vectors, or with subwords the mean of each word's row and n-gram rows."""
        if self.subwords is None or self.subword_vectors is None:
            return self.input_vectors
        return compose_word_vectors(
            self.input_vectors, self.subword_vectors, self.subwords
        )


def init_params(
    vocab_size: int, dim: int, subwords: SubwordTable | None, seed: int
) -> ModelParams:
    """Return freshly initialised parameters: input (and subword) vectors
    uniform in [-1/dim, 1/dim), output vectors zero.

    The word2vec C tool draws from [-0.5/dim, 0.5/dim); gensim's wider range
    scored higher on the default corpus (CBOW, two seeds each, for gensim and
    for this kernel: about +0.005 WordSim-353 and +0.5 analogy points).
    """
    rng = np.random.default_rng(seed)

    def uniform(rows: int) -> np.ndarray:
        values = rng.random((rows, dim), dtype=np.float32)
        values -= 0.5
        values *= 2.0 / dim
        return values

    return ModelParams(
        input_vectors=uniform(vocab_size),
        output_vectors=np.zeros((vocab_size, dim), dtype=np.float32),
        subword_vectors=uniform(subwords.buckets) if subwords else None,
        subwords=subwords,
    )


def native_available() -> bool:
    """Return whether the C++ extension `training._native` is built."""
    return _native is not None


class NativeKernel:
    """The C++ kernel; parameters must live on the CPU.

    With one thread and a fixed seed, runs are bit-for-bit repeatable. With
    several threads the Hogwild updates race (a row read by one thread while
    another writes it), so runs differ slightly, as in word2vec and gensim.
    """

    name = "native"

    def __init__(
        self,
        config: TrainConfig,
        vocabulary: Vocabulary,
        params: ModelParams,
        threads: int,
    ) -> None:
        if _native is None:
            raise ConfigError(_NOT_BUILT)
        table = params.subwords
        subword_vectors = params.subword_vectors
        # The extension keeps pointers into these arrays, and references to
        # them so they outlive it.
        self._impl = _native.Word2VecKernel(
            input_vectors=params.input_vectors,
            output_vectors=params.output_vectors,
            subword_vectors=(
                subword_vectors
                if subword_vectors is not None
                else np.zeros((0, params.dim), dtype=np.float32)
            ),
            subword_offsets=table.offsets if table else np.zeros(1, dtype=np.int64),
            subword_rows=table.rows if table else np.zeros(0, dtype=np.int32),
            keep_probabilities=vocabulary.keep_probabilities(config.sample),
            noise_distribution=vocabulary.noise_distribution(NOISE_POWER),
            skip_gram=config.architecture == "skip-gram",
            window=config.window,
            negative=config.negative,
            threads=threads,
            seed=config.seed,
        )

    def train_chunk(
        self, token_ids: np.ndarray, lr_start: float, lr_end: float
    ) -> ChunkStats:
        """See `Kernel.train_chunk`."""
        ids = np.ascontiguousarray(token_ids, dtype=np.int32)
        return ChunkStats(*self._impl.train_chunk(ids, lr_start, lr_end))

    def finish(self) -> None:
        """Nothing to do: the kernel trains the arrays in place."""

    def sample_noise(self, n: int, seed: int) -> np.ndarray:
        """Return `n` token ids drawn from the kernel's noise distribution."""
        return np.asarray(self._impl.sample_noise(n, seed), dtype=np.int64)


_NOT_BUILT = (
    "backend 'native' was asked for but the C++ kernel training._native is not "
    "built; build it with `pip install --no-build-isolation -e .` (needs a C++ "
    "compiler) or use backend 'auto' or 'torch'"
)


def make_kernel(
    config: TrainConfig,
    vocabulary: Vocabulary,
    params: ModelParams,
    device: str,
    threads: int,
) -> Kernel:
    """Return the kernel for `config.backend` on `device`: native when it is
    built and the device is the CPU (or when asked for), PyTorch otherwise.

    Raises ConfigError when backend is "native" but the extension is not
    built or the device is not the CPU.
    """
    use_native = config.backend == "native" or (
        config.backend == "auto" and native_available() and device == "cpu"
    )
    if use_native and device != "cpu":
        raise ConfigError(
            f"backend 'native' runs on the CPU only, but device is {device}; "
            "use device 'cpu' or backend 'torch'"
        )
    kernel: Kernel
    if use_native:
        kernel = NativeKernel(config, vocabulary, params, threads)
    else:
        # Imported here so that runs on the native kernel never load torch.
        from training.torch_kernel import TorchKernel

        kernel = TorchKernel(config, vocabulary, params, device, threads)
    logger.info("training kernel: %s on %s (%d threads)", kernel.name, device, threads)
    return kernel
