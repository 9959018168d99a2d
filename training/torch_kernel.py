"""The pure-PyTorch kernel: the same skip-gram and CBOW updates as the native
kernel, but vectorised over a whole chunk and applied in batches of
`config.batch_size` examples with analytic gradients and `index_add_`. It runs
on any device; on CPU it is the fallback when the C++ extension is not built.

Differences from the native kernel, all standard for batched word2vec: the
examples of one batch are computed from the same parameter values, a row that
occurs several times in a batch gets the sum of its gradients, and the
examples of a batch share their noise words (see `SHARED_NOISE_WORDS`).
"""

import logging
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from training.config import TrainConfig
from training.kernels import NOISE_POWER, ChunkStats, ModelParams
from training.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

# Noise words drawn once per batch and shared by all its examples, so the
# negative-sample scores are one dense (B, D) x (D, S) product instead of a
# gather and scatter of B * negative rows.
SHARED_NOISE_WORDS = 64
# TODO: on this project's 2-core CPU the kernel trains about 30k words/s (a
# tenth of gensim) and its scores against the native kernel's are measured on
# tiny corpora only; it exists for CUDA, where neither has been measured. Run
# benchmarks/train_vs_gensim.py --backend torch on a GPU machine and tune
# batch_size and SHARED_NOISE_WORDS there.


def window_offsets(window: int, device: torch.device) -> torch.Tensor:
    """Return the context offsets -window..-1, 1..window, int64 (2 * window,)."""
    left = torch.arange(-window, 0, device=device)
    return torch.cat([left, -left.flip(0)])


def context_positions(
    tokens: torch.Tensor, window: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the context positions of every position of `tokens` and a mask
    of the valid ones, both (N, 2 * window).

    `tokens` is int64 (N,) with -1 ending sentences. Each centre word draws
    its reach uniformly from 1..window (the shrunk window of word2vec); a
    context position is valid when it is within the reach, inside the chunk,
    in the same sentence, and neither it nor the centre is a sentence end.
    """
    n = tokens.shape[0]
    device = tokens.device
    offsets = window_offsets(window, device)
    reach = torch.randint(1, window + 1, (n, 1), generator=generator, device=device)
    centre = torch.arange(n, device=device)[:, None]
    positions = centre + offsets
    inside = (positions >= 0) & (positions < n) & (offsets.abs() <= reach)
    positions = positions.clamp(0, n - 1)
    sentence = torch.cumsum(tokens < 0, dim=0)
    is_word = tokens >= 0
    valid = inside & is_word[positions] & is_word[:, None]
    valid &= sentence[positions] == sentence[:, None]
    return positions, valid


class TorchKernel:
    """Skip-gram or CBOW on `device` with batched analytic gradients."""

    name = "torch"

    def __init__(
        self,
        config: TrainConfig,
        vocabulary: Vocabulary,
        params: ModelParams,
        device: str,
        threads: int,
    ) -> None:
        self.params = params
        self.device = torch.device(device)
        if self.device.type == "cpu":
            torch.set_num_threads(threads)
        # On the CPU these share memory with the arrays; elsewhere they are
        # copies that `finish` writes back.
        self.input_vectors = torch.from_numpy(params.input_vectors).to(self.device)
        self.output_vectors = torch.from_numpy(params.output_vectors).to(self.device)
        self.subword_vectors = (
            torch.from_numpy(params.subword_vectors).to(self.device)
            if params.subword_vectors is not None
            else None
        )
        self.skip_gram = config.architecture == "skip-gram"
        self.window = config.window
        self.negative = config.negative
        self.batch_size = config.batch_size
        self.shared_noise = max(config.negative, SHARED_NOISE_WORDS)
        self.keep = torch.from_numpy(vocabulary.keep_probabilities(config.sample))
        self.keep = self.keep.to(self.device)
        noise = torch.from_numpy(vocabulary.noise_distribution(NOISE_POWER))
        self.noise_cdf = torch.cumsum(noise, 0).float().to(self.device)
        self.generator = torch.Generator(self.device).manual_seed(config.seed)
        table = params.subwords
        self.offsets = (
            torch.from_numpy(table.offsets).to(self.device) if table else None
        )
        self.rows = (
            torch.from_numpy(table.rows).long().to(self.device) if table else None
        )

    def sample_noise(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Return token ids drawn from the noise distribution, int64 `shape`."""
        u = torch.rand(shape, generator=self.generator, device=self.device)
        ids = torch.searchsorted(self.noise_cdf, u, right=True)
        return ids.clamp_(max=self.noise_cdf.shape[0] - 1)

    def subsample(self, tokens: torch.Tensor) -> torch.Tensor:
        """Return `tokens` without the occurrences dropped by frequent-word
        subsampling (Mikolov et al. 2013, section 2.3); sentence ends stay."""
        u = torch.rand(tokens.shape, generator=self.generator, device=self.device)
        keep = (tokens < 0) | (u < self.keep[tokens.clamp(min=0)])
        return tokens[keep]

    def finish(self) -> None:
        """Copy device parameters back into the host arrays (no-op on CPU)."""
        if self.device.type == "cpu":
            return
        self.params.input_vectors[...] = self.input_vectors.cpu().numpy()
        self.params.output_vectors[...] = self.output_vectors.cpu().numpy()
        if self.subword_vectors is not None and self.params.subword_vectors is not None:
            self.params.subword_vectors[...] = self.subword_vectors.cpu().numpy()

    @torch.no_grad()
    def train_chunk(
        self, token_ids: np.ndarray, lr_start: float, lr_end: float
    ) -> ChunkStats:
        """See `training.kernels.Kernel.train_chunk`."""
        tokens = torch.from_numpy(token_ids.astype(np.int64)).to(self.device)
        raw_words = int((tokens >= 0).sum())
        tokens = self.subsample(tokens)
        lr = torch.linspace(lr_start, lr_end, tokens.shape[0], device=self.device)
        examples = self._examples(tokens)
        step: Callable[..., float] = (
            self._skip_gram_batch if self.skip_gram else self._cbow_batch
        )
        loss_sum = 0.0
        num_examples = examples[0].shape[0]
        for start in range(0, num_examples, self.batch_size):
            batch = [t[start : start + self.batch_size] for t in examples]
            loss_sum += step(tokens, lr, *batch)
        trained_words = int((tokens >= 0).sum())
        return ChunkStats(
            raw_words, trained_words, num_examples, loss_sum, num_examples
        )

    def _examples(self, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return the chunk's examples in corpus order: (centre position,
        context word) pairs for skip-gram; (centre position, context
        positions (M, 2 * window), valid mask) for CBOW."""
        positions, valid = context_positions(tokens, self.window, self.generator)
        if self.skip_gram:
            centre, slot = valid.nonzero(as_tuple=True)
            return centre, tokens[positions[centre, slot]]
        centre = valid.any(dim=1).nonzero(as_tuple=True)[0]
        return centre, positions[centre], valid[centre]

    def _skip_gram_batch(
        self,
        tokens: torch.Tensor,
        lr: torch.Tensor,
        centre: torch.Tensor,
        context_word: torch.Tensor,
    ) -> float:
        words = tokens[centre]
        h = self._compose(words)  # (B, D)
        grad_h, loss = self._train_targets(h, context_word, lr[centre])
        self._apply_to_words(words, grad_h)
        return loss

    def _cbow_batch(
        self,
        tokens: torch.Tensor,
        lr: torch.Tensor,
        centre: torch.Tensor,
        positions: torch.Tensor,
        valid: torch.Tensor,
    ) -> float:
        B = positions.shape[0]
        owner, slot = valid.nonzero(as_tuple=True)
        context_words = tokens[positions[owner, slot]]
        sums, counts = self._word_sums(context_words)  # (M, D), (M,)
        h = torch.zeros(B, self.input_vectors.shape[1], device=self.device)
        h.index_add_(0, owner, sums)
        rows = torch.zeros(B, device=self.device).index_add_(0, owner, counts)
        h /= rows[:, None]
        grad_h, loss = self._train_targets(h, tokens[centre], lr[centre])
        # Every context row gets the full gradient of the mean, as in word2vec.
        self._apply_to_words(context_words, grad_h[owner])
        return loss

    def _train_targets(
        self, h: torch.Tensor, target: torch.Tensor, lr: torch.Tensor
    ) -> tuple[torch.Tensor, float]:
        """SGD step on the output rows of `target` (label 1) and of the batch's
        shared noise words (label 0) for hidden vectors `h` (B, D); returns
        the gradient step for `h` (B, D) and the summed loss."""
        out = self.output_vectors
        noise = self.sample_noise((self.shared_noise,))  # (S,)
        # Each example meets all S noise words, each weighted negative / S, so
        # its expected gradient equals that of `negative` draws of its own.
        weight = self.negative / self.shared_noise
        # A noise draw equal to the target is skipped, as in word2vec.
        noise_mask = (noise[None, :] != target[:, None]).to(h.dtype)  # (B, S)
        u_pos = out[target]  # (B, D)
        u_neg = out[noise]  # (S, D)
        s_pos = (h * u_pos).sum(1)  # (B,)
        s_neg = h @ u_neg.T  # (B, S)
        g_pos = (1 - torch.sigmoid(s_pos)) * lr
        g_neg = torch.sigmoid(s_neg).mul_(noise_mask).mul_(-weight * lr[:, None])
        grad_h = torch.addmm(g_pos[:, None] * u_pos, g_neg, u_neg)
        out.index_add_(0, target, g_pos[:, None] * h)
        out.index_add_(0, noise, g_neg.T @ h)
        loss = (
            -F.logsigmoid(s_pos).sum()
            - weight * (F.logsigmoid(-s_neg) * noise_mask).sum()
        )
        return grad_h, float(loss)

    def _word_sums(self, words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the sum of each word's rows (own row plus n-gram rows),
        (M, D), and how many rows were summed, (M,) float."""
        sums = self.input_vectors[words].clone()
        counts = torch.ones(words.shape[0], device=self.device)
        if self.offsets is None:
            return sums, counts
        owner, rows = self._ngram_rows(words)
        sums.index_add_(0, owner, self.subword_vectors[rows])  # type: ignore[index]
        counts += torch.bincount(owner, minlength=words.shape[0])
        return sums, counts

    def _compose(self, words: torch.Tensor) -> torch.Tensor:
        sums, counts = self._word_sums(words)
        return sums / counts[:, None]

    def _apply_to_words(self, words: torch.Tensor, grad: torch.Tensor) -> None:
        """Add `grad` (M, D) to the own row and every n-gram row of `words`;
        fastText, too, gives each row the full gradient of the mean."""
        self.input_vectors.index_add_(0, words, grad)
        if self.offsets is None or self.subword_vectors is None:
            return
        owner, rows = self._ngram_rows(words)
        self.subword_vectors.index_add_(0, rows, grad[owner])

    def _ngram_rows(self, words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (owner, row): for each n-gram row of each word in `words`,
        the word's position in `words` and the subword row, both int64."""
        assert self.offsets is not None and self.rows is not None
        starts = self.offsets[words]
        counts = self.offsets[words + 1] - starts
        owner = torch.repeat_interleave(
            torch.arange(words.shape[0], device=self.device), counts
        )
        first = torch.cumsum(counts, 0) - counts
        within = torch.arange(owner.shape[0], device=self.device) - first[owner]
        return owner, self.rows[starts[owner] + within]
