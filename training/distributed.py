"""Data-parallel training over several processes with torch.distributed.

Every process (a rank) holds a full copy of the parameters and trains its
share of the corpus with the usual kernel: the chunks of the ids file are
dealt round-robin, one chunk per rank per round. After each round the ranks
add up what they changed (training/parameter_sync.py), so they start every
round from the same vectors and end the run holding identical ones, which
they check with a digest. The learning rate follows the words done by all
ranks together, so its schedule is the one a single process follows.

There are two ways to start a group:

- `wordvec train --processes N` on one machine (training/local_group.py):
  this process encodes the corpus once, starts N ranks that share the ids
  file and meet through a file store, and writes the bundle itself.
- torchrun, on one or several machines (`WORLD_SIZE`, `RANK`, `LOCAL_RANK`
  and `MASTER_ADDR` set): every process is a rank, encodes its own copy of
  the corpus, checks with the others that they all got the same corpus and
  settings, and rank 0 writes the bundle.

The backend is gloo on the CPU and nccl when each process on a machine has
a GPU of its own. torch is imported inside functions only: the trainer
imports this module on every run, and a single-process run on the native
kernel must not load torch (see training/kernels.py).
"""

import dataclasses
import hashlib
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from tqdm import tqdm

from training.config import TrainConfig
from training.corpus import CorpusPaths
from training.encode import EncodedCorpus
from training.errors import ConfigError, DistributedError
from training.kernels import Kernel, ModelParams, make_kernel
from training.parameter_sync import ParameterSync, lost_contact, parameter_tensors
from training.trainer import (
    EpochRun,
    TrainResult,
    count_tokens,
    cuda_available,
    encoded_corpus,
    finish_training,
    iter_chunks,
    linear_lr,
    log_epoch,
    new_params,
    resolve_threads,
    run_stats,
)

logger = logging.getLogger(__name__)

# How long a collective, the rendezvous included, waits for the other ranks
# before it fails. Under torchrun the ranks encode their corpora before they
# meet, so the slowest encoding must finish within this of the fastest.
COLLECTIVE_TIMEOUT = timedelta(minutes=10)
_TORCHRUN_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")
# Per epoch and summed over ranks: raw words, trained words, examples, loss
# sum, loss count (the fields of kernels.ChunkStats).
_TOTALS = 5


@dataclass(frozen=True)
class GroupMember:
    """Where one process stands in its group: `rank` among `world_size`
    processes, `local_rank` among the `local_world_size` on its machine."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int


@dataclass
class RankOutcome:
    """What a rank ends with: the parameters (identical on every rank), the
    run's totals over all ranks and the manifest's `training` entry."""

    params: ModelParams
    run: EpochRun
    stats: dict[str, Any]


def launched_by_torchrun() -> bool:
    """Return whether torchrun (or a launcher setting its variables) started
    this process as one of a group of more than one."""
    if not all(name in os.environ for name in _TORCHRUN_VARIABLES):
        return False
    return member_from_environment().world_size > 1


def member_from_environment() -> GroupMember:
    """Return this process's place in a torchrun group, read from the
    environment. Raises ConfigError when the variables are not integers or
    the rank is outside the group."""
    env = os.environ
    try:
        world_size = int(env["WORLD_SIZE"])
        member = GroupMember(
            rank=int(env["RANK"]),
            world_size=world_size,
            local_rank=int(env["LOCAL_RANK"]),
            local_world_size=int(env.get("LOCAL_WORLD_SIZE", world_size)),
        )
    except ValueError as exc:
        raise ConfigError(
            f"the torchrun variables WORLD_SIZE, RANK and LOCAL_RANK must be "
            f"integers ({exc}); start wordvec with torchrun or unset them"
        ) from exc
    if not 0 <= member.rank < world_size or member.local_rank < 0:
        raise ConfigError(
            f"RANK {member.rank} is outside a group of WORLD_SIZE {world_size}"
        )
    return member


def train_distributed(
    paths: CorpusPaths,
    config: TrainConfig,
    output_dir: Path,
    *,
    progress: bool,
    evaluate: bool,
) -> TrainResult:
    """Train on several processes and write one bundle; returns what
    `training.trainer.train` returns (under torchrun, on every rank).

    Raises ConfigError for a bad process count or device, DistributedError
    when a process fails or the processes disagree, and what `train` raises.
    """
    if not launched_by_torchrun():
        from training.local_group import train_local_group

        return train_local_group(
            paths, config, output_dir, progress=progress, evaluate=evaluate
        )
    member = member_from_environment()
    if config.processes not in (1, member.world_size):
        raise ConfigError(
            f"--processes {config.processes} differs from the {member.world_size} "
            "processes torchrun started; leave --processes out under torchrun"
        )
    config = dataclasses.replace(config, processes=member.world_size)
    return _train_torchrun_rank(
        paths, config, Path(output_dir), member, progress, evaluate
    )


def group_device(device: str, local_processes: int) -> str:
    """Return "cuda" when every process on this machine can have a GPU of its
    own and `device` allows it, else "cpu".

    Raises ConfigError for device "cuda" with fewer GPUs than processes.
    """
    if device == "cpu":
        return "cpu"
    gpus = gpu_count()
    if gpus >= local_processes:
        return "cuda"
    if device == "cuda":
        if gpus == 0:
            available, fix = "none is", "use --device cpu"
        else:
            available = f"only {gpus} {'is' if gpus == 1 else 'are'}"
            fix = f"use --device cpu or at most {gpus} processes per machine"
        raise ConfigError(
            f"device 'cuda' with {local_processes} processes needs a GPU for each "
            f"process on this machine, but {available} available; {fix}"
        )
    return "cpu"


def gpu_count() -> int:
    """Return how many CUDA devices torch sees; 0 without a GPU driver, found
    out without importing torch."""
    if not cuda_available():
        return 0
    import torch

    return int(torch.cuda.device_count())


def threads_per_process(threads: int, local_processes: int) -> int:
    """Return the kernel threads of each process: `threads` when set, else
    this machine's cores divided among its processes (at least 1)."""
    if threads > 0:
        return threads
    return max(1, resolve_threads(0) // local_processes)


def _train_torchrun_rank(
    paths: CorpusPaths,
    config: TrainConfig,
    output_dir: Path,
    member: GroupMember,
    progress: bool,
    evaluate: bool,
) -> TrainResult:
    """One torchrun rank: encode, train with the group, and on rank 0 write
    the bundle."""
    _end_on_sigterm()
    started = time.perf_counter()
    device = group_device(config.device, member.local_world_size)
    threads = threads_per_process(config.threads, member.local_world_size)
    leader = member.rank == 0
    # TODO: ranks on the same machine each encode their own copy of the
    # corpus (the ranks of `--processes` share one); letting local rank 0
    # encode into a directory the others wait for would save the CPU time
    # and disk of LOCAL_WORLD_SIZE - 1 encodings.
    with encoded_corpus(paths, config, output_dir, progress=progress and leader) as (
        corpus,
        _,
    ):
        encode_seconds = time.perf_counter() - started
        outcome = train_rank(
            member, config, corpus, device, threads, progress=progress and leader
        )
    outcome.stats["encode_seconds"] = round(encode_seconds, 3)
    outcome.stats["launcher"] = "torchrun"
    if not leader:
        return TrainResult(output_dir, outcome.stats, None, rank=member.rank)
    return finish_training(
        output_dir,
        config,
        corpus,
        outcome.params,
        outcome.run,
        outcome.stats,
        started,
        evaluate=evaluate,
    )


def _end_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so a rank that torchrun stops after
    another one failed still removes its temporary files."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def train_rank(
    member: GroupMember,
    config: TrainConfig,
    corpus: EncodedCorpus,
    device: str,
    threads: int,
    *,
    progress: bool,
    store_path: Path | None = None,
) -> RankOutcome:
    """Join the group, train this rank's share of `corpus` and return the
    outcome, identical in parameters on every rank.

    The group meets through the file `store_path` when given (ranks of one
    machine), else through torchrun's `MASTER_ADDR`/`MASTER_PORT`. `device`
    is "cpu" (gloo) or "cuda" (nccl, this rank on `cuda:{local_rank}`).
    Raises DistributedError when the ranks disagree or lose contact.
    """
    import torch
    import torch.distributed as dist

    # The syncs' tensor arithmetic runs on this many threads too.
    torch.set_num_threads(threads)
    backend = "nccl" if device == "cuda" else "gloo"
    rank_device = f"cuda:{member.local_rank}" if device == "cuda" else "cpu"
    _join_group(backend, member, rank_device, store_path)
    try:
        check_same_input(corpus, config, member)
        params = new_params(config, corpus.vocabulary)
        # Ranks draw different subsampling and noise words; the starting
        # vectors come from rank 0 (`start_from_rank_zero`).
        kernel_config = dataclasses.replace(config, seed=config.seed + member.rank)
        kernel = make_kernel(
            kernel_config, corpus.vocabulary, params, rank_device, threads
        )
        sync = ParameterSync(parameter_tensors(kernel, params))
        sync.start_from_rank_zero()
        run = train_shard(kernel, sync, corpus.ids_path, config, member, progress)
        digests = sync.digests()
        kernel.finish()
    finally:
        dist.destroy_process_group()
    stats = run_stats(run, corpus, kernel, device, threads)
    stats.update(
        processes=member.world_size,
        process_group_backend=backend,
        sync_every=config.sync_every,
        syncs=sync.syncs,
        sync_seconds=round(sync.seconds, 3),
        parameters_sha256=digests,
    )
    return RankOutcome(params, run, stats)


def _join_group(
    backend: str, member: GroupMember, rank_device: str, store_path: Path | None
) -> None:
    import torch
    import torch.distributed as dist

    if rank_device != "cpu":
        torch.cuda.set_device(member.local_rank)
    try:
        if store_path is None:
            dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
        else:
            store = dist.FileStore(str(store_path), member.world_size)
            dist.init_process_group(
                backend,
                store=store,
                rank=member.rank,
                world_size=member.world_size,
                timeout=COLLECTIVE_TIMEOUT,
            )
    except (RuntimeError, ValueError) as exc:
        raise lost_contact(member.rank, exc) from exc


def check_same_input(
    corpus: EncodedCorpus, config: TrainConfig, member: GroupMember
) -> None:
    """Raise DistributedError unless every rank encoded the same corpus into
    the same vocabulary and got the same settings (threads and device may
    differ between machines)."""
    import torch.distributed as dist

    vocabulary = hashlib.sha256("\n".join(corpus.vocabulary.words).encode())
    vocabulary.update(corpus.vocabulary.counts.tobytes())
    settings = config.to_dict()
    for name in ("threads", "device"):
        settings.pop(name)
    mine = {
        "corpus": corpus.fingerprint,
        "tokens": corpus.num_tokens,
        "vocabulary": vocabulary.hexdigest(),
        "settings": settings,
    }
    everyone: list[Any] = [None] * member.world_size
    try:
        dist.all_gather_object(everyone, mine)
    except RuntimeError as exc:
        raise lost_contact(member.rank, exc) from exc
    for rank, theirs in enumerate(everyone):
        differing = [key for key in mine if theirs[key] != everyone[0][key]]
        if differing:
            raise DistributedError(
                f"training process {rank} was given a different "
                f"{', '.join(differing)} than process 0 (corpus "
                f"{theirs['corpus'][:19]} against {everyone[0]['corpus'][:19]}); "
                "give every process the same corpus files and settings"
            )


def train_shard(
    kernel: Kernel,
    sync: ParameterSync,
    ids_path: Path,
    config: TrainConfig,
    member: GroupMember,
    progress: bool,
) -> EpochRun:
    """Run `config.epochs` passes over this rank's share of the chunks in
    `ids_path`, combining parameters after every round; returns the totals
    of all ranks (each rank returns the same)."""
    # TODO: every rank reads the whole ids file each epoch, only to count the
    # words of the other ranks' chunks for the learning rate; on a corpus far
    # larger than the page cache that is W times the reading. Counting the
    # words of each chunk once, before the first epoch, would fix it.
    words_per_epoch = count_tokens(ids_path)
    total = config.epochs * words_per_epoch
    ids = ids_path.stat().st_size // 4
    chunk_tokens = shard_chunk_tokens(ids, member.world_size, config.sync_every)
    run = EpochRun()
    done = 0
    bar = tqdm(
        total=total,
        unit="word",
        unit_scale=True,
        file=sys.stderr,
        disable=not progress,
        desc=f"training ({member.world_size} processes)",
        smoothing=0.1,
    )
    with bar:
        for epoch in range(config.epochs):
            epoch_started = time.perf_counter()
            totals = np.zeros(_TOTALS, dtype=np.float64)
            for chunks in rounds(
                iter_chunks(ids_path, chunk_tokens), member.world_size
            ):
                words = sum(int(np.count_nonzero(c >= 0)) for c in chunks)
                lr_start = linear_lr(config.start_lr, config.min_lr, done, total)
                lr_end = linear_lr(config.start_lr, config.min_lr, done + words, total)
                if member.rank < len(chunks):
                    # TODO: the sync below waits for the slowest rank and then
                    # trains nothing while the changes travel (about 40 ms for
                    # 37k words x dim 100 on 2 cores); starting the all_reduce
                    # of one round's changes while the next chunk trains would
                    # hide that, at one more round of staleness.
                    stats = kernel.train_chunk(chunks[member.rank], lr_start, lr_end)
                    totals += dataclasses.astuple(stats)
                sync.combine()
                done += words
                bar.update(words)
                bar.set_postfix(lr=f"{lr_end:.5f}")
            raw, trained, examples, loss_sum, loss_count = sync.sum_over_ranks(totals)
            seconds = time.perf_counter() - epoch_started
            log_epoch(
                run, epoch, config.epochs, loss_sum, int(loss_count), int(raw), seconds
            )
            run.seconds += seconds
            run.raw_words += int(raw)
            run.trained_words += int(trained)
            run.examples += int(examples)
    return run


def shard_chunk_tokens(ids: int, world_size: int, sync_every: int) -> int:
    """Return the chunk size (in ids, sentence ends included) that splits
    `ids` into whole rounds of `world_size` chunks of about `sync_every`, so
    no rank waits for another at the end of an epoch."""
    rounds_per_epoch = max(1, round(ids / (world_size * sync_every)))
    return max(1, math.ceil(ids / (world_size * rounds_per_epoch)))


def rounds(chunks: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    """Yield `chunks` in consecutive lists of `size` (the last may be shorter)."""
    batch: list[np.ndarray] = []
    for chunk in chunks:
        batch.append(chunk)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
