"""Both training kernels on a tiny topical corpus: they learn its structure,
subsample and draw noise words at the documented rates, respect the window
and are repeatable with one thread."""

import numpy as np
import pytest
import torch

from tests.conftest import TOPICS, write_tiny_corpus
from training import kernels
from training.config import TrainConfig
from training.encode import EncodedCorpus, encode_corpus
from training.errors import ConfigError
from training.kernels import Kernel, ModelParams, init_params, make_kernel
from training.subwords import build_subword_table
from training.torch_kernel import TorchKernel, context_positions

BACKENDS = [
    pytest.param(
        "native",
        marks=pytest.mark.skipif(
            not kernels.native_available(), reason="training._native is not built"
        ),
    ),
    "torch",
]
ARCHITECTURES = ["skip-gram", "cbow"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> EncodedCorpus:
    tmp = tmp_path_factory.mktemp("kernels")
    path = write_tiny_corpus(tmp / "corpus.txt", num_sentences=600)
    return encode_corpus([path], tmp / "encoded", min_count=2)


def config_for(backend: str, architecture: str, **overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "architecture": architecture,
        "backend": backend,
        "dim": 24,
        "window": 3,
        "negative": 5,
        "sample": 0.0,
        "lr": 0.05,
        "seed": 7,
        "batch_size": 256,
    }
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def build(
    corpus: EncodedCorpus, config: TrainConfig, threads: int = 1
) -> tuple[Kernel, ModelParams]:
    table = None
    if config.subwords:
        table = build_subword_table(corpus.vocabulary, 3, 4, 1000)
    params = init_params(len(corpus.vocabulary), config.dim, table, config.seed)
    return make_kernel(config, corpus.vocabulary, params, "cpu", threads), params


def train_epochs(kernel: Kernel, ids: np.ndarray, epochs: int) -> list[float]:
    """Train with lr decaying from 0.05 to 0.001; return each epoch's mean loss."""
    losses = []
    for epoch in range(epochs):
        lr_a = 0.05 - 0.049 * epoch / epochs
        lr_b = 0.05 - 0.049 * (epoch + 1) / epochs
        stats = kernel.train_chunk(ids, lr_a, lr_b)
        losses.append(stats.loss_sum / stats.loss_count)
    kernel.finish()
    return losses


def topic_separation(corpus: EncodedCorpus, vectors: np.ndarray) -> float:
    """Mean cosine of same-topic word pairs minus that of cross-topic pairs."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    lookup = corpus.vocabulary.word_to_id
    topic_ids = [[lookup[w] for w in words] for words in TOPICS.values()]
    same, other = [], []
    for t, ids in enumerate(topic_ids):
        block = unit[ids] @ unit[ids].T
        same.append(block[np.triu_indices(len(ids), 1)].mean())
        for other_ids in topic_ids[t + 1 :]:
            other.append((unit[ids] @ unit[other_ids].T).mean())
    return float(np.mean(same) - np.mean(other))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_kernel_puts_same_topic_words_closer_than_other_topics(
    corpus: EncodedCorpus, backend: str, architecture: str
) -> None:
    kernel, params = build(corpus, config_for(backend, architecture))
    train_epochs(kernel, np.asarray(corpus.ids()), epochs=15)
    assert topic_separation(corpus, params.word_vectors()) > 0.2


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_kernel_loss_decreases_during_training(
    corpus: EncodedCorpus, backend: str, architecture: str
) -> None:
    kernel, _ = build(corpus, config_for(backend, architecture))
    losses = train_epochs(kernel, np.asarray(corpus.ids()), epochs=6)
    assert losses[-1] < 0.9 * losses[0]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_kernel_with_subwords_trains_word_and_ngram_rows(
    corpus: EncodedCorpus, backend: str, architecture: str
) -> None:
    kernel, params = build(corpus, config_for(backend, architecture, subwords=True))
    assert params.subword_vectors is not None
    before = params.subword_vectors.copy()
    losses = train_epochs(kernel, np.asarray(corpus.ids()), epochs=6)
    assert losses[-1] < losses[0]
    assert not np.allclose(before, params.subword_vectors)
    assert topic_separation(corpus, params.word_vectors()) > 0.1


@pytest.mark.skipif(not kernels.native_available(), reason="not built")
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_native_kernel_with_one_thread_and_a_seed_is_repeatable(
    corpus: EncodedCorpus, architecture: str
) -> None:
    runs = []
    for _ in range(2):
        kernel, params = build(corpus, config_for("native", architecture, sample=1e-2))
        train_epochs(kernel, np.asarray(corpus.ids()), epochs=2)
        runs.append(params.input_vectors.copy())
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.skipif(not kernels.native_available(), reason="not built")
def test_native_kernel_with_two_threads_still_learns(corpus: EncodedCorpus) -> None:
    kernel, params = build(corpus, config_for("native", "skip-gram"), threads=2)
    ids = np.tile(np.asarray(corpus.ids()), 4)  # several blocks to share out
    train_epochs(kernel, ids, epochs=4)
    assert topic_separation(corpus, params.word_vectors()) > 0.2


@pytest.mark.parametrize("backend", BACKENDS)
def test_subsampling_keeps_the_expected_share_of_tokens(
    corpus: EncodedCorpus, backend: str
) -> None:
    sample = 1e-3
    kernel, _ = build(corpus, config_for(backend, "cbow", sample=sample))
    ids = np.tile(np.asarray(corpus.ids()), 10)
    stats = kernel.train_chunk(ids, 0.0, 0.0)
    counts = np.bincount(ids[ids >= 0], minlength=len(corpus.vocabulary))
    keep = corpus.vocabulary.keep_probabilities(sample)
    expected = float((counts * keep).sum() / counts.sum())
    assert stats.raw_words == counts.sum()
    assert expected < 0.8  # the setting really drops frequent words
    assert stats.trained_words / stats.raw_words == pytest.approx(expected, abs=0.01)


def noise_frequencies_match(draws: np.ndarray, corpus: EncodedCorpus) -> None:
    """Assert a chi-square statistic within 5 standard deviations of its mean."""
    expected = corpus.vocabulary.noise_distribution(0.75) * len(draws)
    observed = np.bincount(draws, minlength=len(expected))
    chi_square = float(((observed - expected) ** 2 / expected).sum())
    dof = len(expected) - 1
    assert abs(chi_square - dof) < 5 * np.sqrt(2 * dof)


@pytest.mark.skipif(not kernels.native_available(), reason="not built")
def test_native_noise_words_follow_unigram_counts_to_the_three_quarters(
    corpus: EncodedCorpus,
) -> None:
    kernel, _ = build(corpus, config_for("native", "skip-gram"))
    assert isinstance(kernel, kernels.NativeKernel)
    noise_frequencies_match(kernel.sample_noise(200_000, seed=3), corpus)


def test_torch_noise_words_follow_unigram_counts_to_the_three_quarters(
    corpus: EncodedCorpus,
) -> None:
    kernel, _ = build(corpus, config_for("torch", "skip-gram"))
    assert isinstance(kernel, TorchKernel)
    noise_frequencies_match(kernel.sample_noise((200_000,)).numpy(), corpus)


def test_context_positions_stay_inside_the_window_and_the_sentence() -> None:
    window = 4
    tokens = torch.tensor([3, 1, 4, 1, 5, -1, 9, 2, 6, 5, 3, 5, 8, 9, 7, -1, 9, 3])
    tokens = tokens.repeat(200)
    sentence = torch.cumsum(tokens < 0, 0)
    generator = torch.Generator().manual_seed(0)
    positions, valid = context_positions(tokens, window, generator)
    centre, slot = valid.nonzero(as_tuple=True)
    context = positions[centre, slot]
    distance = (context - centre).abs()
    assert distance.min() >= 1 and distance.max() <= window
    assert bool((sentence[context] == sentence[centre]).all())
    assert bool((tokens[context] >= 0).all() and (tokens[centre] >= 0).all())
    # Each centre's reach is drawn from 1..window, so every distance occurs.
    assert set(distance.tolist()) == set(range(1, window + 1))


def test_backend_native_without_the_extension_is_a_config_error(
    corpus: EncodedCorpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kernels, "_native", None)
    with pytest.raises(ConfigError, match="pip install"):
        build(corpus, config_for("native", "skip-gram"))
    kernel, _ = build(corpus, config_for("auto", "skip-gram"))
    assert kernel.name == "torch"


def test_native_backend_on_cuda_is_a_config_error(corpus: EncodedCorpus) -> None:
    config = config_for("native", "skip-gram")
    params = init_params(len(corpus.vocabulary), config.dim, None, 1)
    with pytest.raises(ConfigError, match="CPU only"):
        make_kernel(config, corpus.vocabulary, params, "cuda", 1)
