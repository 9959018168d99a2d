"""`wordvec init`: the first model of an empty data directory, trained once."""

import fcntl
import os
import subprocess
import time
from pathlib import Path

import pytest

from app.bootstrap import LOCK_FILE, ensure_active_version
from app.registry import ModelRegistry
from tests.app.conftest import SMALL_INDEX, wordvec_command, write_test_bundle
from tests.conftest import write_tiny_corpus
from training.config import TrainConfig

# Small and single-threaded: the machine is shared.
FAST = ["--dim", "16", "--epochs", "2", "--threads", "1"]


def run_init(
    data_dir: Path, corpus: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORDVEC_")}
    command = [*wordvec_command(), "init", "--data-dir", str(data_dir)]
    return subprocess.run(
        [*command, "--corpus", str(corpus), *FAST, *extra],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_tiny_corpus(tmp_path / "corpus.txt", num_sentences=600)


def test_init_trains_and_activates_the_default_version(
    tmp_path: Path, corpus: Path
) -> None:
    result = run_init(tmp_path / "data", corpus)
    assert result.returncode == 0, result.stderr
    registry = ModelRegistry(tmp_path / "data")
    assert registry.active_version() == "default"
    manifest = registry.get("default").manifest
    assert manifest["source"] == "trained" and manifest["dim"] == 16
    assert result.stdout == "active version: default\n"
    # Progress and lifecycle go to stderr for `docker compose logs`.
    assert "training 'default'" in result.stderr
    assert "epoch" in result.stderr.lower()
    assert list(registry.staging_dir.iterdir()) == []


def test_second_init_does_nothing(tmp_path: Path, corpus: Path) -> None:
    assert run_init(tmp_path / "data", corpus).returncode == 0
    registry = ModelRegistry(tmp_path / "data")
    before = registry.get("default").path.stat().st_mtime_ns
    again = run_init(tmp_path / "data", corpus)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stderr
    assert "training" not in again.stderr
    assert [v.version for v in registry.versions()] == ["default"]
    assert registry.get("default").path.stat().st_mtime_ns == before


def test_two_inits_at_once_train_only_once(tmp_path: Path, corpus: Path) -> None:
    data_dir = ModelRegistry(tmp_path / "data").data_dir
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORDVEC_")}
    command = [*wordvec_command(), "init", "--data-dir", str(data_dir)]
    command += ["--corpus", str(corpus), *FAST]
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    # Hold the lock so that both start before either can train.
    with open(data_dir / LOCK_FILE, "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        processes = []
        for log in logs:
            with open(log, "wb") as out:
                processes.append(
                    subprocess.Popen(command, stdout=out, stderr=out, env=env)
                )
        deadline = time.monotonic() + 60
        while not all("waiting" in log.read_text() for log in logs):
            assert time.monotonic() < deadline, [log.read_text() for log in logs]
            time.sleep(0.1)
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    assert [p.wait(timeout=120) for p in processes] == [0, 0]
    texts = [log.read_text() for log in logs]
    assert sum("training 'default'" in text for text in texts) == 1, texts
    assert sum("activated meanwhile" in text for text in texts) == 1, texts
    assert [v.version for v in ModelRegistry(data_dir).versions()] == ["default"]


def test_missing_corpus_fails_with_a_clear_error(tmp_path: Path) -> None:
    result = run_init(tmp_path / "data", tmp_path / "no-such-corpus")
    assert result.returncode == 2
    assert "no-such-corpus does not exist" in result.stderr
    assert "--corpus PATH" in result.stderr
    assert ModelRegistry(tmp_path / "data").active_version() is None


def test_init_without_a_data_directory_names_the_fix(corpus: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORDVEC_")}
    result = subprocess.run(
        [*wordvec_command(), "init", "--corpus", str(corpus)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert "--data-dir DIR or set WORDVEC_DATA_DIR" in result.stderr


def test_a_published_but_inactive_default_is_activated_not_retrained(
    tmp_path: Path,
) -> None:
    # What an init stopped between publishing and activating leaves behind.
    registry = ModelRegistry(tmp_path / "data")
    source = write_test_bundle(tmp_path / "source")
    registry.add(source, version="default", index_config=SMALL_INDEX)
    assert registry.active_version() is None
    missing = [tmp_path / "never-read"]
    version = ensure_active_version(registry, missing, TrainConfig(), "default")
    assert version == "default"
    assert registry.active_version() == "default"
