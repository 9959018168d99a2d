"""HTTP load test of the API server: throughput, latency and the workers'
CPU time per request (which other load on the machine disturbs less) of
GET /similar against the no-op GET /health/live of the same server in the
same run, for each bundle and each server stack (uvicorn's uvloop +
httptools, "auto", as `wordvec serve` runs it, and plain asyncio + h11); the
resident memory of the worker processes with 1 and with N workers; and the
cost of the hot path's vocabulary lookups in-process.

    .venv/bin/python benchmarks/http_load.py [--bundle DIR] [--dims 100 300]
        [--stacks auto asyncio-h11] [--compare-no-lists] [--duration 20]

Without --bundle it writes synthetic bundles (50,000 words of each --dims,
random vectors: search cost depends on the sizes, not on the values), with
the precomputed neighbour lists `wordvec index` builds; --compare-no-lists
adds the first of them without lists, so /similar searches. Query words are
drawn uniformly from the vocabulary. The load generator is wrk
(`apt-get install -y wrk`), run on the same machine, so it competes with the
server for cores: compare the ratios of one run, not absolute figures across
machines, and note the load average it prints.
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
import timeit
import urllib.parse
from dataclasses import replace
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
    directory: Path,
    vocab_size: int,
    dim: int,
    index_kind: str = "auto",
    precompute_words: int | None = None,
) -> Path:
    """Write a bundle of random vectors with pseudo-words and Zipf counts, and
    its index (with `wordvec index`'s default neighbour lists unless
    `precompute_words` says how many words get one; 0: none)."""
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
    name = f"synthetic-{vocab_size}x{dim}" + (
        "-nolists" if precompute_words == 0 else ""
    )
    manifest = {"version": name, "source": "imported", "config": None}
    bundle = write_bundle(
        directory / name,
        vocabulary=Vocabulary(words, counts),
        vectors=vectors,
        manifest=manifest,
    )
    # What `wordvec index` builds; "auto" is flat at 50k x 100 (exact search
    # over the memory-mapped normalised vectors).
    config = IndexConfig(kind=index_kind)
    if precompute_words is not None:
        config = replace(config, precompute_words=precompute_words)
    build_index(bundle, config)
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


# uvicorn's --loop and --http per stack; "auto" picks uvloop and httptools
# when they are installed, which is what `wordvec serve` does.
STACKS = {"auto": ("auto", "auto"), "asyncio-h11": ("asyncio", "h11")}


def start_server(
    bundle: Path, workers: int, log: Path, stack: str = "auto"
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the app under uvicorn as `wordvec serve` does (factory, metrics
    directory shared by the workers, no access log), with the loop and HTTP
    parser of `stack`, and return it once /health is 200."""
    port = free_port()
    loop, http = STACKS[stack]
    command = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory"]
    command += ["--port", str(port), "--workers", str(workers), "--no-access-log"]
    command += ["--loop", loop, "--http", http, "--log-level", "warning"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORDVEC_")}
    env |= {"WORDVEC_BUNDLE_PATH": str(bundle), "WORDVEC_LOG_LEVEL": "WARNING"}
    env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(dir=log.parent)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=out, env=env,
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


def cpu_seconds(pids: list[int]) -> float:
    """Return the user + system CPU seconds `pids` have used so far."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of stat(5), 12 and 13 here.
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def warm_up(url: str, words: list[str], requests: int) -> None:
    """Send `requests` /similar queries so every worker touches its index."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(requests):
            client.get("/similar", params={"word": words[i % len(words)], "k": 10})


def run_wrk(
    url: str,
    path: str | None,
    words: list[str],
    args: Any,
    concurrency: int,
    server_pids: list[int],
) -> dict[str, Any]:
    """Run wrk for `args.duration` s on `path` plus a word (or on the no-op
    endpoint when `path` is None) and return its summary, with the server
    workers' CPU time per request (less disturbed by other load than req/s)."""
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
    cpu_before = cpu_seconds(server_pids)
    output = subprocess.run(command, capture_output=True, text=True, check=True)
    cpu = cpu_seconds(server_pids) - cpu_before
    line = next(x for x in output.stdout.splitlines() if x.startswith("WRK "))
    result: dict[str, Any] = json.loads(line[4:])
    result["rps"] = result["requests"] / result["seconds"]
    result["cpu_us_per_request"] = cpu / max(result["requests"], 1) * 1e6
    return result


def measure_memory(
    bundle: Path, workers: int, words: list[str], log: Path
) -> dict[str, Any]:
    """Return the summed RSS/PSS (KiB) of the app processes serving `bundle`
    with `workers` workers, after 200 queries per worker."""
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


def lookup_timings(bundle: Path, words: list[str]) -> dict[str, float]:
    """Return ns per call, in this process, of the hot path's lookups: a word's
    id from the mapped table (as the server does) and from a dict, and the
    10 words of a neighbour list from the table and from a list."""
    # Imported here so that this script still runs on a checkout from
    # before the tables (to compare two checkouts side by side).
    from index.lookup import WordTable, load_tables

    vocabulary = load_bundle(bundle).vocabulary
    word_to_id, word_list = vocabulary.word_to_id, vocabulary.words
    table = WordTable(load_tables(bundle / "index", len(word_list)))
    ids = [[(i * 7919 + j) % len(word_list) for j in range(10)] for i in range(1000)]
    runs = {
        "id_of_table": lambda: [table.id_of(w) for w in words],
        "id_of_dict": lambda: [word_to_id.get(w) for w in words],
        "words_10_table": lambda: [table.words(row) for row in ids],
        "words_10_list": lambda: [[word_list[i] for i in row] for row in ids],
    }
    sizes = {"id_of_table": len(words), "id_of_dict": len(words)}
    timings = {}
    for name, run in runs.items():
        # Best of 5 repeats: the least disturbed by other processes.
        best = min(timeit.repeat(run, number=1, repeat=5))
        timings[name] = best / sizes.get(name, len(ids)) * 1e9
    return timings


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--bundle", type=Path, help="bundle to serve (default: synthetic)")
    add("--vocab-size", type=int, default=50_000, help="synthetic words")
    add("--dims", type=int, nargs="+", default=[100, 300], help="synthetic dims")
    add("--index-kind", default="auto", help="index of the synthetic bundles")
    add("--compare-no-lists", action="store_true", help="add a bundle without lists")
    add("--stacks", nargs="+", choices=list(STACKS), default=list(STACKS))
    add("--workers", type=int, default=2, help="workers under load")
    add("--duration", type=int, default=20, help="seconds per load run")
    add("--concurrency", type=int, nargs="+", default=[16, 64])
    add("--distinct-words", type=int, default=20_000, help="query words to cycle")
    add("--wrk-threads", type=int, default=2, help="wrk threads")
    add("--output", type=Path, help="also write the results as JSON")
    return parser.parse_args()


def query_words(bundle: Path, count: int) -> list[str]:
    """Return `count` words drawn uniformly from the bundle's vocabulary."""
    vocabulary = load_bundle(bundle).vocabulary
    picks = np.random.default_rng(1).integers(0, len(vocabulary), size=count)
    return [vocabulary.words[i] for i in picks]


def load_runs(
    bundle: Path, stack: str, words: list[str], args: Any, log: Path
) -> list[dict[str, Any]]:
    """Serve `bundle` on `stack` and run wrk on the no-op endpoint and on
    /similar at each concurrency, side by side; return one dict per run."""
    process, url = start_server(bundle, args.workers, log, stack)
    runs = []
    try:
        warm_up(url, words, 400)
        pids = worker_pids(process.pid, args.workers)
        for concurrency in args.concurrency:
            for name, path in (("noop", None), ("similar", "/similar?k=10&word=")):
                run = run_wrk(url, path, words, args, concurrency, pids)
                run |= {"bundle": bundle.name, "stack": stack, "endpoint": name}
                run |= {"concurrency": concurrency, "load_average": os.getloadavg()}
                runs.append(run)
                print_run(run)
    finally:
        stop_server(process)
    return runs


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    work = args.work = Path(tempfile.mkdtemp(prefix="wordvec-bench-"))
    log = work / "server.log"
    try:
        results: dict[str, Any] = {"load_average_start": os.getloadavg()}
        if args.bundle:
            bundles = [args.bundle]
        else:
            bundles = [
                synthetic_bundle(work, args.vocab_size, dim, args.index_kind)
                for dim in args.dims
            ]
            if args.compare_no_lists:
                bundles.append(
                    synthetic_bundle(work, args.vocab_size, args.dims[0], "auto", 0)
                )
        results["bundles"] = [
            {"name": b.name, "index": index_kind_of(b), "lists": lists_of(b)}
            for b in bundles
        ]
        words = {b: query_words(b, args.distinct_words) for b in bundles}
        results["lookup_ns"] = {
            b.name: lookup_timings(b, words[b])
            for b in bundles
            if (b / "index" / "vocabulary.utf8").is_file()
        }
        # A 100-word bundle gives the memory of the processes themselves
        # (Python, FastAPI, FAISS); what a big bundle adds is its vectors,
        # index and neighbour lists.
        tiny = synthetic_bundle(work, 100, args.dims[0], args.index_kind)
        words[tiny] = load_bundle(tiny).vocabulary.words
        results["memory"] = [
            measure_memory(b, w, words[b], log)
            for b in (tiny, *bundles)
            for w in (1, args.workers)
        ]
        results["load"] = [
            run
            for b in bundles
            for stack in args.stacks
            for run in load_runs(b, stack, words[b], args, log)
        ]
        results["load_average_end"] = os.getloadavg()
        report(results)
        if args.output:
            args.output.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def lists_of(bundle: Path) -> str:
    """Return "N x K" of the bundle's precomputed neighbour lists, or "none"."""
    info = bundle / "index" / "index.json"
    entry = (
        json.loads(info.read_text()).get("neighbour_lists") if info.is_file() else None
    )
    return f"{entry['words']} x {entry['k']}" if entry else "none"


def print_run(run: dict[str, Any]) -> None:
    print(
        f"{run['bundle']:>26} {run['stack']:>11} {run['endpoint']:>8} "
        f"c={run['concurrency']:<3} {run['rps']:7.0f} req/s  "
        f"p50 {run['p50_ms']:6.2f} ms  p99 {run['p99_ms']:6.2f} ms  "
        f"server CPU {run['cpu_us_per_request']:4.0f} us/req  "
        f"non-2xx {run['non_2xx']}  socket errors {run['socket_errors']}  "
        f"load {run['load_average'][0]:.2f}",
        flush=True,
    )


def report(results: dict[str, Any]) -> None:
    print(f"\nload average at start {results['load_average_start']}, at end "
          f"{results['load_average_end']}")  # fmt: skip
    for b in results["bundles"]:
        print(f"bundle {b['name']}: index {b['index']}, neighbour lists {b['lists']}")
    for name, timings in results["lookup_ns"].items():
        print(
            f"{name}: lookups in ns: word -> id {timings['id_of_table']:.0f} "
            f"(dict {timings['id_of_dict']:.0f}), 10 ids -> words "
            f"{timings['words_10_table']:.0f} (list {timings['words_10_list']:.0f})"
        )
    print("\n| bundle | workers | RSS MiB | PSS MiB | PSS anon | PSS file |")
    print("|---|---:|---:|---:|---:|---:|")
    for m in results["memory"]:
        mib = [m[key] / 1024 for key in ("Rss", "Pss", "Pss_Anon", "Pss_File")]
        print(
            f"| {m['bundle']} | {m['workers']} | "
            + " | ".join(f"{x:.0f}" for x in mib)
            + " |"
        )
    memory = results["memory"]
    tiny_one, tiny_many = memory[0], memory[1]
    for one, many in zip(memory[2::2], memory[3::2], strict=True):
        added_one = one["Pss"] - tiny_one["Pss"]
        added_many = many["Pss"] - tiny_many["Pss"]
        print(
            f"{one['bundle']}: PSS the bundle adds: {added_one / 1024:.0f} MiB with "
            f"1 worker, {added_many / 1024:.0f} MiB with {many['workers']} "
            f"(ratio {added_many / max(added_one, 1):.2f})"
        )
    print("\n| bundle | stack | c | no-op req/s | p50 / p99 ms | /similar req/s "
          "| p50 / p99 ms | ratio | server CPU us/req no-op / similar |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    runs = {(r["bundle"], r["stack"], r["concurrency"], r["endpoint"]): r
            for r in results["load"]}  # fmt: skip
    for (bundle, stack, concurrency, endpoint), run in runs.items():
        if endpoint != "similar":
            continue
        noop = runs[(bundle, stack, concurrency, "noop")]
        print(
            f"| {bundle} | {stack} | {concurrency} | {noop['rps']:.0f} | "
            f"{noop['p50_ms']:.2f} / {noop['p99_ms']:.2f} | {run['rps']:.0f} | "
            f"{run['p50_ms']:.2f} / {run['p99_ms']:.2f} | "
            f"{run['rps'] / noop['rps']:.0%} | {noop['cpu_us_per_request']:.0f} / "
            f"{run['cpu_us_per_request']:.0f} |"
        )


if __name__ == "__main__":
    main()
