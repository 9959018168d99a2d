"""Fixtures for the HTTP service: a small bundle with known structure, the
app in-process through TestClient, and the real server under uvicorn."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings, get_settings
from app.main import create_app
from app.registry import ModelRegistry
from index.build import IndexConfig
from training.bundle import TrainingState, write_bundle
from training.vocabulary import Vocabulary

MODEL_VERSION = "test-2024-01"
DIM = 16
# Each word is a sum of named directions (plus a little noise), so its
# neighbours and analogies are known: king - man + woman lands on queen.
WORD_PARTS = {
    "king": ["royal", "male"],
    "queen": ["royal", "female"],
    "prince": ["royal", "male", "young"],
    "princess": ["royal", "female", "young"],
    "throne": ["royal", "thing"],
    "crown": ["royal", "thing"],
    "man": ["person", "male"],
    "woman": ["person", "female"],
    "boy": ["person", "male", "young"],
    "girl": ["person", "female", "young"],
    "dog": ["animal"],
    "cat": ["animal", "thing"],
    "horse": ["animal", "royal"],
    "bread": ["food"],
    "cheese": ["food", "thing"],
    "butter": ["food", "thing"],
    "paris": ["place"],
    "london": ["place", "royal"],
    "the": [],
    "and": [],
}


def structured_vectors(seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Return WORD_PARTS' words and their float32 (len(words), DIM) vectors."""
    rng = np.random.default_rng(seed)
    parts = sorted({p for word_parts in WORD_PARTS.values() for p in word_parts})
    directions = dict(zip(parts, np.eye(DIM, dtype=np.float32), strict=False))
    words = list(WORD_PARTS)
    vectors = 0.05 * rng.standard_normal((len(words), DIM)).astype(np.float32)
    for row, word in enumerate(words):
        for part in WORD_PARTS[word]:
            vectors[row] += directions[part]
    return words, vectors


def write_test_bundle(
    path: Path, version: str = MODEL_VERSION, subword_buckets: int = 0
) -> Path:
    """Write the structured test bundle to `path` and return it; with
    `subword_buckets`, add random 3-5 character n-gram vectors, enough to
    infer a vector for any word."""
    words, vectors = structured_vectors()
    training_state = None
    if subword_buckets:
        rng = np.random.default_rng(1)
        subwords = rng.standard_normal((subword_buckets, DIM)).astype(np.float32)
        settings = {"min_n": 3, "max_n": 5, "buckets": subword_buckets}
        training_state = TrainingState(vectors.copy(), subwords, {"subwords": settings})
    counts = np.arange(len(words), 0, -1, dtype=np.int64) * 10
    manifest = {
        "version": version,
        "source": "trained",
        "config": {"lowercase": True, "dim": DIM},
        "evaluation": {"wordsim353": {"spearman": None, "pairs": 0, "oov_pairs": 353}},
    }
    return write_bundle(
        path,
        vocabulary=Vocabulary(words, counts),
        vectors=vectors,
        manifest=manifest,
        training_state=training_state,
    )


@pytest.fixture(scope="session")
def bundle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle of 20 words whose neighbours are known (see WORD_PARTS)."""
    return write_test_bundle(tmp_path_factory.mktemp("bundles") / MODEL_VERSION)


@pytest.fixture(scope="session")
def settings(bundle_path: Path) -> Settings:
    """Default limits, except a small max_batch so batch limits are cheap to hit."""
    return Settings(bundle_path=bundle_path, max_batch=8, max_texts=4)


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    """The real app in-process, with the test bundle loaded."""
    app = create_app()
    app.dependency_overrides[get_settings] = lambda: settings
    with TestClient(app) as test_client:
        assert app.state.model_holder.state == "ok"
        yield test_client


@pytest.fixture(scope="session")
def subword_client(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The app serving the test bundle with subword vectors added."""
    path = tmp_path_factory.mktemp("bundles") / "with-subwords"
    bundle = write_test_bundle(path, "test-subwords", subword_buckets=1000)
    app = create_app()
    subword_settings = settings.model_copy(update={"bundle_path": bundle})
    app.dependency_overrides[get_settings] = lambda: subword_settings
    with TestClient(app) as test_client:
        yield test_client


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wordvec_command() -> list[str]:
    """Return the `wordvec` command of this environment (the installed script,
    or the same entry point through `python -m` in an uninstalled checkout)."""
    script = Path(sys.executable).parent / "wordvec"
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def run_wordvec(*arguments: str) -> None:
    """Run a `wordvec` command; fail the test with its output if it fails."""
    done = subprocess.run([*wordvec_command(), *arguments], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


@pytest.fixture(scope="session")
def server_url(
    bundle_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Run `wordvec serve BUNDLE` on a free port and yield its base URL."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    # Two workers, as deployed: metrics must add up across processes.
    arguments = [str(bundle_path), "--workers", "2"]
    with running_server(arguments, log, {"WORDVEC_MAX_BATCH": "8"}) as url:
        yield url


@contextmanager
def running_server(
    arguments: list[str],
    log: Path,
    env_vars: dict[str, str] | None = None,
    ready_path: str = "/health",
) -> Iterator[str]:
    """Run `wordvec serve ARGUMENTS` on a free port of 127.0.0.1, logging to
    `log`, and yield its base URL once GET `ready_path` answers 200."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORDVEC_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(env_vars or {})
    command = [*wordvec_command(), "serve", *arguments, "--port", str(port)]
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1"], stdout=log_file, stderr=log_file, env=env
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, process, log, ready_path)
        yield url
    finally:
        stop_process(process, signal.SIGTERM, timeout=10)


def stop_process(
    process: subprocess.Popen[bytes], how: int = signal.SIGINT, timeout: float = 15
) -> None:
    """Send `how` to `process` if it still runs (SIGCONT first, in case it was
    stopped), and SIGKILL it if it has not exited `timeout` seconds later."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
            process.send_signal(how)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until_ready(
    url: str, process: subprocess.Popen[bytes], log: Path, path: str = "/health"
) -> None:
    """Poll GET `path` until it answers 200; fail with the server's log if
    the process exits or 30 s pass."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"wordvec serve exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}{path}", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"wordvec serve was not ready after 30 s:\n{log.read_text()}")


# A flat index over the 20 test words, built in milliseconds.
SMALL_INDEX = IndexConfig(kind="flat", recall_sample=20, threads=1)


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    """An empty data directory."""
    return ModelRegistry(tmp_path / "data")


def add_version(
    registry: ModelRegistry, version: str, *, activate: bool = False
) -> Path:
    """Add the structured test bundle to `registry` as `version`; return its path."""
    source = registry.data_dir.parent / f"source-{version}"
    if not source.exists():
        write_test_bundle(source, version="from-source")
    info = registry.add(
        source, version=version, activate=activate, index_config=SMALL_INDEX
    )
    return info.path


def corrupt_vectors(bundle: Path) -> None:
    """Flip one byte of the last vector of `bundle`, keeping the file's size,
    so that only the SHA-256 check can tell."""
    path = bundle / "vectors.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(scope="session")
def reliability_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model of benchmarks/reliability.py's fault scenarios (seconds)."""
    from benchmarks.reliability import tiny_base_bundle

    return tiny_base_bundle(tmp_path_factory.mktemp("reliability"))


@pytest.fixture(scope="session")
def reliability_words(reliability_base: Path) -> list[str]:
    """Query words of `reliability_base`'s vocabulary."""
    from benchmarks.reliability import vocabulary_words

    return vocabulary_words(reliability_base)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server for the session; yields the URL of its
    `postgres` database. Skips when PostgreSQL is not installed."""
    from tests.app.postgres import postgres_bin_dir, running_postgres

    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin "
            "or on PATH); apt-get install postgresql"
        )
    with running_postgres(bin_dir) as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """The URL of a new, empty database on the session's PostgreSQL server."""
    from tests.app.postgres import create_database

    return create_database(postgres_server)
