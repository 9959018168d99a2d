"""HTTP load test of `wordvec serve`: throughput and latency of GET /similar
against the no-op GET /health/live of the same server in the same run, and
the resident memory of the worker processes with 1 and with N workers.

    .venv/bin/python benchmarks/http_load.py [--bundle DIR] [--duration 20]

Without --bundle it writes a synthetic bundle (50,000 words, dim 100,
random vectors: search cost depends on the sizes, not on the values). The
load generator is wrk (`apt-get install -y wrk`), run on the same machine,
so it competes with the server for cores: compare the ratios of one run,
not absolute figures across machines.
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from index.build import IndexConfig, build_index
from training.bundle import load_bundle, write_bundle
from training.vocabulary import Vocabulary

WRK_SCRIPT = """
local words = {%(words)s}
local thread_id = 0
setup = function(thread) thread:set("id", thread_id); thread_id = thread_id + 1 end
init = function(args) counter = (id or 0) * 7919 end
request = function()
  if path == nil then return wrk.format("GET") end
  counter = counter + 1
  return wrk.format("GET", path .. words[(counter %% #words) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %%d, "seconds": %%f, "non_2xx": %%d, "socket_errors": %%d, ' ..
    '"p50_ms": %%f, "p90_ms": %%f, "p99_ms": %%f}\\n',
    summary.requests, summary.duration / 1e6, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3))
end
"""


def synthetic_bundle(
    directory: Path, vocab_size: int, dim: int, index_kind: str = "auto"
) -> Path:
    """Write a bundle of random vectors with pseudo-words and Zipf counts, and
    its index."""
    rng = np.random.default_rng(0)
    syllables = ["ka", "lo", "mi", "ren", "tu", "sa", "vel", "or", "ni", "pe", "dra"]
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < vocab_size:
        word = "".join(rng.choice(syllables, size=rng.integers(2, 7)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    counts = np.ceil(vocab_size / np.arange(1, vocab_size + 1)).astype(np.int64)
    vectors = rng.standard_normal((vocab_size, dim)).astype(np.float32)
    name = f"synthetic-{vocab_size}"
    manifest = {"version": name, "source": "imported", "config": None}
    bundle = write_bundle(
        directory / name,
        vocabulary=Vocabulary(words, counts),
        vectors=vectors,
        manifest=manifest,
    )
    # What `wordvec index` builds; "auto" is flat at 50k x 100 (exact search
    # over the memory-mapped normalised vectors).
    build_index(bundle, IndexConfig(kind=index_kind))
    return bundle


def index_kind_of(bundle: Path) -> str:
    """Return the kind of the bundle's index, or what the server falls back to."""
    info = bundle / "index" / "index.json"
    if not info.is_file():
        return "none (exact search built at load)"
    return str(json.loads(info.read_text())["kind"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    bundle: Path, workers: int, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `wordvec serve` without access log and return it once /health is 200."""
    port = free_port()
    command = [sys.executable, "-m", "app.cli", "--log-level", "WARNING", "serve"]
    command += [str(bundle), "--port", str(port), "--workers", str(workers)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORDVEC_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [*command, "--no-access-log"], stdout=out, stderr=out, env=env,
            cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"server exited early, see {log}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                # Every worker must be up before a measurement, not just one.
                time.sleep(2 if workers > 1 else 0.2)
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    sys.exit(f"server not ready after 120 s, see {log}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def worker_pids(server_pid: int, workers: int) -> list[int]:
    """Return the pids that run the app: the server itself with one worker,
    else its children started by multiprocessing spawn (not its resource tracker)."""
    if workers == 1:
        return [server_pid]
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, IndexError):
            continue
        if ppid == server_pid and b"resource_tracker" not in cmdline:
            pids.append(int(entry.name))
    return pids


def memory_kib(pids: list[int]) -> dict[str, int]:
    """Sum Rss, Pss, Pss_Anon and Pss_File (KiB) of `pids` from smaps_rollup."""
    totals = dict.fromkeys(("Rss", "Pss", "Pss_Anon", "Pss_File"), 0)
    for pid in pids:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        for key in totals:
            match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
            totals[key] += int(match.group(1)) if match else 0
    return totals


def warm_up(url: str, words: list[str], requests: int) -> None:
    """Send `requests` /similar queries so every worker touches its index."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(requests):
            client.get("/similar", params={"word": words[i % len(words)], "k": 10})


def run_wrk(
    url: str, path: str | None, words: list[str], args: Any, concurrency: int
) -> dict[str, Any]:
    """Run wrk for `args.duration` s on `path` plus a word (or on the no-op
    endpoint when `path` is None) and return its summary."""
    quoted = ",".join(f'"{urllib.parse.quote(w)}"' for w in words)
    script = args.work / "load.lua"
    script.write_text(
        f"path = {json.dumps(path) if path else 'nil'}\n"
        + WRK_SCRIPT % {"words": quoted}
    )
    target = url + ("/similar" if path else "/health/live")
    threads = min(args.wrk_threads, concurrency)
    command = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{args.duration}s"]
    command += ["--timeout", "10s", "-s", str(script), target]
    output = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next(x for x in output.stdout.splitlines() if x.startswith("WRK "))
    result: dict[str, Any] = json.loads(line[4:])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def measure_memory(
    bundle: Path, workers: int, words: list[str], log: Path
) -> dict[str, Any]:
    process, url = start_server(bundle, workers, log)
    try:
        warm_up(url, words, 200 * workers)
        pids = worker_pids(process.pid, workers)
        return {
            "bundle": bundle.name,
            "workers": workers,
            "pids": len(pids),
            **memory_kib(pids),
        }
    finally:
        stop_server(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bundle", type=Path, help="bundle to serve (default: synthetic)"
    )
    parser.add_argument(
        "--vocab-size", type=int, default=50_000, help="synthetic words"
    )
    parser.add_argument("--dim", type=int, default=100, help="synthetic dimensions")
    parser.add_argument(
        "--index-kind", default="auto", help="index of the synthetic bundle"
    )
    parser.add_argument("--workers", type=int, default=2, help="workers under load")
    parser.add_argument("--duration", type=int, default=20, help="seconds per load run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument(
        "--distinct-words", type=int, default=20_000, help="query words to cycle"
    )
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--output", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

    work = args.work = Path(tempfile.mkdtemp(prefix="wordvec-bench-"))
    log = work / "server.log"
    try:
        bundle = args.bundle or synthetic_bundle(
            work, args.vocab_size, args.dim, args.index_kind
        )
        vocabulary = load_bundle(bundle).vocabulary
        # Uniform over the vocabulary, so most queries miss VectorIndex's
        # neighbour cache (4,096 lists) and the figures measure searches.
        rng = np.random.default_rng(1)
        picks = rng.integers(0, len(vocabulary), size=args.distinct_words)
        words = [vocabulary.words[i] for i in picks]
        results: dict[str, Any] = {
            "bundle": str(bundle),
            "vocab_size": len(vocabulary),
            "index": index_kind_of(bundle),
        }
        # A 100-word bundle gives the memory of the processes themselves
        # (Python, FastAPI, FAISS); what the big bundle adds is its vectors.
        tiny = synthetic_bundle(work, 100, args.dim, args.index_kind)
        tiny_words = load_bundle(tiny).vocabulary.words
        results["memory"] = [
            measure_memory(b, w, ws, log)
            for b, ws in ((tiny, tiny_words), (bundle, words))
            for w in (1, args.workers)
        ]
        process, url = start_server(bundle, args.workers, log)
        try:
            warm_up(url, words, 400)
            runs = []
            for concurrency in args.concurrency:
                for name, path in (("noop", None), ("similar", "/similar?k=10&word=")):
                    run = run_wrk(url, path, words, args, concurrency)
                    runs.append({"endpoint": name, "concurrency": concurrency, **run})
                    print_run(runs[-1])
            results["load"] = runs
        finally:
            stop_server(process)
        report(results)
        if args.output:
            args.output.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_run(run: dict[str, Any]) -> None:
    print(
        f"{run['endpoint']:>8} c={run['concurrency']:<3} {run['rps']:8.0f} req/s  "
        f"p50 {run['p50_ms']:6.2f} ms  p99 {run['p99_ms']:6.2f} ms  "
        f"non-2xx {run['non_2xx']}  socket errors {run['socket_errors']}",
        flush=True,
    )


def report(results: dict[str, Any]) -> None:
    print(
        f"\nbundle {results['bundle']}: {results['vocab_size']:,} words, "
        f"index {results['index']}"
    )
    for m in results["memory"]:
        print(
            f"memory, {m['bundle']}, {m['workers']} worker(s) ({m['pids']} processes): "
            f"RSS {m['Rss'] / 1024:.0f} MiB, PSS {m['Pss'] / 1024:.0f} MiB "
            f"(anonymous {m['Pss_Anon'] / 1024:.0f}, file {m['Pss_File'] / 1024:.0f})"
        )
    tiny_one, tiny_many, one, many = results["memory"]
    vectors_one = one["Pss"] - tiny_one["Pss"]
    vectors_many = many["Pss"] - tiny_many["Pss"]
    print(
        f"PSS the vectors add: {vectors_one / 1024:.0f} MiB with 1 worker, "
        f"{vectors_many / 1024:.0f} MiB with {many['workers']} "
        f"(ratio {vectors_many / max(vectors_one, 1):.2f}); whole servers: "
        f"ratio {many['Pss'] / one['Pss']:.2f}"
    )
    by_key = {(r["endpoint"], r["concurrency"]): r for r in results["load"]}
    for (endpoint, concurrency), run in by_key.items():
        if endpoint == "similar":
            share = run["rps"] / by_key[("noop", concurrency)]["rps"]
            print(f"c={concurrency}: /similar at {share:.0%} of the no-op ceiling")


if __name__ == "__main__":
    main()
