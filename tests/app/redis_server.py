"""A throwaway Redis server for the tests: Debian's `redis-server`, no
persistence, listening on a free port of 127.0.0.1."""

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.app.conftest import free_port, stop_process


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


@contextmanager
def running_redis(binary: str) -> Iterator[str]:
    """Start a Redis server and yield its URL (database 0); stop it when the
    block ends."""
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="wordvec-redis-"))
    command = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(root),
        "--save", "",
        "--appendonly", "no",
    ]  # fmt: skip
    with open(root / "server.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        _wait_until_it_answers(url, process)
        yield url
    finally:
        stop_process(process)
        shutil.rmtree(root, ignore_errors=True)


def _wait_until_it_answers(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    client = redis.Redis.from_url(url)
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start ({url})") from None
            time.sleep(0.05)
