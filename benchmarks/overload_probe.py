"""How fast an overloaded worker refuses: wrk floods one API worker with heavy
`POST /similar` batches (200 words, k=50) over 64 connections while a separate
light client sends one `GET /similar` every 50 ms and times the answers it
gets (mostly 503s past the concurrency limit).

    .venv/bin/python benchmarks/overload_probe.py --bundle models/default \\
        [--limit 8] [--query-threads 1] [--seconds 20]

The Python load generator of `benchmarks/reliability.py --only overload`
shares the two cores with the server and parses every large answer, so its
own delays dominate the refusal times it reports; wrk is light, and the probe
sends little. Needs wrk (`apt-get install -y wrk`).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BATCH_SCRIPT = """
local words = {}
for i = 1, 200 do words[i] = '"%s"' end
wrk.method = "POST"
wrk.body = '{"words": [' .. table.concat(words, ",") .. '], "k": 50}'
wrk.headers["Content-Type"] = "application/json"
"""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, required=True, help="bundle to serve")
    p.add_argument("--word", default="king", help="word of the heavy batches")
    p.add_argument("--limit", type=int, default=8, help="concurrent requests")
    p.add_argument("--query-threads", type=int, default=1, help="query pool")
    p.add_argument("--seconds", type=float, default=20, help="length of the flood")
    p.add_argument("--port", type=int, default=18_990)
    return p.parse_args()


def wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).json().get("ready"):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit("the server did not come up")


def probe(url: str, seconds: float) -> dict[int, list[float]]:
    """Send one light query every 50 ms; return milliseconds by status."""
    times: dict[int, list[float]] = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            status = client.get("/similar", params={"word": "queen"}).status_code
            times.setdefault(status, []).append((time.perf_counter() - started) * 1e3)
            time.sleep(0.05)
    return times


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    url = f"http://127.0.0.1:{args.port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORDVEC_")}
    env |= {
        "WORDVEC_MAX_CONCURRENT_REQUESTS": str(args.limit),
        "WORDVEC_QUERY_THREADS": str(args.query_threads),
        "WORDVEC_LOG_LEVEL": "WARNING",
    }
    with tempfile.TemporaryDirectory() as work:
        script = Path(work) / "batch.lua"
        script.write_text(BATCH_SCRIPT % args.word)
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "serve",
                str(args.bundle),
                "--port",
                str(args.port),
                "--workers",
                "1",
            ],
            cwd=ROOT,
            env=env,
        )
        try:
            wait_until_up(url)
            flood = subprocess.Popen(
                [
                    "wrk",
                    "-t2",
                    "-c64",
                    f"-d{int(args.seconds)}s",
                    "-s",
                    str(script),
                    f"{url}/similar",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(3)
            times = probe(url, args.seconds - 6)
            report, _ = flood.communicate()
        finally:
            server.terminate()
            server.wait()
    print(f"limit {args.limit}, query threads {args.query_threads}")
    for status, values in sorted(times.items()):
        values.sort()
        print(
            f"probe {status}: {len(values)} answers, p50 "
            f"{statistics.median(values):.1f} ms, p90 "
            f"{values[int(len(values) * 0.9)]:.1f} ms"
        )
    for line in report.splitlines():
        if "Requests/sec" in line or "Non-2xx" in line:
            print("wrk:", line.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
