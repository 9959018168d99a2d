"""Train the same corpus with one process and with several (torch.distributed)
side by side, and compare speed and quality.

    .venv/bin/python benchmarks/train_processes.py [--corpus data/corpus]
        [--layouts 1x2 2x1 2x2] [--architectures skip-gram cbow]
        [--sync-every 500000] [--epochs 5] [--json]

A layout PxT is P processes of T kernel threads each. Every run is a
separate `wordvec train --json` subprocess with the same settings (dim 100,
window 5, 5 negatives, min_count 5, sample 1e-3 unless changed), so the
figures are what a user of the command line gets.

- words/s: raw corpus words times epochs over the training epochs alone
  (the manifest's `training.words_per_second`); with several processes the
  epochs' wall time includes the syncs.
- ratio: words/s against the first layout given, for the same architecture.
- scores: WordSim-353 and SimLex-999 Spearman, Google analogies accuracy,
  from the evaluation `wordvec train` runs after training.
- load: /proc/loadavg (1-minute) before and after each run, since the
  machine may be shared.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--corpus",
        nargs="+",
        default=[str(ROOT / "data" / "corpus")],
        help="corpus files or directories (default: data/corpus)",
    )
    p.add_argument(
        "--layouts",
        nargs="+",
        default=["1x2", "2x1", "2x2"],
        help="PROCESSESxTHREADS per run; the first is the baseline of the ratios",
    )
    p.add_argument(
        "--architectures",
        nargs="+",
        default=["skip-gram", "cbow"],
        choices=["skip-gram", "cbow"],
        help="which architectures to run",
    )
    p.add_argument("--epochs", type=int, default=5, help="passes over the corpus")
    p.add_argument("--dim", type=int, default=100, help="vector dimensions")
    p.add_argument("--window", type=int, default=5, help="context window")
    p.add_argument("--negative", type=int, default=5, help="negative samples")
    p.add_argument("--min-count", type=int, default=5, help="minimum word count")
    p.add_argument("--sample", type=float, default=1e-3, help="subsampling threshold")
    p.add_argument(
        "--sync-every",
        type=int,
        default=None,
        help="tokens per process between syncs (default: wordvec's default)",
    )
    p.add_argument("--seed", type=int, default=1, help="random seed")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p.parse_args(argv)


def load_average() -> float:
    """Return the 1-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def run_one(
    args: argparse.Namespace, architecture: str, layout: str, work: Path
) -> dict[str, Any]:
    """Train once with `layout` ("PxT") and return its figures."""
    processes, threads = (int(n) for n in layout.split("x"))
    output = work / f"{architecture}-{layout}"
    command = [
        sys.executable,
        "-m",
        "app.cli",
        "--log-level",
        "WARNING",
        "train",
        *args.corpus,
        "--output",
        str(output),
        "--architecture",
        architecture,
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--epochs",
        str(args.epochs),
        "--dim",
        str(args.dim),
        "--window",
        str(args.window),
        "--negative",
        str(args.negative),
        "--min-count",
        str(args.min_count),
        "--sample",
        str(args.sample),
        "--seed",
        str(args.seed),
        "--no-progress",
        "--json",
    ]
    if args.sync_every is not None:
        command += ["--sync-every", str(args.sync_every)]
    load_before = load_average()
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    load_after = load_average()
    summary = json.loads(done.stdout)
    training, scores = summary["training"], summary["evaluation"]
    return {
        "processes": processes,
        "threads": threads,
        "words_per_second": training["words_per_second"],
        "train_seconds": training["seconds"],
        "total_seconds": training["total_seconds"],
        "syncs": training.get("syncs"),
        "sync_seconds": training.get("sync_seconds"),
        "sync_every": training.get("sync_every"),
        "final_loss": training["final_loss"],
        "wordsim353": scores["wordsim353"]["spearman"],
        "simlex999": scores["simlex999"]["spearman"],
        "analogies": scores["analogies"]["total"],
        "load_before": load_before,
        "load_after": load_after,
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"corpus: {' '.join(report['corpus'])}, {report['epochs']} epochs, "
        f"sync every {report['sync_every'] or 'default'} tokens per process"
    )
    print(
        f"{'architecture':<12} {'layout':<6} {'words/s':>10} {'ratio':>6} "
        f"{'train s':>8} {'syncs':>5} {'sync s':>7} {'WS353':>6} {'SL999':>6} "
        f"{'analogy':>7} {'load':>9}"
    )
    for architecture, runs in report["results"].items():
        base = runs[0]["words_per_second"]
        for r in runs:
            syncs = "-" if r["syncs"] is None else str(r["syncs"])
            sync_s = "-" if r["sync_seconds"] is None else f"{r['sync_seconds']:.1f}"
            print(
                f"{architecture:<12} {r['layout']:<6} {r['words_per_second']:>10,} "
                f"{r['words_per_second'] / base:>5.2f}x {r['train_seconds']:>8.1f} "
                f"{syncs:>5} {sync_s:>7} {r['wordsim353']:>6.3f} "
                f"{r['simlex999']:>6.3f} {r['analogies']:>7.3f} "
                f"{r['load_before']:>4.1f}-{r['load_after']:<4.1f}"
            )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="train-processes-") as tmp:
        for architecture in args.architectures:
            results[architecture] = []
            for layout in args.layouts:
                run = run_one(args, architecture, layout, Path(tmp))
                run["layout"] = layout
                results[architecture].append(run)
    report = {
        "corpus": args.corpus,
        "epochs": args.epochs,
        "sync_every": args.sync_every,
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
