"""`wordvec train --processes N`: a torch.distributed group on one machine.

This process (the launcher) encodes the corpus once into a run directory
next to the output, starts N ranks with the "spawn" method (a fork would copy
this process's threads and locks), and waits. The ranks share the ids file,
meet through a file store in the run directory and train together
(training/distributed.py); rank 0 leaves the final parameters and its
statistics there, and the launcher evaluates them and writes the bundle.

When a rank fails, the launcher stops the others, removes the run directory
and raises one error naming the process that failed first: a rank records
why it failed in the run directory, and the ranks that merely lost contact
with it say so, which tells the cause from its echoes. No bundle is written
unless every rank finished. The launcher itself never imports torch.
"""

import dataclasses
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np

from training import errors
from training.config import TrainConfig
from training.corpus import CorpusPaths
from training.distributed import (
    GroupMember,
    RankOutcome,
    group_device,
    threads_per_process,
    train_rank,
)
from training.encode import EncodedCorpus
from training.errors import BundleError, DistributedError
from training.kernels import ModelParams
from training.subwords import build_subword_table
from training.trainer import (
    EpochRun,
    TrainResult,
    encoded_corpus,
    finish_training,
)

logger = logging.getLogger(__name__)

# After the first rank fails, how long the others get to notice and record
# that they lost contact before they are stopped; then how long a stopped
# rank gets before it is killed.
_NOTICE_SECONDS = 2.0
_STOP_SECONDS = 5.0
# How often a rank checks that its launcher is still alive.
_WATCH_SECONDS = 1.0
_STORE = "group.store"
_RESULT = "result.json"
_ARRAYS = ("input_vectors", "output_vectors", "subword_vectors")
# The format of app/cli.py, which a spawned rank does not inherit.
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass
class RankSpec:
    """Everything a spawned rank needs; pickled to it by multiprocessing."""

    member: GroupMember
    config: TrainConfig
    corpus: EncodedCorpus
    run_dir: Path
    device: str
    threads: int
    progress: bool
    log_level: int


def train_local_group(
    paths: CorpusPaths,
    config: TrainConfig,
    output_dir: Path,
    *,
    progress: bool,
    evaluate: bool,
) -> TrainResult:
    """Train with `config.processes` processes on this machine and write
    the bundle; returns what `training.trainer.train` returns.

    Raises ConfigError for a device without enough GPUs, BundleError when
    `output_dir` exists, DistributedError (or the error a rank raised, when
    it is a wordvec error) when a rank fails.
    """
    started = time.perf_counter()
    world_size = config.processes
    device = group_device(config.device, world_size)
    threads = threads_per_process(config.threads, world_size)
    output_dir = Path(output_dir)
    if output_dir.exists():
        # write_bundle would refuse it too, but only after the training.
        raise BundleError(f"{output_dir} already exists; choose another path")
    # The ranks share the ids file and meet through a store in this directory.
    with encoded_corpus(paths, config, output_dir, progress=progress) as (
        corpus,
        run_dir,
    ):
        encode_seconds = time.perf_counter() - started
        specs = [
            RankSpec(
                member=GroupMember(rank, world_size, rank, world_size),
                config=config,
                corpus=corpus,
                run_dir=run_dir,
                device=device,
                threads=threads,
                progress=progress and rank == 0,
                log_level=logging.getLogger().getEffectiveLevel(),
            )
            for rank in range(world_size)
        ]
        run_ranks(specs)
        params, run, stats = read_outcome(run_dir, config, corpus)
        stats["encode_seconds"] = round(encode_seconds, 3)
        stats["launcher"] = "local"
        return finish_training(
            output_dir, config, corpus, params, run, stats, started, evaluate=evaluate
        )


def run_ranks(specs: list[RankSpec]) -> None:
    """Start one process per spec and wait until all have finished.

    Raises the first failing rank's error: its own class when it is a
    wordvec error, else DistributedError. The other ranks are stopped first.
    """
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=rank_main, args=(spec,), name=f"wordvec-rank-{spec.member.rank}"
        )
        for spec in specs
    ]
    try:
        for rank, process in enumerate(processes):
            process.start()
            logger.info(
                "started training process %d of %d (pid %d)",
                rank,
                len(processes),
                process.pid,
            )
        failed = _wait_for_ranks(processes)
        if failed:
            raise _failure(failed, processes, specs[0].run_dir)
    finally:
        _stop(processes)


def _wait_for_ranks(processes: Sequence[BaseProcess]) -> list[int]:
    """Wait until every process has exited, or one has failed; return the
    ranks that failed (those that exit soon after the first failure too)."""
    pending = dict(enumerate(processes))
    while pending:
        multiprocessing.connection.wait([p.sentinel for p in pending.values()])
        for rank, process in list(pending.items()):
            if process.exitcode is None:
                continue
            del pending[rank]
            if process.exitcode != 0:
                multiprocessing.connection.wait(
                    [p.sentinel for p in pending.values()], timeout=_NOTICE_SECONDS
                )
                return [
                    r
                    for r, p in enumerate(processes)
                    if p.exitcode is not None and p.exitcode != 0
                ]
    return []


def _stop(processes: Sequence[BaseProcess]) -> None:
    """Terminate the processes still running, kill those that linger."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + _STOP_SECONDS
    for process in processes:
        if process.pid is None:
            continue
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def _failure(
    failed: list[int], processes: Sequence[BaseProcess], run_dir: Path
) -> errors.WordvecError:
    """Return the error to raise for the failed ranks: the one that failed
    on its own, before those that lost contact with it."""
    records = {rank: _read_failure(run_dir, rank) for rank in failed}

    def cause_first(rank: int) -> tuple[int, float]:
        record = records[rank]
        if record is None:
            # Died without a word (a signal, or a crash in native code).
            return (1, 0.0)
        return (2 if record["lost_contact"] else 0, float(record["time"]))

    rank = min(failed, key=cause_first)
    record = records[rank]
    world_size = len(processes)
    if record is None:
        return DistributedError(
            f"training process {rank} of {world_size} {_exit_text(processes[rank])}; "
            "the others were stopped and no bundle was written"
        )
    error_class = getattr(errors, record["type"], None)
    is_wordvec = isinstance(error_class, type) and issubclass(
        error_class, errors.WordvecError
    )
    if is_wordvec:
        return error_class(record["message"])  # type: ignore[misc]
    logger.debug("traceback of training process %d:\n%s", rank, record["traceback"])
    return DistributedError(
        f"training process {rank} of {world_size} failed with "
        f"{record['type']}: {record['message']} (its traceback is logged at "
        "DEBUG); the others were stopped and no bundle was written"
    )


def _exit_text(process: BaseProcess) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def rank_main(spec: RankSpec) -> None:
    """Entry point of a spawned rank: train, and on rank 0 leave the outcome
    in the run directory. On failure, record why and exit with status 1."""
    rank = spec.member.rank
    level = spec.log_level if rank == 0 else max(spec.log_level, logging.WARNING)
    logging.basicConfig(level=level, format=_LOG_FORMAT, stream=sys.stderr)
    _exit_with_launcher()
    try:
        outcome = train_rank(
            spec.member,
            spec.config,
            spec.corpus,
            spec.device,
            spec.threads,
            progress=spec.progress,
            store_path=spec.run_dir / _STORE,
        )
        if rank == 0:
            write_outcome(spec.run_dir, outcome)
    except BaseException as exc:
        _write_failure(spec.run_dir, rank, exc)
        sys.exit(1)


def _exit_with_launcher() -> None:
    """End this rank soon after the launcher dies (killed, say, so it could
    not stop its ranks), instead of training on for nobody."""
    launcher = os.getppid()

    def watch() -> None:
        while os.getppid() == launcher:
            time.sleep(_WATCH_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="watch-launcher", daemon=True).start()


def write_outcome(run_dir: Path, outcome: RankOutcome) -> None:
    """Store rank 0's parameters and statistics in `run_dir` for the launcher."""
    params = outcome.params
    for name in _ARRAYS:
        array = getattr(params, name)
        if array is not None:
            np.save(run_dir / f"{name}.npy", array, allow_pickle=False)
    result = {"run": dataclasses.asdict(outcome.run), "stats": outcome.stats}
    # Written last and renamed, so a result file is always complete.
    temporary = run_dir / (_RESULT + ".tmp")
    temporary.write_text(json.dumps(result), encoding="utf-8")
    temporary.replace(run_dir / _RESULT)


def read_outcome(
    run_dir: Path, config: TrainConfig, corpus: EncodedCorpus
) -> tuple[ModelParams, EpochRun, dict[str, Any]]:
    """Return the parameters, totals and statistics rank 0 left in `run_dir`.

    Raises DistributedError when rank 0 exited cleanly without leaving them.
    """
    if not (run_dir / _RESULT).is_file():
        raise DistributedError(
            "training process 0 finished but left no result; this is a bug in "
            "wordvec, please report it"
        )
    result = json.loads((run_dir / _RESULT).read_text(encoding="utf-8"))
    arrays = {
        name: np.load(run_dir / f"{name}.npy", allow_pickle=False)
        for name in _ARRAYS
        if (run_dir / f"{name}.npy").is_file()
    }
    table = None
    if config.subwords:
        table = build_subword_table(
            corpus.vocabulary, config.min_n, config.max_n, config.buckets
        )
    params = ModelParams(
        input_vectors=arrays["input_vectors"],
        output_vectors=arrays["output_vectors"],
        subword_vectors=arrays.get("subword_vectors"),
        subwords=table,
    )
    return params, EpochRun(**result["run"]), result["stats"]


def _write_failure(run_dir: Path, rank: int, exc: BaseException) -> None:
    record = {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "time": time.time(),
        "lost_contact": isinstance(exc, errors.LostContact),
    }
    path = run_dir / f"failure-{rank}.json"
    temporary = path.with_suffix(".tmp")
    try:
        temporary.write_text(json.dumps(record), encoding="utf-8")
        temporary.replace(path)
    except OSError:
        # The launcher still sees the exit status and reports that.
        pass


def _read_failure(run_dir: Path, rank: int) -> dict[str, Any] | None:
    try:
        record = json.loads((run_dir / f"failure-{rank}.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
