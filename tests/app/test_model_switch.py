"""End to end: `wordvec serve --data-dir` with two uvicorn workers follows
`wordvec models activate` under load without failing a request, and keeps
serving the old version when the new one is corrupt."""

import os
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.registry import ModelRegistry
from tests.app.conftest import (
    add_version,
    corrupt_vectors,
    running_server,
    wordvec_command,
)

RELOAD_INTERVAL = "0.2"
# Generous on a shared 2-core machine; a switch normally takes well under 1 s.
SWITCH_DEADLINE = 10.0


@dataclass
class Traffic:
    """What the load threads saw: failures, and (pid, version) from /health."""

    failures: list[str] = field(default_factory=list)
    similar_versions: list[str] = field(default_factory=list)
    health: list[dict[str, Any]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def versions_by_worker(self) -> dict[int, list[str]]:
        seen: dict[int, list[str]] = defaultdict(list)
        for body in list(self.health):
            seen[body["worker_pid"]].append(body["model_version"])
        return seen

    def latest_by_worker(self) -> dict[int, dict[str, Any]]:
        return {body["worker_pid"]: body for body in list(self.health)}


def _fresh_connections(url: str) -> httpx.Client:
    # No keep-alive: every request opens a connection, so both workers get some.
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.Client(base_url=url, timeout=10, limits=limits)


def _query(url: str, traffic: Traffic) -> None:
    with _fresh_connections(url) as client:
        while not traffic.stop.is_set():
            try:
                response = client.get("/similar", params={"word": "king", "k": 3})
            except httpx.HTTPError as exc:
                traffic.failures.append(f"GET /similar: {exc!r}")
                continue
            if response.status_code != 200:
                traffic.failures.append(f"{response.status_code}: {response.text}")
            else:
                traffic.similar_versions.append(response.json()["model_version"])


def _watch_health(url: str, traffic: Traffic) -> None:
    with _fresh_connections(url) as client:
        while not traffic.stop.is_set():
            try:
                response = client.get("/health")
            except httpx.HTTPError as exc:
                traffic.failures.append(f"GET /health: {exc!r}")
                continue
            if response.status_code != 200:
                traffic.failures.append(f"/health {response.status_code}")
            traffic.health.append(response.json())
            time.sleep(0.01)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with v1 active, v2 good and v3 corrupt after publishing."""
    registry = ModelRegistry(tmp_path_factory.mktemp("switch") / "data")
    add_version(registry, "v1", activate=True)
    add_version(registry, "v2")
    corrupt_vectors(add_version(registry, "v3"))
    return registry.data_dir


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[str]:
    log = data_dir.parent / "server.log"
    arguments = ["--data-dir", str(data_dir), "--workers", "2"]
    env_vars = {"WORDVEC_RELOAD_INTERVAL": RELOAD_INTERVAL}
    with running_server(arguments, log, env_vars) as url:
        yield url


@pytest.fixture
def traffic(server: str) -> Iterator[Traffic]:
    """Two query threads and one /health thread against the server."""
    traffic = Traffic()
    threads = [
        threading.Thread(target=_query, args=(server, traffic)),
        threading.Thread(target=_query, args=(server, traffic)),
        threading.Thread(target=_watch_health, args=(server, traffic)),
    ]
    for thread in threads:
        thread.start()
    yield traffic
    traffic.stop.set()
    for thread in threads:
        thread.join(timeout=15)


def _wordvec(*arguments: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORDVEC_")}
    command = [*wordvec_command(), *arguments]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def _wait_for(condition: Any, traffic: Traffic, what: str) -> None:
    deadline = time.monotonic() + SWITCH_DEADLINE
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} within {SWITCH_DEADLINE} s; /health saw {traffic.health[-4:]}")


def _reports_checksum_failure(body: dict[str, Any]) -> bool:
    return "SHA-256" in (body["last_load_error"] or "")


def _both_workers(traffic: Traffic, check: Any) -> bool:
    latest = traffic.latest_by_worker()
    return len(latest) == 2 and all(check(body) for body in latest.values())


def test_activation_moves_both_workers_without_failing_a_request(
    data_dir: Path, traffic: Traffic
) -> None:
    _wait_for(
        lambda: _both_workers(traffic, lambda b: b["model_version"] == "v1"),
        traffic,
        "both workers did not answer on v1",
    )

    result = _wordvec("models", "activate", "v2", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    _wait_for(
        lambda: _both_workers(traffic, lambda b: b["model_version"] == "v2"),
        traffic,
        "both workers did not move to v2",
    )
    queries_before = len(traffic.similar_versions)
    _wait_for(
        lambda: len(traffic.similar_versions) > queries_before + 20,
        traffic,
        "queries stalled after the switch",
    )

    assert traffic.failures == []
    assert set(traffic.similar_versions[queries_before:]) == {"v2"}
    for pid, versions in traffic.versions_by_worker().items():
        first_v2 = versions.index("v2")
        assert set(versions[first_v2:]) == {"v2"}, f"worker {pid} went back: {versions}"
    assert all(b["active_version"] == "v2" for b in traffic.health[-4:])


def test_corrupt_version_is_refused_and_the_old_one_keeps_answering(
    data_dir: Path, traffic: Traffic
) -> None:
    result = _wordvec("models", "activate", "v3", "--data-dir", str(data_dir))
    assert result.returncode == 2
    assert "v3" in result.stderr and "failed its checks" in result.stderr
    assert (data_dir / "active").read_text() == "v2\n"

    # Bypass the CLI's checks, as a bad deployment script might.
    temporary = data_dir / ".active.test"
    temporary.write_text("v3\n")
    os.replace(temporary, data_dir / "active")

    _wait_for(
        lambda: _both_workers(traffic, _reports_checksum_failure),
        traffic,
        "both workers did not report the failed load",
    )
    queries_before = len(traffic.similar_versions)
    _wait_for(
        lambda: len(traffic.similar_versions) > queries_before + 20,
        traffic,
        "queries stalled after the failed load",
    )
    assert traffic.failures == []
    assert set(traffic.similar_versions[queries_before:]) == {"v2"}
    for body in traffic.latest_by_worker().values():
        assert body["model_version"] == "v2"
        assert body["active_version"] == "v3"
        assert body["ready"] is True


def test_without_an_active_version_queries_get_503_until_the_first_activation(
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(tmp_path / "data")
    arguments = ["--data-dir", str(registry.data_dir), "--workers", "1"]
    env_vars = {"WORDVEC_RELOAD_INTERVAL": RELOAD_INTERVAL}
    log = tmp_path / "server.log"
    with (
        running_server(arguments, log, env_vars, ready_path="/health/live") as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        response = client.get("/similar", params={"word": "king"})
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert "wordvec models activate" in response.json()["detail"]
        health = client.get("/health")
        assert health.status_code == 503
        assert (health.json()["status"], health.json()["active_version"]) == (
            "waiting",
            None,
        )

        add_version(registry, "first", activate=True)
        deadline = time.monotonic() + SWITCH_DEADLINE
        while client.get("/health").status_code != 200:
            assert time.monotonic() < deadline, "the first activation was not served"
            time.sleep(0.05)
        response = client.get("/similar", params={"word": "king"})
        assert response.json()["model_version"] == "first"
