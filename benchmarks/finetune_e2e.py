"""Fine-tune end to end under load: from `POST /finetune` to every server
worker answering from the new version, while clients keep querying /similar.

    .venv/bin/python benchmarks/finetune_e2e.py [--base models/default]
        [--size-mb 1] [--workers 2] [--concurrency 16] [--json OUT]

Starts real processes on a fresh data directory: `wordvec serve --data-dir`
with N uvicorn workers and one `wordvec worker`. Clients query GET /similar
for frequent words at a fixed concurrency during the whole run and record
every answer's status, latency and model_version. Then it submits an upload
(the first N MB of Debian documentation, as benchmarks/finetune_time.py cuts
it), waits for the job, and keeps the load on until the new version has
answered alone for a few seconds. It then activates the base version again
(a rollback) and waits for that switch too.

Reported: the job's stages (queued, training, index, publish), seconds from
submission to the job's success and to the last answer from the old version
(every worker switched), failed requests (any non-200 or transport error)
and latency percentiles during the run.
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from finetune_time import DEFAULT_TEXT, source_text  # noqa: E402

from training.bundle import load_bundle  # noqa: E402

WORDVEC = [sys.executable, "-m", "app.cli"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default=str(ROOT / "models" / "default"), help="bundle")
    p.add_argument("--size-mb", type=float, default=1.0, help="upload size")
    p.add_argument("--workers", type=int, default=2, help="uvicorn workers")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    p.add_argument("--port", type=int, default=8790)
    p.add_argument("--json", default=None, help="also write the results here")
    return p.parse_args(argv)


class Load(threading.Thread):
    """Clients querying /similar at a fixed concurrency until stopped."""

    def __init__(self, url: str, words: list[str], concurrency: int) -> None:
        super().__init__(daemon=True)
        self.url, self.words, self.concurrency = url, words, concurrency
        self.records: list[tuple[float, int, float, str | None]] = []
        self.stopping = False

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=30) as c:
            await asyncio.gather(*(self._client(c, i) for i in range(self.concurrency)))

    async def _client(self, client: httpx.AsyncClient, seed: int) -> None:
        rng = random.Random(seed)
        while not self.stopping:
            word = rng.choice(self.words)
            started = time.perf_counter()
            try:
                r = await client.get("/similar", params={"word": word, "k": 10})
                version = (
                    r.json().get("model_version") if r.status_code == 200 else None
                )
                status = r.status_code
            except httpx.HTTPError:
                status, version = -1, None
            self.records.append(
                (started, status, time.perf_counter() - started, version)
            )

    def since(self, t: float) -> list[tuple[float, int, float, str | None]]:
        return [r for r in self.records if r[0] >= t]


def start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "wb") as f:
        return subprocess.Popen(
            [*WORDVEC, *args], stdout=f, stderr=f, env=env, cwd=ROOT
        )


def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server at {url} not ready after {timeout} s")


def wait_switch(load: Load, version: str, since: float, quiet: float = 3.0) -> float:
    """Wait until only `version` has answered for `quiet` s; return the time
    of the last answer from another version (or `since` if there was none)."""
    while True:
        time.sleep(0.5)
        records = load.since(since)
        others = [r[0] for r in records if r[1] == 200 and r[3] != version]
        last_other = max(others, default=since)
        if (
            any(r[3] == version for r in records)
            and time.perf_counter() - last_other > quiet
        ):
            return last_other


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return (
        values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = Path(args.base)
    if not (base / "manifest.json").is_file():
        raise SystemExit(f"no bundle at {base}; train it first with `make run`")
    text = source_text(DEFAULT_TEXT)
    # The first N MB, cut at a line end; Debian's files are not all UTF-8.
    cut = text.rfind(b"\n", 0, int(args.size_mb * 1_000_000)) + 1
    upload = text[:cut].decode("utf-8", errors="replace").encode()
    words = load_bundle(base).vocabulary.words[100:2100]
    work = Path(tempfile.mkdtemp(prefix="wordvec-ft-e2e-"))
    data = work / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORDVEC_")}
    env["WORDVEC_MAX_UPLOAD_BYTES"] = str(max(len(upload) + 1, 50_000_000))
    url = f"http://127.0.0.1:{args.port}"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        t = time.perf_counter()
        subprocess.run(
            [*WORDVEC, "models", "add", str(base), "--data-dir", str(data),
             "--version", "base", "--activate"],
            check=True, cwd=ROOT, env=env, capture_output=True,
        )  # fmt: skip
        add_seconds = time.perf_counter() - t
        processes.append(start(
            ["serve", "--data-dir", str(data), "--workers", str(args.workers),
             "--port", str(args.port), "--no-access-log"], work / "serve.log", env,
        ))  # fmt: skip
        processes.append(
            start(["worker", "--data-dir", str(data)], work / "worker.log", env)
        )
        wait_ready(url)
        load = Load(url, words, args.concurrency)
        load.start()
        time.sleep(3)
        submitted = time.perf_counter()
        r = httpx.post(
            f"{url}/finetune",
            content=upload,
            headers={"Content-Type": "text/plain"},
            timeout=120,
        )
        r.raise_for_status()
        accepted = time.perf_counter()
        job_id = r.json()["id"]
        stages: dict[str, float] = {}
        while True:
            job = httpx.get(f"{url}/jobs/{job_id}", timeout=30).json()
            stage = job["progress"].get("stage") or job["status"]
            stages.setdefault(stage, time.perf_counter() - submitted)
            if job["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.1)
        succeeded = time.perf_counter()
        if job["status"] != "succeeded":
            raise SystemExit(f"job {job['status']}: {job['error']}")
        new_version = job["result_version"]
        switched = wait_switch(load, new_version, submitted)
        rollback_at = time.perf_counter()
        httpx.post(f"{url}/models/base/activate", timeout=120).raise_for_status()
        rolled_back = wait_switch(load, "base", rollback_at)
        load.stopping = True
        load.join()
        records = load.since(submitted)
        failed = [r for r in records if r[1] != 200]
        latencies = [r[2] * 1000 for r in records if r[1] == 200]
        result: dict[str, Any] = {
            "upload_bytes": len(upload),
            "upload_tokens": job["upload"]["tokens"],
            "workers": args.workers,
            "concurrency": args.concurrency,
            "models_add_seconds": round(add_seconds, 2),
            "accept_seconds": round(accepted - submitted, 2),
            "stage_started_at": {k: round(v, 2) for k, v in stages.items()},
            "job_seconds": round(succeeded - submitted, 2),
            "served_everywhere_seconds": round(switched - submitted, 2),
            "rollback_seconds": round(rolled_back - rollback_at, 2),
            "new_words": job["new_word_count"],
            "requests": len(records),
            "failed_requests": len(failed),
            "p50_ms": round(percentile(latencies, 0.5), 2),
            "p99_ms": round(percentile(latencies, 0.99), 2),
            "evaluation_before": job["evaluation_before"],
            "evaluation_after": job["evaluation_after"],
            "load_average": os.getloadavg(),
        }
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
