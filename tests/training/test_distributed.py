"""Several training processes with torch.distributed: real gloo groups on
127.0.0.1, started by `--processes` or with torchrun's variables, on the tiny
topical corpus. They write one bundle whose vectors every rank agreed on, and
any failure ends every process with one error and no bundle."""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from tests.conftest import write_tiny_corpus
from tests.training.test_kernels import topic_separation
from training.bundle import load_bundle
from training.config import TrainConfig
from training.distributed import gpu_count, rounds, shard_chunk_tokens
from training.errors import ConfigError
from training.kernels import native_available
from training.trainer import iter_chunks, train

ROOT = Path(__file__).resolve().parents[2]
WORDVEC = [sys.executable, "-m", "app.cli"]
# A subprocess that has not finished by then has hung.
DEADLINE_SECONDS = 120


def group_config(**overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "dim": 24,
        "window": 3,
        "min_count": 2,
        "sample": 0.0,
        "lr": 0.05,
        "epochs": 15,
        "threads": 1,
        "processes": 2,
        "sync_every": 1000,
        "seed": 7,
    }
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parameters_sha256(bundle_path: Path) -> str:
    """SHA-256 of the input then output vectors, as the ranks compute it."""
    bundle = load_bundle(bundle_path)
    state = bundle.load_training_state()
    assert state is not None
    digest = hashlib.sha256(np.ascontiguousarray(bundle.vectors).tobytes())
    digest.update(state.output_vectors.tobytes())
    return digest.hexdigest()


def test_two_processes_write_one_bundle_with_synced_vectors(
    tmp_path: Path,
) -> None:
    corpus = write_tiny_corpus(tmp_path / "corpus.txt", num_sentences=600)
    result = train([corpus], group_config(), tmp_path / "model", progress=False)
    assert sorted(tmp_path.iterdir()) == [corpus, tmp_path / "model"]
    bundle = load_bundle(result.bundle_path, verify=True)
    training = bundle.manifest["training"]
    assert training["processes"] == 2
    assert training["process_group_backend"] == "gloo"
    assert training["launcher"] == "local"
    assert training["sync_every"] == 1000 and training["syncs"] >= 15
    assert len(training["epoch_losses"]) == 15
    assert training["epoch_losses"][-1] < training["epoch_losses"][0]
    assert topic_separation(bundle, np.asarray(bundle.vectors)) > 0.2  # type: ignore[arg-type]


def test_ranks_hold_identical_vectors_after_the_final_sync(tmp_path: Path) -> None:
    corpus = write_tiny_corpus(tmp_path / "corpus.txt")
    config = group_config(epochs=3)
    result = train([corpus], config, tmp_path / "m", progress=False, evaluate=False)
    digests = result.stats["parameters_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert digests[0] == parameters_sha256(result.bundle_path)


def test_two_processes_sync_the_torch_kernels_tensors_and_subword_vectors(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    # The torch kernel trains tensors of its own (on a GPU, device copies),
    # which the syncs must reach, as they must reach the n-gram rows.
    config = group_config(epochs=2, backend="torch", subwords=True, buckets=500)
    result = train([tiny_corpus], config, tmp_path / "m", progress=False)
    digests = result.stats["parameters_sha256"]
    assert result.stats["backend"] == "torch"
    assert len(digests) == 2 and digests[0] == digests[1]
    state = load_bundle(result.bundle_path, verify=True).load_training_state()
    assert state is not None and state.subword_vectors is not None
    assert state.subword_vectors.shape == (500, 24)


def test_processes_zero_is_a_config_error(
    tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", str(tiny_corpus), "--output", str(tmp_path / "m")]
    assert main([*argv, "--processes", "0"]) == 2
    assert capsys.readouterr().err == (
        "wordvec: error: --processes must be at least 1, got 0\n"
    )
    assert not (tmp_path / "m").exists()


@pytest.mark.skipif(gpu_count() >= 2, reason="this machine has 2 GPUs")
def test_processes_on_cuda_without_a_gpu_each_is_a_config_error(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="needs a GPU for each process"):
        train([tiny_corpus], group_config(device="cuda"), tmp_path / "m")
    assert list(tmp_path.iterdir()) == [tiny_corpus]


def test_rounds_deal_every_chunk_once_and_evenly(tmp_path: Path) -> None:
    ids = np.tile(np.array([3, 1, 4, 1, 5, -1], dtype=np.int32), 10_000)
    ids.tofile(tmp_path / "ids.int32")
    chunk_tokens = shard_chunk_tokens(ids.size, world_size=2, sync_every=7_000)
    dealt = list(rounds(iter_chunks(tmp_path / "ids.int32", chunk_tokens), 2))
    assert all(len(r) == 2 for r in dealt)
    sizes = [c.size for r in dealt for c in r]
    assert max(sizes) - min(sizes) <= 6
    np.testing.assert_array_equal(np.concatenate([c for r in dealt for c in r]), ids)


def test_a_killed_process_ends_the_run_with_one_error_and_no_bundle(
    tmp_path: Path,
) -> None:
    # Long enough (a few seconds) that the kill lands while training.
    corpus = write_tiny_corpus(tmp_path / "corpus.txt", num_sentences=20_000)
    command = [
        *WORDVEC,
        "train",
        str(corpus),
        "--output",
        str(tmp_path / "m"),
        "--processes",
        "2",
        "--threads",
        "1",
        "--min-count",
        "2",
        "--sample",
        "0",
        "--epochs",
        "60",
        "--no-progress",
    ]
    launcher = subprocess.Popen(
        command, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    watchdog = threading.Timer(DEADLINE_SECONDS, launcher.kill)
    watchdog.start()
    assert launcher.stderr is not None
    pids: dict[str, int] = {}
    lines = []
    for line in launcher.stderr:
        lines.append(line)
        if "started training process" in line:
            pids[line.split("process ")[1].split()[0]] = int(line.split("pid ")[1][:-2])
        if "training kernel" in line:
            os.kill(pids["1"], signal.SIGKILL)
            break
    lines += launcher.stderr.readlines()
    launcher.wait()
    watchdog.cancel()
    errors = [line for line in lines if line.startswith("wordvec: error:")]
    assert launcher.returncode == 2
    assert len(errors) == 1
    assert "training process 1 of 2 was killed by signal SIGKILL" in errors[0]
    assert list(tmp_path.iterdir()) == [corpus]
    with pytest.raises(ProcessLookupError):
        os.kill(pids["0"], 0)


def torchrun_environment(rank: int, port: int) -> dict[str, str]:
    """The variables torchrun gives rank `rank` of 2 on one machine."""
    return {
        **os.environ,
        "WORLD_SIZE": "2",
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "LOCAL_WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }


def test_processes_given_different_corpora_fail_with_a_clear_error(
    tmp_path: Path,
) -> None:
    corpora = [
        write_tiny_corpus(tmp_path / f"corpus{seed}.txt", seed=seed) for seed in (0, 1)
    ]
    port = free_port()
    options = ["--output", str(tmp_path / "m"), "--min-count", "2", "--no-progress"]
    ranks = [
        subprocess.Popen(
            [*WORDVEC, "train", str(corpora[rank]), *options],
            cwd=ROOT,
            env=torchrun_environment(rank, port),
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    for process in ranks:
        _, stderr = process.communicate(timeout=DEADLINE_SECONDS)
        assert process.returncode == 2
        assert stderr.splitlines()[-1].startswith(
            "wordvec: error: training process 1 was given a different corpus"
        )
    assert sorted(tmp_path.iterdir()) == sorted(corpora)


def test_torchrun_group_writes_one_bundle_from_rank_zero(tmp_path: Path) -> None:
    corpus = write_tiny_corpus(tmp_path / "corpus.txt")
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun),
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "app.cli",
        "train",
        str(corpus),
        "--output",
        str(tmp_path / "m"),
        "--min-count",
        "2",
        "--epochs",
        "2",
        "--no-progress",
        "--no-evaluate",
    ]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=DEADLINE_SECONDS
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("wrote ") == 1
    training = load_bundle(tmp_path / "m", verify=True).manifest["training"]
    assert (training["processes"], training["launcher"]) == (2, "torchrun")
    assert sorted(tmp_path.iterdir()) == [corpus, tmp_path / "m"]


@pytest.mark.skipif(not native_available(), reason="training._native is not built")
def test_one_process_native_train_and_evaluate_never_import_torch_faiss_or_fastapi(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    # Through the `wordvec` entry point, which must load only what the
    # subcommand needs: each of these costs tens of megabytes.
    bundle = str(tmp_path / "m")
    script = (
        "import sys\n"
        "from app.cli import main\n"
        f"assert main(['train', {str(tiny_corpus)!r}, '--output', {bundle!r}, "
        "'--min-count', '2', '--epochs', '1', '--backend', 'native', "
        "'--device', 'cpu', '--no-progress']) == 0\n"
        f"assert main(['evaluate', {bundle!r}]) == 0\n"
        "loaded = {'torch', 'faiss', 'fastapi', 'uvicorn'} & set(sys.modules)\n"
        "assert not loaded, f'imported {loaded}'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_processes_other_than_torchruns_group_size_is_a_config_error(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in torchrun_environment(0, free_port()).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="differs from the 2 processes torchrun"):
        train([tiny_corpus], group_config(processes=3), tmp_path / "m")
    assert list(tmp_path.iterdir()) == [tiny_corpus]
