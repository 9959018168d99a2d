"""Reliability scenarios for the fine-tune service, with real processes: a
`wordvec serve --data-dir` API under uvicorn, `wordvec worker` job workers,
real signals (SIGKILL, SIGSTOP/SIGCONT), a real small filesystem (tmpfs)
for disk-full (or, without the rights to mount one, a cap on the size of
the files the service's processes write), and an asyncio + httpx load
generator. RELIABILITY.md describes each scenario and the figures of the
last run.

    .venv/bin/python benchmarks/reliability.py [--only NAME ...] [--json OUT]
        [--load-seconds 60] [--concurrency 64] [--upload-mb 200]

The quick versions of the same scenarios run in the test suite
(tests/app/test_faults.py, tests/app/test_load.py); each scenario returns an
`Outcome` whose `failed_checks` must be empty. The fault scenarios use a
tiny model trained in seconds; the load scenario serves /tmp/ft/default if
it exists, else trains data/corpus into /tmp/rel/default once (minutes).
"""

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.jobs.store import JobStore, open_job_store
from app.registry import ModelRegistry
from index.build import IndexConfig
from tests.app.conftest import free_port, stop_process, wordvec_command

API_KEY = "reliability-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
# Short leases and reloads, so that recoveries take seconds, not minutes.
FAULT_ENV = {
    "WORDVEC_API_KEY": API_KEY,
    "WORDVEC_RELOAD_INTERVAL": "0.2",
    "WORDVEC_MAX_UPLOAD_BYTES": "20000000",
    "WORDVEC_MIN_UPLOAD_TOKENS": "200",
    "WORDVEC_JOB_LEASE": "3",
    "WORDVEC_JOB_HEARTBEAT_INTERVAL": "0.3",
    "WORDVEC_JOB_MAX_ATTEMPTS": "3",
    "WORDVEC_MAX_QUEUED_JOBS": "100",
    "WORDVEC_FINETUNES_PER_HOUR": "1000",
}
# Tokens of an upload that keeps a worker training for seconds (50 epochs of
# it on the tiny model at dim 200 run at some 5M words/s on 2 cores).
LONG_JOB_TOKENS = 1_500_000
DEFAULT_MODEL = Path("/tmp/ft/default")
TRAINED_MODEL = Path("/tmp/rel/default")
# Generous deadlines for a shared 2-core machine; none of them is a target.
START_DEADLINE = 90.0
JOB_DEADLINE = 240.0


class ScenarioError(RuntimeError):
    """A scenario could not run (a process did not start, a deadline passed)."""


@dataclass
class Outcome:
    """What a scenario measured, and which of its checks failed (none, if well)."""

    scenario: str
    figures: dict[str, Any] = field(default_factory=dict)
    failed_checks: list[str] = field(default_factory=list)

    def expect(self, condition: bool, what: str) -> None:
        if not condition:
            self.failed_checks.append(what)


# -- processes ----------------------------------------------------------------


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05
) -> Any:
    """Poll `condition` until it returns something true and return it; raise
    ScenarioError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise ScenarioError(f"{what}: not within {timeout:g} s")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Server:
    """A `wordvec serve` process group (uvicorn's supervisor and its workers)."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def kill(self) -> None:
        """SIGKILL the whole group at once, as a crash or an OOM kill would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)


@dataclass
class Lab:
    """A data directory, the environment its processes get, and their logs."""

    data_dir: Path
    logs: Path
    env: dict[str, str] = field(default_factory=lambda: dict(FAULT_ENV))
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)
    # Bytes any one file may grow to in the processes started from now on
    # (RLIMIT_FSIZE): disk_full's stand-in for a full disk without root.
    file_size_limit: int | None = None

    @property
    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.data_dir)

    @property
    def store(self) -> JobStore:
        return open_job_store(self.data_dir)

    def _env(self, extra: dict[str, str] | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORDVEC_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(self.env)
        env.update(extra or {})
        return env

    def _limits(self) -> Callable[[], None] | None:
        if self.file_size_limit is None:
            return None
        return _file_size_limiter(self.file_size_limit)

    def start_server(
        self, workers: int = 1, extra_env: dict[str, str] | None = None
    ) -> Server:
        """Start `wordvec serve --data-dir` on a free port; return it once
        GET /health answers 200 (raises ScenarioError otherwise)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log = self.logs / f"server-{port}.log"
        command = [
            *wordvec_command(), "serve", "--data-dir", str(self.data_dir),
            "--workers", str(workers), "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
        with open(log, "wb") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=out,
                env=self._env(extra_env),
                start_new_session=True,
                preexec_fn=self._limits(),
            )
        server = Server(process, f"http://127.0.0.1:{port}", log)
        self.servers.append(server)

        def ready() -> bool:
            if process.poll() is not None:
                raise ScenarioError(f"wordvec serve exited:\n{_tail(log)}")
            try:
                return httpx.get(f"{server.url}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_until(ready, START_DEADLINE, "wordvec serve answering /health", 0.1)
        except ScenarioError as exc:
            server.stop()
            raise ScenarioError(f"{exc}\n{_tail(log)}") from None
        return server

    def start_worker(self, name: str = "worker") -> subprocess.Popen[bytes]:
        """Start `wordvec worker --data-dir`; it logs to LOGS/<name>.log."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        command = [*wordvec_command(), "worker", "--data-dir", str(self.data_dir)]
        with open(log, "ab") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=out,
                env=self._env(None),
                preexec_fn=self._limits(),
            )
        self.workers.append(process)
        return process

    def worker_ready(self, name: str, pid: int) -> None:
        log = self.logs / f"{name}.log"
        wait_until(
            lambda: f":{pid} taking jobs" in log.read_text(errors="replace"),
            START_DEADLINE,
            f"worker {name} ({pid}) taking jobs",
            0.1,
        )

    def close(self) -> None:
        """Stop every process this lab started (SIGCONT first, for stopped ones)."""
        for worker in self.workers:
            stop_process(worker)
        for server in self.servers:
            server.stop()


@contextlib.contextmanager
def lab(root: Path, base_bundle: Path, name: str) -> Iterator[Lab]:
    """A fresh data directory under `root` whose active version is `base`."""
    data_dir = root / name / "data"
    add_base(data_dir, base_bundle)
    the_lab = Lab(data_dir, root / name / "logs")
    try:
        yield the_lab
    finally:
        the_lab.close()


def add_base(data_dir: Path, base_bundle: Path, version: str = "base") -> None:
    ModelRegistry(data_dir).add(
        base_bundle,
        version=version,
        activate=True,
        index_config=IndexConfig(kind="flat", threads=1),
    )


# -- models and uploads ---------------------------------------------------------


def tiny_base_bundle(root: Path, dim: int = 200) -> Path:
    """Train the test suite's tiny topic corpus into a bundle (seconds). Its
    vocabulary is tiny, so the dimension sets how long a fine-tune takes."""
    from tests.conftest import write_tiny_corpus
    from training.config import TrainConfig
    from training.trainer import train

    root.mkdir(parents=True, exist_ok=True)
    corpus = write_tiny_corpus(root / "corpus.txt", num_sentences=3000)
    config = TrainConfig(dim=dim, epochs=5, min_count=2, threads=1, seed=3)
    result = train([corpus], config, root / "base", progress=False, evaluate=False)
    return Path(result.bundle_path)


def default_model() -> Path:
    """/tmp/ft/default if present, else data/corpus trained into /tmp/rel/default."""
    for path in (DEFAULT_MODEL, TRAINED_MODEL):
        if (path / "manifest.json").is_file():
            return path
    repo = Path(__file__).resolve().parents[1]
    command = [*wordvec_command(), "train", str(repo / "data" / "corpus")]
    subprocess.run([*command, "--output", str(TRAINED_MODEL)], check=True)
    return TRAINED_MODEL


def vocabulary_words(bundle: Path, limit: int = 2000) -> list[str]:
    words = []
    with open(bundle / "vocabulary.tsv", encoding="utf-8") as f:
        for line in f:
            word = line.split("\t", 1)[0]
            if word.isalpha():
                words.append(word)
            if len(words) >= limit:
                break
    return words


def upload_text(
    words: list[str], tokens: int, seed: int = 1, new_words: int = 0
) -> bytes:
    """Sentences of `words` (about `tokens` of them); with `new_words`, that
    many invented words, each used five times, so the vocabulary grows."""
    rng = random.Random(seed)
    invented = [f"zq{i:05d}x" for i in range(new_words)] * 5
    rng.shuffle(invented)
    lines, count = [], 0
    while count < tokens or invented:
        sentence = [rng.choice(words) for _ in range(rng.randint(6, 12))]
        if invented:
            sentence[rng.randrange(len(sentence))] = invented.pop()
        lines.append(" ".join(sentence) + ".")
        count += len(sentence)
    return ("\n".join(lines) + "\n").encode()


def submit(api: httpx.Client, text: bytes, **settings: Any) -> httpx.Response:
    fields = {
        k: str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in settings.items()
    }
    return api.post(
        "/finetune", files={"file": ("upload.txt", text)}, data=fields, headers=AUTH
    )


def job(api: httpx.Client, job_id: str) -> dict[str, Any]:
    return dict(api.get(f"/jobs/{job_id}").json())


def wait_job(
    api: httpx.Client,
    job_id: str,
    done: Callable[[dict[str, Any]], bool],
    what: str,
    timeout: float = JOB_DEADLINE,
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        current = job(api, job_id)
        return current if done(current) else None

    return dict(wait_until(reached, timeout, what, 0.1))


def finished(j: dict[str, Any]) -> bool:
    return j["status"] in ("succeeded", "failed", "cancelled")


def job_ids(api: httpx.Client) -> set[str]:
    return {j["id"] for j in api.get("/jobs", params={"limit": 500}).json()["jobs"]}


def version_dirs(data_dir: Path) -> set[str]:
    return {p.name for p in (data_dir / "models").iterdir()}


def upload_files(data_dir: Path) -> set[str]:
    return {p.name for p in (data_dir / "uploads").iterdir()}


def served(api: httpx.Client, word: str) -> tuple[int, str | None]:
    response = api.get("/similar", params={"word": word, "k": 3})
    version = response.json().get("model_version") if response.is_success else None
    return response.status_code, version


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- fault scenarios ------------------------------------------------------------


def worker_killed_repeatedly(the_lab: Lab, words: list[str]) -> Outcome:
    """SIGKILL the worker mid-job on every attempt: the job is retried, then
    failed once its attempts are used up, and the next job still runs."""
    out = Outcome("worker_killed_repeatedly")
    attempts = int(the_lab.env["WORDVEC_JOB_MAX_ATTEMPTS"])
    server = the_lab.start_server()
    with server.client() as api:
        text = upload_text(words, LONG_JOB_TOKENS)
        long_job = submit(api, text, epochs=50, activate=False)
        job_id = long_job.json()["id"]
        kill_times = []
        for attempt in range(1, attempts + 1):
            worker = the_lab.start_worker(f"killed-{attempt}")
            wait_job(
                api,
                job_id,
                lambda j, n=attempt: (
                    j["attempts"] == n
                    and (j["progress"] or {}).get("stage") == "training"
                ),
                f"attempt {attempt} training",
            )
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            kill_times.append(time.monotonic())
        the_lab.start_worker("survivor")
        failed = wait_job(api, job_id, finished, "the job given up")
        out.figures["kill_to_failed_seconds"] = round(
            time.monotonic() - kill_times[-1], 1
        )
        out.expect(failed["status"] == "failed", f"job ended {failed['status']}")
        out.expect(failed["attempts"] == attempts, f"attempts {failed['attempts']}")
        out.expect("gave up" in (failed["error"] or ""), f"error {failed['error']}")
        out.expect(failed["result_version"] is None, "a killed job has a version")

        started = time.monotonic()
        text = upload_text(words, 3000, seed=2)
        next_id = submit(api, text, epochs=1, activate=False).json()["id"]
        after = wait_job(api, next_id, finished, "the next job")
        out.figures["next_job_seconds"] = round(time.monotonic() - started, 1)
        out.expect(after["status"] == "succeeded", f"next job {after['status']}")
        listed = {m["version"] for m in api.get("/models").json()["models"]}
        out.expect(
            version_dirs(the_lab.data_dir)
            == listed
            == {"base", after["result_version"]},
            f"models/ holds {sorted(version_dirs(the_lab.data_dir))}",
        )
        out.expect(served(api, words[0]) == (200, "base"), "base not served")
    out.figures["attempts"] = attempts
    return out


def api_killed_after_accept(the_lab: Lab, words: list[str]) -> Outcome:
    """SIGKILL the whole API right after its 202: after a restart the job is
    there, and a worker runs it."""
    out = Outcome("api_killed_after_accept")
    server = the_lab.start_server(workers=2)
    with server.client() as api:
        response = submit(api, upload_text(words, 3000), epochs=1, activate=False)
    server.kill()
    out.expect(response.status_code == 202, f"submit answered {response.status_code}")
    job_id = response.json()["id"]
    started = time.monotonic()
    server = the_lab.start_server(workers=2)
    out.figures["restart_seconds"] = round(time.monotonic() - started, 1)
    with server.client() as api:
        before = job(api, job_id)
        out.expect(before["status"] == "queued", f"after restart: {before['status']}")
        started = time.monotonic()
        the_lab.start_worker()
        after = wait_job(api, job_id, finished, "the accepted job")
        out.figures["job_seconds_after_restart"] = round(time.monotonic() - started, 1)
    out.expect(after["status"] == "succeeded", f"job {after['status']}: {after}")
    return out


def api_killed_mid_upload(the_lab: Lab, words: list[str]) -> Outcome:
    """SIGKILL the API while a slow upload streams in: after a restart there
    is no job for it and no temporary file left."""
    out = Outcome("api_killed_mid_upload")
    server = the_lab.start_server()
    with server.client() as api:
        jobs_before = job_ids(api)
    files_before = upload_files(the_lab.data_dir)
    line = upload_text(words, 20_000)
    stop = threading.Event()
    errors: list[str] = []

    def slow_body() -> Iterator[bytes]:
        while not stop.is_set():
            yield line[:65536]
            time.sleep(0.02)

    def post() -> None:
        try:
            httpx.post(
                f"{server.url}/finetune",
                content=slow_body(),
                headers={**AUTH, "Content-Type": "text/plain"},
                timeout=60,
            )
        except httpx.HTTPError as exc:
            errors.append(type(exc).__name__)

    sender = threading.Thread(target=post)
    sender.start()
    uploads = the_lab.data_dir / "uploads"
    partial = wait_until(
        lambda: [
            p for p in uploads.glob(".upload-*.tmp") if p.stat().st_size > 1 << 19
        ],
        30,
        "half an upload on disk",
    )
    server.kill()
    stop.set()
    sender.join(30)
    out.figures["bytes_received_before_kill"] = partial[0].stat().st_size
    out.expect(partial[0].exists(), "the crash left no temporary (test is moot)")
    out.expect(bool(errors), "the client saw no error from a killed server")
    server = the_lab.start_server()
    with server.client() as api:
        out.expect(job_ids(api) == jobs_before, "a job appeared for the upload")
    left = sorted(p.name for p in uploads.glob(".upload-*.tmp"))
    out.expect(left == [], f"temporaries left after restart: {left}")
    out.expect(upload_files(the_lab.data_dir) == files_before, "uploads/ changed")
    return out


def stopped_worker_is_fenced(the_lab: Lab, words: list[str]) -> Outcome:
    """SIGSTOP the worker running a job past its lease; another worker runs
    the job; after SIGCONT the stale one writes nothing and publishes nothing."""
    out = Outcome("stopped_worker_is_fenced")
    server = the_lab.start_server()
    workers = {}
    for name in ("worker-a", "worker-b"):
        process = the_lab.start_worker(name)
        workers[process.pid] = (name, process)
        the_lab.worker_ready(name, process.pid)
    with server.client() as api:
        text = upload_text(words, LONG_JOB_TOKENS)
        job_id = submit(api, text, epochs=50, activate=True).json()["id"]
        wait_job(
            api,
            job_id,
            lambda j: (j["progress"] or {}).get("stage") == "training",
            "first attempt training",
        )
        # The API does not show which worker runs a job; the table does.
        owner = the_lab.store.get(job_id).worker or ""
        pid = int(owner.rsplit(":", 1)[1])
        stale_name, stale = workers[pid]
        stale.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        wait_job(api, job_id, lambda j: j["attempts"] == 2, "second attempt")
        out.figures["takeover_seconds"] = round(time.monotonic() - stopped_at, 1)
        done = wait_job(api, job_id, finished, "second attempt finished")
        out.figures["job_done_after_stop_seconds"] = round(
            time.monotonic() - stopped_at, 1
        )
        stale.send_signal(signal.SIGCONT)
        stale_log = the_lab.logs / f"{stale_name}.log"
        wait_until(
            lambda: "lease lost" in stale_log.read_text(errors="replace"),
            60,
            "the resumed worker noticing its lost lease",
        )
        time.sleep(1.0)
        final = job(api, job_id)
        final_owner = the_lab.store.get(job_id).worker
        active = the_lab.registry.active_version()
    out.expect(done["status"] == "succeeded", f"job {done['status']}: {done['error']}")
    out.expect(final == done, "the job row changed after the stale worker resumed")
    out.expect(final_owner != owner, "the stale worker owns the job")
    out.expect(active == done["result_version"], f"active is {active}")
    out.expect(
        version_dirs(the_lab.data_dir) == {"base", done["result_version"]},
        f"models/ holds {sorted(version_dirs(the_lab.data_dir))}",
    )
    out.figures["attempts"] = final["attempts"]
    return out


def corrupt_versions_are_refused(the_lab: Lab, words: list[str]) -> Outcome:
    """Activate truncated and corrupt versions: each is refused, by the API
    and by the CLI, and the old version goes on answering every query, also
    after a restart while `active` names a damaged version."""
    out = Outcome("corrupt_versions_are_refused")
    base = the_lab.registry.get("base").path
    damages = {
        "truncated-vectors": lambda p: _truncate(p / "vectors.npy"),
        "truncated-index": lambda p: _truncate(_largest(p / "index")),
        "corrupt-manifest": lambda p: (p / "manifest.json").write_text("{nope"),
    }
    for version, damage in damages.items():
        damage(the_lab.registry.add(base, version=version).path)
    server = the_lab.start_server(workers=2)
    refused = []
    with fresh_connections(server.url) as api:
        for version in damages:
            response = api.post(f"/models/{version}/activate", headers=AUTH)
            refused.append(response.status_code)
            cli = subprocess.run(
                [*wordvec_command(), "models", "activate", version,
                 "--data-dir", str(the_lab.data_dir)],
                capture_output=True, text=True, env=the_lab._env(None), timeout=120,
            )  # fmt: skip
            out.expect(cli.returncode != 0, f"the CLI activated {version}")
            out.expect(
                the_lab.registry.active_version() == "base", f"{version} became active"
            )
        # Bypass every check, as a hand-written `active` would.
        (the_lab.data_dir / ".active.by-hand").write_text("truncated-vectors\n")
        os.replace(the_lab.data_dir / ".active.by-hand", the_lab.data_dir / "active")
        errors = wait_until(
            lambda: _health_errors(api, 2), 30, "both workers reporting the failure"
        )
        answers = [served(api, word) for word in words[:50]]
    # A restart (a crash, a scale-up) finds no model in the new workers: they
    # serve the last version a worker loaded and checked.
    server.kill()
    server = the_lab.start_server(workers=2)
    with fresh_connections(server.url) as api:
        after_restart = [served(api, word) for word in words[:50]]
        health = [api.get("/health").json() for _ in range(10)]
    out.figures["api_statuses"] = refused
    out.figures["queries_after_bad_activation"] = len(answers)
    out.figures["queries_after_restart"] = len(after_restart)
    out.expect(all(400 <= s < 500 for s in refused), f"API answered {refused}")
    out.expect(all(e for e in errors), "a worker hides the failed load")
    out.expect(answers == [(200, "base")] * len(answers), "a query failed or left base")
    out.expect(
        after_restart == [(200, "base")] * len(after_restart),
        "after a restart a query failed or left base",
    )
    out.expect(
        all(
            h["model_version"] == "base"
            and h["active_version"] == "truncated-vectors"
            and h["last_load_error"]
            for h in health
        ),
        "after a restart /health hides the fallback",
    )
    return out


def _truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _largest(directory: Path) -> Path:
    return max(directory.iterdir(), key=lambda p: p.stat().st_size)


def fresh_connections(url: str) -> httpx.Client:
    """A client that opens a connection per request, so that every server
    worker gets some (a kept-alive connection stays with one worker)."""
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.Client(base_url=url, timeout=30, limits=limits)


def _health_errors(api: httpx.Client, workers: int) -> list[str] | None:
    latest: dict[int, str | None] = {}
    for _ in range(20):
        body = api.get("/health").json()
        latest[body["worker_pid"]] = body["last_load_error"]
    if len(latest) < workers or not all(latest.values()):
        return None
    return [str(error) for error in latest.values()]


# -- disk full ----------------------------------------------------------------


@contextlib.contextmanager
def small_filesystem(path: Path, megabytes: int) -> Iterator[Path]:
    """Mount a tmpfs of `megabytes` at `path` (needs root and mount rights);
    raise OSError when it cannot be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        raise OSError(f"cannot mount a tmpfs at {path}: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill_to(directory: Path, free_bytes: int) -> Path:
    """Write DIRECTORY/filler until the filesystem has about `free_bytes` free."""
    stats = os.statvfs(directory)
    available = stats.f_bavail * stats.f_frsize
    filler = directory / "filler"
    with open(filler, "ab") as f:
        remaining = max(available - free_bytes, 0)
        while remaining > 0:
            block = min(remaining, 1 << 20)
            f.write(b"\0" * block)
            remaining -= block
    return filler


def _file_size_limiter(limit: int) -> Callable[[], None]:
    """A preexec_fn that caps each file the child writes at `limit` bytes."""

    def limit_file_size() -> None:
        # Past the cap the kernel sends SIGXFSZ, whose default kills the
        # process; ignored, the write fails with EFBIG instead, which the
        # server and worker treat as a full disk (ENOSPC).
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))

    return limit_file_size


@dataclass
class SmallDisk:
    """Where disk_full's data directory lives and how it runs out of room:
    a small tmpfs that gets filled up (`mounted`), or else a plain directory
    whose writers the lab starts with each file capped in size."""

    path: Path
    mounted: bool

    @property
    def how(self) -> str:
        return "tmpfs" if self.mounted else "RLIMIT_FSIZE"

    def leave_room(self, the_lab: Lab, free_bytes: int) -> None:
        """Make writes fail past about `free_bytes`: fill the tmpfs up to
        there now, or cap the files of the processes the lab starts next."""
        if self.mounted:
            fill_to(self.path, free_bytes)
        else:
            the_lab.file_size_limit = free_bytes

    def make_room(self, the_lab: Lab) -> None:
        """Undo `leave_room` (for processes started from now on, with a cap)."""
        (self.path / "filler").unlink(missing_ok=True)
        the_lab.file_size_limit = None


@contextlib.contextmanager
def small_disk(
    path: Path, megabytes: int, mount: bool | None = None
) -> Iterator[SmallDisk]:
    """A SmallDisk at `path`: a tmpfs of `megabytes` if `mount` is True, a
    capped directory if False, and whichever works here if None."""
    with contextlib.ExitStack() as stack:
        mounted = False
        if mount is not False:
            try:
                stack.enter_context(small_filesystem(path, megabytes))
                mounted = True
            except OSError:
                if mount:
                    raise
        path.mkdir(parents=True, exist_ok=True)
        yield SmallDisk(path, mounted)


def disk_full(
    root: Path, base_bundle: Path, words: list[str], mount: bool | None = None
) -> Outcome:
    """A data directory on a 64 MB tmpfs, filled up, or (without the rights
    to mount one, or with `mount=False`) served by processes that may not
    write a file past the room left: an upload that does not fit gets 507
    and leaves nothing; a job whose bundle does not fit fails with the
    reason and leaves nothing visible; serving goes on."""
    out = Outcome("disk_full")
    with small_disk(root / "disk", 64, mount) as disk:
        out.figures["disk"] = disk.how
        the_lab = Lab(disk.path / "data", root / "disk-logs")
        add_base(the_lab.data_dir, base_bundle)
        try:
            _disk_full_upload(the_lab, disk, words, out)
            _disk_full_bundle(the_lab, disk, words, out)
        finally:
            the_lab.close()
    return out


def _disk_full_upload(
    the_lab: Lab, disk: SmallDisk, words: list[str], out: Outcome
) -> None:
    text = upload_text(words, 200_000)
    if disk.mounted:
        server = the_lab.start_server()
        disk.leave_room(the_lab, len(text) // 2)
    else:
        # A cap holds for the processes started after it is set.
        disk.leave_room(the_lab, len(text) // 2)
        server = the_lab.start_server()
    with server.client() as api:
        jobs_before, files_before = job_ids(api), upload_files(the_lab.data_dir)
        response = submit(api, text)
        out.figures["upload_status"] = response.status_code
        out.expect(response.status_code == 507, f"upload got {response.status_code}")
        out.expect(
            response.headers.get("content-type") == "application/problem+json",
            "no problem body",
        )
        out.expect(job_ids(api) == jobs_before, "a job row for the refused upload")
        out.expect(
            upload_files(the_lab.data_dir) == files_before, "upload file left behind"
        )
        out.expect(served(api, words[0]) == (200, "base"), "serving stopped")
    disk.make_room(the_lab)
    if not disk.mounted:
        # The capped server would refuse the next upload too: replace it.
        server.stop()
        the_lab.start_server()


def _disk_full_bundle(
    the_lab: Lab, disk: SmallDisk, words: list[str], out: Outcome
) -> None:
    server = the_lab.servers[-1]
    with server.client() as api:
        # Thousands of new words make the new bundle megabytes, the base's KB.
        text = upload_text(words, 20_000, new_words=8000)
        response = submit(api, text, epochs=1, min_count=2, activate=True)
        out.expect(response.status_code == 202, f"submit got {response.status_code}")
        job_id = response.json()["id"]
        disk.leave_room(the_lab, 1 << 20)
        the_lab.start_worker()
        failed = wait_job(api, job_id, finished, "the job on a full disk")
        out.figures["job_error"] = failed["error"]
        out.figures["job_attempts"] = failed["attempts"]
        out.expect(failed["status"] == "failed", f"job {failed['status']}")
        out.expect(
            "ran out of space" in (failed["error"] or ""), f"error {failed['error']}"
        )
        out.expect(version_dirs(the_lab.data_dir) == {"base"}, "a new version")
        staging = list((the_lab.data_dir / "staging").iterdir())
        out.expect(staging == [], f"staging/ holds {staging}")
        out.expect(the_lab.registry.active_version() == "base", "active changed")
        out.expect(served(api, words[0]) == (200, "base"), "serving stopped")


# -- load ---------------------------------------------------------------------


@dataclass
class Sample:
    start: float
    end: float
    status: int
    version: str | None
    pid: str | None


async def _client_loop(
    client: httpx.AsyncClient,
    words: list[str],
    seed: int,
    until: Callable[[], bool],
    samples: list[Sample],
    errors: list[str],
    request: Callable[[httpx.AsyncClient, str], Any],
) -> None:
    rng = random.Random(seed)
    while not until():
        start = time.monotonic()
        try:
            response = await request(client, rng.choice(words))
        except httpx.HTTPError as exc:
            errors.append(repr(exc))
            continue
        version = None
        if response.status_code == 200:
            version = response.json().get("model_version")
        samples.append(
            Sample(
                start,
                time.monotonic(),
                response.status_code,
                version,
                response.headers.get("x-worker-pid"),
            )
        )


def run_load(
    url: str,
    words: list[str],
    concurrency: int,
    until: Callable[[], bool],
    request: Callable[[httpx.AsyncClient, str], Any] | None = None,
) -> tuple[list[Sample], list[str]]:
    """Run `concurrency` clients against `url` until `until()`; return every
    response's sample and every transport error."""
    request = request or (lambda c, w: c.get("/similar", params={"word": w, "k": 10}))
    samples: list[Sample] = []
    errors: list[str] = []

    async def main() -> None:
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as c:
            await asyncio.gather(
                *(
                    _client_loop(c, words, i, until, samples, errors, request)
                    for i in range(concurrency)
                )
            )

    asyncio.run(main())
    return samples, errors


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def backwards_steps(samples: list[Sample], rank: dict[str, int]) -> list[str]:
    """Return the responses that show a worker going back to an older version:
    a request that started after the same worker had answered from a newer
    version, yet was answered from an older one."""
    found = []
    by_worker: dict[str | None, list[Sample]] = defaultdict(list)
    for sample in samples:
        if sample.version is not None:
            by_worker[sample.pid].append(sample)
    for pid, answers in by_worker.items():
        answers.sort(key=lambda s: s.end)
        ends = [s.end for s in answers]
        newest_so_far = []
        newest = -1
        for sample in answers:
            newest = max(newest, rank.get(sample.version or "", -1))
            newest_so_far.append(newest)
        for sample in answers:
            before = bisect.bisect_left(ends, sample.start)
            if (
                before
                and rank.get(sample.version or "", -1) < newest_so_far[before - 1]
            ):
                found.append(f"worker {pid}: {sample.version} at {sample.start:.3f}")
    return found


def load_with_switches(
    the_lab: Lab, words: list[str], seconds: float, concurrency: int, upload_tokens: int
) -> Outcome:
    """/similar at `concurrency` for at least `seconds` while a fine-tune runs
    and two versions are activated: no request fails, no worker goes back."""
    out = Outcome("load_with_switches")
    base = the_lab.registry.get("base").path
    the_lab.registry.add(base, version="alternate")
    server = the_lab.start_server(workers=2)
    the_lab.start_worker()
    started = time.monotonic()
    activations: dict[str, float] = {"base": 0.0}
    state: dict[str, Any] = {"job": None}

    def drive() -> None:
        # The fine-tune first (it takes longest), then the hand activation.
        with server.client(timeout=60) as api:
            time.sleep(seconds * 0.1)
            text = upload_text(words, upload_tokens, seed=5)
            job_id = submit(api, text, epochs=1, activate=True).json()["id"]
            time.sleep(seconds * 0.2)
            api.post("/models/alternate/activate", headers=AUTH).raise_for_status()
            activations["alternate"] = time.monotonic()
            done = wait_job(api, job_id, finished, "the fine-tune under load")
            activations.setdefault(str(done["result_version"]), time.monotonic())
            if done["status"] == "succeeded":
                activations[str(done["result_version"])] = _activated_at(done, started)
            state["job"] = done

    driver = threading.Thread(target=drive)
    driver.start()
    samples, errors = run_load(
        server.url,
        words,
        concurrency,
        lambda: time.monotonic() - started > seconds and state["job"] is not None,
    )
    driver.join(60)
    elapsed = time.monotonic() - started
    rank = {
        v: i for i, v in enumerate(sorted(activations, key=activations.__getitem__))
    }
    backwards = backwards_steps(samples, rank)
    failed = [s for s in samples if s.status != 200]
    latencies = [s.end - s.start for s in samples]
    done = state["job"] or {}
    out.figures.update(
        seconds=round(elapsed, 1),
        concurrency=concurrency,
        requests=len(samples) + len(errors),
        failed=len(failed) + len(errors),
        requests_per_second=round(len(samples) / elapsed, 1),
        p50_ms=_ms(percentile(latencies, 50)),
        p99_ms=_ms(percentile(latencies, 99)),
        max_ms=_ms(max(latencies, default=None)),
        versions_served=sorted({s.version or "" for s in samples}, key=rank.get),
        versions_backwards=len(backwards),
        workers=len({s.pid for s in samples}),
        finetune_status=done.get("status"),
        finetune_seconds=_job_seconds(done),
        load_average=load_average(),
    )
    out.expect(not errors, f"transport errors: {errors[:3]}")
    out.expect(not failed, f"non-200: {[s.status for s in failed][:10]}")
    out.expect(not backwards, f"versions went back: {backwards[:3]}")
    out.expect(done.get("status") == "succeeded", f"fine-tune {done.get('status')}")
    # Some seconds after the last activation, every answer is from it.
    final = max(activations, key=activations.__getitem__)
    tail = {s.version for s in samples if s.start > activations[final] + 3}
    out.figures["last_activated"] = final
    out.expect(tail <= {final}, f"still answering from {tail} after {final}")
    return out


def _activated_at(done: dict[str, Any], started_monotonic: float) -> float:
    # The job's finished_at is wall time; map it onto the monotonic clock.
    finished_at = done.get("finished_at")
    if finished_at is None:
        return time.monotonic()
    stamp = _epoch(finished_at)
    return time.monotonic() - (time.time() - stamp)


def _epoch(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    from datetime import datetime

    return datetime.fromisoformat(str(value)).timestamp()


def _job_seconds(done: dict[str, Any]) -> float | None:
    if not done.get("started_at") or not done.get("finished_at"):
        return None
    return round(_epoch(done["finished_at"]) - _epoch(done["started_at"]), 1)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def overload(
    the_lab: Lab,
    words: list[str],
    seconds: float,
    limit: int,
    baseline: bool = False,
) -> Outcome:
    """64 clients of heavy POST /similar batches against one worker that
    takes `limit` at once: the rest get 503 with Retry-After, nothing piles
    up, and the service is healthy afterwards. With `baseline`, the same
    load first runs against a server without the limit, for comparison."""
    out = Outcome("overload")
    if baseline:
        unlimited = {"WORDVEC_MAX_CONCURRENT_REQUESTS": "1000000"}
        server = the_lab.start_server(workers=1, extra_env=unlimited)
        figures, _ = _heavy_load(server, words, seconds)
        server.stop()
        out.figures["without_limit"] = figures
    env = {"WORDVEC_MAX_CONCURRENT_REQUESTS": str(limit)}
    server = the_lab.start_server(workers=1, extra_env=env)
    figures, statuses = _heavy_load(server, words, seconds)
    recovered = time.monotonic()
    with server.client() as api:
        health = api.get("/health").status_code
        query = served(api, words[0])
        metrics = api.get("/metrics").text
    figures["healthy_after_seconds"] = round(time.monotonic() - recovered, 2)
    out.figures.update(limit=limit, with_limit=figures, load_average=load_average())
    out.expect(not figures["transport_errors"], "transport errors")
    out.expect(set(statuses) <= {200, 503}, f"statuses {dict(statuses)}")
    out.expect(statuses[503] > 0, "nothing was shed; the limit was never reached")
    out.expect(statuses[200] > 0, "nothing was answered")
    out.expect(health == 200 and query == (200, "base"), "unhealthy afterwards")
    out.expect("wordvec_http_requests_total" in metrics, "no request metrics")
    return out


def _heavy_load(
    server: Server, words: list[str], seconds: float
) -> tuple[dict[str, Any], dict[int, int]]:
    batch = (words * 100)[:200]

    def heavy(client: httpx.AsyncClient, _: str) -> Any:
        return client.post("/similar", json={"words": batch, "k": 50})

    started = time.monotonic()
    samples, errors = run_load(
        server.url, words, 64, lambda: time.monotonic() - started > seconds, heavy
    )
    elapsed = time.monotonic() - started
    statuses: dict[int, int] = defaultdict(int)
    for sample in samples:
        statuses[sample.status] += 1
    shed = [s.end - s.start for s in samples if s.status == 503]
    answered = [s.end - s.start for s in samples if s.status == 200]
    figures = {
        "requests": len(samples) + len(errors),
        "statuses": dict(statuses),
        "transport_errors": len(errors),
        "transport_error_kinds": sorted(set(errors))[:3],
        "answered_per_second": round(len(answered) / elapsed, 1),
        "answered_p50_ms": _ms(percentile(answered, 50)),
        "answered_p99_ms": _ms(percentile(answered, 99)),
        "shed_p50_ms": _ms(percentile(shed, 50)),
        "shed_p99_ms": _ms(percentile(shed, 99)),
        "server_peak_rss_mb": _peak_rss_mb(server),
    }
    return figures, statuses


def _peak_rss_mb(server: Server) -> float:
    # The single uvicorn worker is the supervisor's only child.
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    pids = [int(p) for p in children.read_text().split()] or [server.process.pid]
    return round(_memory_kb(pids[0])["VmHWM"] / 1024, 1)


def _memory_kb(pid: int) -> dict[str, int]:
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


def upload_memory(the_lab: Lab, megabytes: int) -> Outcome:
    """Stream a `megabytes` text upload into the API (chunked, no length
    given) and compare the worker's peak resident memory (VmHWM) before and
    after: it must not grow with the upload. No job worker runs, so the
    accepted job stays queued."""
    out = Outcome("upload_memory")
    limit = str((megabytes + 2) * 1_000_000)
    server = the_lab.start_server(extra_env={"WORDVEC_MAX_UPLOAD_BYTES": limit})
    chunk = b"stream of many words\n" * 50_000

    def body(total: int) -> Iterator[bytes]:
        sent = 0
        while sent < total:
            piece = chunk[: min(len(chunk), total - sent)]
            sent += len(piece)
            yield piece

    with server.client(timeout=600) as api:
        pid = api.get("/health").json()["worker_pid"]
        headers = {**AUTH, "Content-Type": "text/plain"}
        warm = api.post("/finetune", content=body(4_000_000), headers=headers)
        before = _memory_kb(pid)
        started = time.monotonic()
        response = api.post(
            "/finetune", content=body(megabytes * 1_000_000), headers=headers
        )
        seconds = time.monotonic() - started
        after = _memory_kb(pid)
    growth_mb = (after["VmHWM"] - before["VmHWM"]) / 1024
    out.figures.update(
        upload_mb=megabytes,
        seconds=round(seconds, 1),
        rss_before_mb=round(before["VmRSS"] / 1024, 1),
        peak_before_mb=round(before["VmHWM"] / 1024, 1),
        peak_after_mb=round(after["VmHWM"] / 1024, 1),
        peak_growth_mb=round(growth_mb, 1),
        load_average=load_average(),
    )
    out.expect(warm.status_code == 202, f"warm-up upload got {warm.status_code}")
    out.expect(response.status_code == 202, f"upload got {response.status_code}")
    if response.status_code == 202:
        stored = list((the_lab.data_dir / "uploads").glob(response.json()["id"] + "*"))
        size = stored[0].stat().st_size if stored else 0
        out.expect(size == megabytes * 1_000_000, f"stored {size} bytes")
    out.expect(growth_mb < 32, f"peak memory grew {growth_mb:.1f} MB")
    left = list((the_lab.data_dir / "uploads").glob(".upload-*.tmp"))
    out.expect(left == [], f"temporaries left: {left}")
    return out


# -- the command ----------------------------------------------------------------

SCENARIOS = (
    "worker_killed_repeatedly",
    "api_killed_after_accept",
    "api_killed_mid_upload",
    "stopped_worker_is_fenced",
    "disk_full",
    "corrupt_versions_are_refused",
    "load_with_switches",
    "overload",
    "upload_memory",
)


def run_all(args: argparse.Namespace) -> list[Outcome]:
    root = Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    tiny = tiny_base_bundle(root / "tiny")
    tiny_words = vocabulary_words(tiny)
    outcomes = []
    for name in args.only or SCENARIOS:
        print(f"== {name} (load {load_average()})", flush=True)
        started = time.monotonic()
        try:
            outcome = _run_one(name, root, tiny, tiny_words, args)
        except Exception as exc:
            outcome = Outcome(name, failed_checks=[f"did not run: {exc}"])
        outcome.figures.setdefault("load_average", load_average())
        outcome.figures["scenario_seconds"] = round(time.monotonic() - started, 1)
        print(json.dumps(asdict_outcome(outcome), indent=1), flush=True)
        outcomes.append(outcome)
    return outcomes


def _run_one(
    name: str, root: Path, tiny: Path, words: list[str], args: argparse.Namespace
) -> Outcome:
    if name == "disk_full":
        return disk_full(root, tiny, words)
    base = tiny
    if name in ("load_with_switches", "overload", "upload_memory"):
        base = default_model()
        words = vocabulary_words(base, 5000)
    with lab(root, base, name) as the_lab:
        if name == "load_with_switches":
            return load_with_switches(
                the_lab, words, args.load_seconds, args.concurrency, 20_000
            )
        if name == "overload":
            return overload(the_lab, words, args.overload_seconds, 8, baseline=True)
        if name == "upload_memory":
            return upload_memory(the_lab, args.upload_mb)
        scenario: Callable[[Lab, list[str]], Outcome] = globals()[name]
        return scenario(the_lab, words)


def asdict_outcome(outcome: Outcome) -> dict[str, Any]:
    return {
        "scenario": outcome.scenario,
        "passed": not outcome.failed_checks,
        "failed_checks": outcome.failed_checks,
        "figures": outcome.figures,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", nargs="*", choices=SCENARIOS, help="scenarios to run (default: all)"
    )
    parser.add_argument(
        "--workdir", default="/tmp/rel/run", help="scratch directory (emptied first)"
    )
    parser.add_argument("--json", type=Path, help="also write the outcomes here")
    parser.add_argument(
        "--load-seconds", type=float, default=60.0, help="length of the switch load"
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="clients of the switch load"
    )
    parser.add_argument(
        "--overload-seconds", type=float, default=20.0, help="length of the overload"
    )
    parser.add_argument(
        "--upload-mb", type=int, default=200, help="size of the streamed upload"
    )
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    outcomes = run_all(args)
    report = {
        "load_average_at_end": load_average(),
        "cores": os.cpu_count(),
        "outcomes": [asdict_outcome(o) for o in outcomes],
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print("\nsummary:")
    for outcome in outcomes:
        mark = "ok  " if not outcome.failed_checks else "FAIL"
        print(f"  {mark} {outcome.scenario}: {outcome.failed_checks or ''}")
    return 0 if all(not o.failed_checks for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
