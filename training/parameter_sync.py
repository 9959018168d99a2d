"""Keeping the ranks' copies of the parameters equal during data-parallel
training (training/distributed.py): which tensors to sync, how their changes
are combined, and the error a rank raises when a collective fails.

torch is imported inside functions, as in training/distributed.py.
"""

import hashlib
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from training.errors import DistributedError, LostContact
from training.kernels import Kernel, ModelParams

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)


def lost_contact(rank: int, exc: BaseException) -> LostContact:
    """Return the error a rank raises when a collective fails: usually
    another process died or timed out."""
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return LostContact(
        f"training process {rank} lost contact with the others "
        f"({type(exc).__name__}: {first_line[:300]}); another process failed "
        "or stopped answering"
    )


def parameter_tensors(kernel: Kernel, params: ModelParams) -> list["torch.Tensor"]:
    """Return the tensors the kernel trains: its device tensors for the
    PyTorch kernel, views of the NumPy arrays for the native one (both train
    in place, so changing the tensors changes what the kernel sees)."""
    import torch

    from training.torch_kernel import TorchKernel

    if isinstance(kernel, TorchKernel):
        found = [kernel.input_vectors, kernel.output_vectors, kernel.subword_vectors]
        return [t for t in found if t is not None]
    arrays = [params.input_vectors, params.output_vectors, params.subword_vectors]
    return [torch.from_numpy(a) for a in arrays if a is not None]


class ParameterSync:
    """Keeps the ranks' copies of the parameters equal.

    At each sync every rank's changes since the last one are added up and
    applied to the parameters as they were then, as if the ranks had been
    Hogwild threads sharing one copy whose updates arrive late. Averaging
    the copies instead (local SGD) divides every update by the number of
    ranks: on the default corpus (CBOW, 2 processes, 500k tokens between
    syncs, one seed) it cost 0.11 WordSim-353 and 5.5 analogy points against
    one process, the sum 0.03 and 1.9 (docs/training.md). Costs one copy of
    each matrix (the parameters as of the last sync).
    """

    def __init__(self, tensors: list["torch.Tensor"]) -> None:
        self.tensors = tensors
        self.snapshots = [t.clone() for t in tensors]
        self.syncs = 0
        self.seconds = 0.0

    def start_from_rank_zero(self) -> None:
        """Give every rank rank 0's parameters."""
        import torch.distributed as dist

        for tensor, snapshot in zip(self.tensors, self.snapshots, strict=True):
            self._collective(dist.broadcast, tensor, 0)
            snapshot.copy_(tensor)

    def combine(self) -> None:
        """Apply the changes of every rank since the last call to every
        rank's parameters; all ranks must call it together."""
        import torch.distributed as dist

        started = time.perf_counter()
        for tensor, snapshot in zip(self.tensors, self.snapshots, strict=True):
            # In place, so no sync allocates: the tensor holds this rank's
            # changes (rows, dim), then everyone's, then the new values.
            tensor -= snapshot
            self._collective(dist.all_reduce, tensor)
            snapshot += tensor
            tensor.copy_(snapshot)
        self.syncs += 1
        self.seconds += time.perf_counter() - started

    def sum_over_ranks(self, values: np.ndarray) -> np.ndarray:
        """Return float64 `values` summed element-wise over all ranks."""
        import torch
        import torch.distributed as dist

        tensor = torch.from_numpy(values.astype(np.float64))
        tensor = tensor.to(self.tensors[0].device)
        self._collective(dist.all_reduce, tensor)
        return np.asarray(tensor.cpu().numpy())

    def digests(self) -> list[str]:
        """Return every rank's SHA-256 of its parameters, in rank order.

        Raises DistributedError when they differ: the syncs are exact, so
        that would be a bug.
        """
        import torch.distributed as dist

        digest = hashlib.sha256()
        for tensor in self.tensors:
            digest.update(tensor.detach().cpu().numpy().tobytes())
        everyone: list[Any] = [None] * dist.get_world_size()
        self._collective(dist.all_gather_object, everyone, digest.hexdigest())
        if len(set(everyone)) != 1:
            raise DistributedError(
                "the training processes hold different vectors after the final "
                f"sync (SHA-256 {', '.join(d[:12] for d in everyone)}); this is "
                "a bug in wordvec, please report it"
            )
        return [str(d) for d in everyone]

    def _collective(self, operation: Any, *args: Any) -> None:
        import torch.distributed as dist

        try:
            operation(*args)
        except RuntimeError as exc:
            raise lost_contact(dist.get_rank(), exc) from exc
