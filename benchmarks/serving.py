"""Issue 3's serving benchmark in one command and one run: search cost
in-process at about 50k x 300 (real vectors trained by wordvec) and at
1M x 100 (synthetic clustered vectors), then the HTTP load test and the
server's memory with 1 and 2 workers on the same real bundle.

    .venv/bin/python benchmarks/serving.py [--bundle DIR] [--output results.json]

Without --bundle it first trains the real bundle from the shipped corpus
(CBOW, dim 300, min_count 3: about 56,000 words; under a minute on two cores).
The two benchmarks run one after the other as their own processes,
`search_vs_gensim_faiss.py` and `http_load.py`, each on its own copy of the
bundle because each builds indexes in place; their JSON results are
combined into one file. The HTTP part needs wrk (`apt-get install -y wrk`).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, help="real bundle (default: train one)")
    p.add_argument("--sizes", default="50k,1m", help="search scenarios: 50k, 1m")
    p.add_argument("--duration", type=int, default=20, help="seconds per HTTP run")
    p.add_argument("--output", type=Path, help="also write all results here")
    return p.parse_args()


def run(command: list[str]) -> None:
    print("$", " ".join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, cwd=ROOT)


def wordvec(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", *arguments]


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="wordvec-serving-bench-"))
    try:
        source = args.bundle
        if source is None:
            source = work / "trained"
            run(
                wordvec(
                    "--log-level", "WARNING", "train", str(ROOT / "data" / "corpus"),
                    "--output", str(source), "--architecture", "cbow",
                    "--dim", "300", "--min-count", "3",
                )
            )  # fmt: skip
        results: dict[str, Any] = {"load_average_start": os.getloadavg()}
        search_copy, http_copy = work / "search", work / "http"
        shutil.copytree(source, search_copy)
        shutil.copytree(source, http_copy)
        search_json, http_json = work / "search.json", work / "http.json"
        run(
            [
                sys.executable, str(BENCHMARKS / "search_vs_gensim_faiss.py"),
                "--sizes", args.sizes, "--bundle", str(search_copy),
                "--workdir", str(work), "--json", str(search_json),
            ]
        )  # fmt: skip
        # The server as deployed: `wordvec index --index auto`, neighbour lists
        # for the most frequent words included.
        run(wordvec("--log-level", "WARNING", "index", str(http_copy)))
        run(
            [
                sys.executable, str(BENCHMARKS / "http_load.py"),
                "--bundle", str(http_copy), "--duration", str(args.duration),
                "--output", str(http_json),
            ]
        )  # fmt: skip
        results["search"] = json.loads(search_json.read_text())
        results["http"] = json.loads(http_json.read_text())
        results["load_average_end"] = os.getloadavg()
        if args.output:
            args.output.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
