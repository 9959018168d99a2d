"""Search cost in-process: wordvec's query path (VectorIndex.neighbours) vs
gensim KeyedVectors.most_similar vs bare FAISS, one thread each.

    .venv/bin/python benchmarks/search_vs_gensim_faiss.py [--sizes 50k,1m]

For each vocabulary size it writes a bundle of synthetic clustered vectors
(a Gaussian mixture: unit-variance centres, points at noise 0.7 around
them, so each word's neighbours share its cluster, as in trained vectors;
uniform random vectors would be the worst case), or uses `--bundle` for
real vectors. Then per index kind it builds the index with `wordvec index`'s
code, loads it as the server does, and times single queries, reporting
p50/p99 latency, recall@10 against exact search, build time and memory.
Everything runs side by side in one process on the same queries, so the
ratios hold on a busy machine even when absolute times drift.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from gensim.models import KeyedVectors

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from index.build import IndexConfig, build_index
from index.search import VectorIndex
from index.threads import single_threaded
from training.bundle import load_bundle, write_bundle
from training.vectors import normalise_rows
from training.vocabulary import Vocabulary

SCENARIOS = {
    "50k": (50_000, 300, 2_000),
    "1m": (1_000_000, 100, 3_000),
    "smoke": (20_000, 50, 200),
}

# Loads a bundle, runs queries, says so and waits, so the parent can read
# the resident memory of two such processes while both are alive.
_RESIDENT = """
import sys
from pathlib import Path
from index.search import VectorIndex
index = VectorIndex.load(Path(sys.argv[1]))
for word in sys.argv[2:]:
    index.neighbours(word, 10)
print("ready", flush=True)
sys.stdin.read()
"""


def clustered_vectors(rows: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    """Return float32 (rows, dim) Gaussian-mixture points; cluster sizes Zipf-like."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    weights = 1.0 / np.arange(1, clusters + 1) ** 0.5
    members = rng.choice(clusters, size=rows, p=weights / weights.sum())
    out = np.empty((rows, dim), dtype=np.float32)
    for start in range(0, rows, 100_000):
        part = members[start : start + 100_000]
        noise = rng.standard_normal((len(part), dim), dtype=np.float32) * 0.7
        out[start : start + len(part)] = centres[part] + noise
    return out


def write_synthetic_bundle(path: Path, rows: int, dim: int, clusters: int) -> Path:
    vectors = clustered_vectors(rows, dim, clusters, seed=0)
    words = [f"w{i}" for i in range(rows)]
    counts = np.arange(rows, 0, -1)
    return write_bundle(
        path,
        vocabulary=Vocabulary(words, counts),
        vectors=vectors,
        manifest={"source": "trained", "version": path.name},
    )


def latencies_ms(run: Callable[[str], object], words: list[str]) -> dict[str, float]:
    run(words[0])
    times = []
    for word in words:
        start = time.perf_counter()
        run(word)
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1e3
    return {"p50_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99))}


def resident_mb(bundle: Path, words: list[str]) -> dict[str, Any]:
    """Return RSS and PSS (MB) of one process, then of each of two processes
    that loaded the same bundle (read once both have loaded and queried)."""
    command = [sys.executable, "-c", _RESIDENT, str(bundle), *words[:200]]
    cwd = Path(__file__).resolve().parents[1]
    results = {}
    for count in (1, 2):
        procs = [
            subprocess.Popen(
                command,
                cwd=cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        results[f"{count}_process"] = [_smaps_rollup_mb(p.pid) for p in procs]
        for p in procs:
            p.communicate("")
    return results


def _smaps_rollup_mb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":")
        fields[name] = int(value.split()[0]) // 1024
    return {"rss_mb": fields["Rss"], "pss_mb": fields["Pss"]}


def recall_at_10(found: list[list[str]], exact: list[list[str]]) -> float:
    hits = sum(len(set(f) & set(e)) for f, e in zip(found, exact, strict=True))
    return hits / (10 * len(exact))


def baselines(
    data: Any, words: list[str], timed: list[str], report: dict[str, Any]
) -> list[list[str]]:
    """Time gensim and bare FAISS flat (vectors in memory) into `report`;
    return gensim's exact top-10 words of each of `words`."""
    kv = KeyedVectors(data.dim)
    kv.add_vectors(data.vocabulary.words, np.asarray(data.vectors))
    kv.fill_norms()
    report["gensim_most_similar"] = latencies_ms(
        lambda w: kv.most_similar(w, topn=10), timed
    )
    normalised = normalise_rows(data.vectors)
    flat = faiss.IndexFlatIP(data.dim)
    flat.add(normalised)
    ids = data.vocabulary.word_to_id
    report["faiss_flat_bare"] = latencies_ms(
        lambda w: flat.search(normalised[ids[w]][None, :], 11), timed
    )
    return [[w for w, _ in kv.most_similar(w, topn=10)] for w in words]


def bare_hnsw(
    index: VectorIndex, info: dict[str, Any], ids: dict[str, int], words: list[str]
) -> dict[str, float]:
    """Time the FAISS HNSW object behind `index` called directly."""
    bare = index._searcher.index  # type: ignore[union-attr]
    bare.hnsw.efSearch = info["params"]["efSearch"]
    vectors = index._normalised

    def search(word: str) -> object:
        return bare.search(np.asarray(vectors[ids[word]])[None, :], 11)

    return latencies_ms(search, words)


def run_scenario(name: str, bundle: Path, queries: int, kinds: list[str]) -> dict:
    data = load_bundle(bundle)
    rng = np.random.default_rng(1)
    words = list(np.array(data.vocabulary.words)[rng.choice(data.vocab_size, queries)])
    exact_words = words[: min(queries, 300 if data.vocab_size > 200_000 else queries)]
    single_threaded()
    report: dict[str, Any] = {"vocab_size": data.vocab_size, "dim": data.dim}

    exact = baselines(data, words, exact_words, report)
    ids = data.vocabulary.word_to_id
    for kind in kinds:
        started = time.perf_counter()
        # No precomputed lists: this measures the search itself.
        config = IndexConfig(kind=kind, ef_construction=80, precompute_words=0)
        info = build_index(bundle, config)
        build_seconds = time.perf_counter() - started
        index = VectorIndex.load(bundle)
        timed = exact_words if kind == "flat" else words
        entry = {
            "build_seconds": round(build_seconds, 1),
            "params": info["params"],
            "recall_at_10_stored": info["recall_at_10"],
            "index_file_mb": _file_mb(bundle / "index" / "index.faiss"),
            "normalised_mb": _file_mb(bundle / "index" / "normalised.npy"),
            "wordvec": latencies_ms(partial(index.neighbours, k=10), timed),
        }
        found = [[n.word for n in index.neighbours(w, 10)] for w in words]
        entry["recall_at_10_vs_gensim_exact"] = round(recall_at_10(found, exact), 4)
        if kind == "hnsw":
            entry["faiss_hnsw_bare"] = bare_hnsw(index, info, ids, words)
        entry["wordvec_cached"] = latencies_ms(
            partial(index.neighbours, k=10), [words[0]] * 200
        )
        index.close()
        entry["resident"] = resident_mb(bundle, words)
        report[kind] = entry
        print(f"{name} {kind}: {json.dumps(entry)}", file=sys.stderr, flush=True)
    return report


def _file_mb(path: Path) -> float:
    return round(path.stat().st_size / 2**20, 1) if path.exists() else 0.0


def print_table(results: dict[str, dict]) -> None:
    print("| vectors | method | p50 ms | p99 ms | recall@10 | build s | RSS/PSS MB |")
    print("|---|---|---:|---:|---:|---:|---|")
    for report in results.values():
        shape = f"{report['vocab_size']:,} x {report['dim']} ({report['source']})"
        for method in ("gensim_most_similar", "faiss_flat_bare"):
            r = report[method]
            times = f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f}"
            print(f"| {shape} | {method} | {times} | 1.0 | | |")
        for kind in ("flat", "hnsw", "ivf-pq"):
            if kind not in report:
                continue
            e = report[kind]
            two = ", ".join(
                f"{r['rss_mb']}/{r['pss_mb']}" for r in e["resident"]["2_process"]
            )
            for label in ("wordvec", "faiss_hnsw_bare", "wordvec_cached"):
                if label in e:
                    r = e[label]
                    recall = (
                        e["recall_at_10_vs_gensim_exact"] if label == "wordvec" else ""
                    )
                    build = e["build_seconds"] if label == "wordvec" else ""
                    mem = two if label == "wordvec" else ""
                    print(
                        f"| {shape} | {kind} {label} | {r['p50_ms']:.3f} | "
                        f"{r['p99_ms']:.3f} | {recall} | {build} | {mem} |"
                    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50k,1m", help="scenarios: 50k, 1m")
    parser.add_argument("--bundle", type=Path, help="real bundle to use for 50k")
    parser.add_argument("--workdir", type=Path, help="where bundles go (default: tmp)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="wordvec-search-bench-"))
    results = {}
    for name in args.sizes.split(","):
        rows, dim, clusters = SCENARIOS[name]
        if name == "50k" and args.bundle:
            bundle, source = args.bundle, "real"
        else:
            bundle = workdir / f"synthetic-{name}"
            if not bundle.exists():
                write_synthetic_bundle(bundle, rows, dim, clusters)
            source = "synthetic clustered"
        kinds = ["flat", "hnsw"] if name == "50k" else ["flat", "hnsw", "ivf-pq"]
        results[name] = run_scenario(name, bundle, 1000, kinds) | {"source": source}
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
