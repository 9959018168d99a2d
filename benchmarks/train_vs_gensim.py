"""Train gensim's Word2Vec and wordvec side by side on one corpus with the same
settings, and compare speed, peak memory and quality.

    .venv/bin/python benchmarks/train_vs_gensim.py [--corpus data/corpus/*]
        [--epochs 5] [--threads 2] [--architectures skip-gram cbow] [--json]

Every run is a separate subprocess so its peak resident memory (VmHWM, or
ru_maxrss off Linux) is its own. Both read the same tokens: the corpus is
tokenised once with wordvec's tokeniser into a whitespace-separated file that
gensim streams with LineSentence (its usual input), while wordvec trains from
the original files.

- train words/s: raw corpus words (out-of-vocabulary ones included) times
  epochs, over the training time alone (gensim's `train`, wordvec's epochs),
  which is how gensim reports speed.
- end-to-end s: reading, vocabulary building (wordvec: encoding) and
  training; gensim's reading is of the pre-tokenised file, so it is spared
  the tokenising that wordvec's figure includes.
- scores: both models' vectors through training/evaluate.py.

Both get the same `--lr` (by default wordvec's for the architecture: 0.025
for skip-gram, 0.05 for CBOW, as in the word2vec C tool; `--gensim-lr 0.025`
gives gensim its own default instead) and `--min-lr`, but the learning rate
can still decay differently. wordvec lowers it with the words trained, as the word2vec
C tool does. gensim, given `total_examples` (its usual call, the default
here), lowers it with the sentences read, so a corpus whose short sentences
come last keeps a higher rate over its long ones: on data/corpus, where the
WordNet glosses are 65% of the sentences but 44% of the words, gensim's
mean rate per word is about 5% above wordvec's, and 24% above in the last
epoch. `--gensim-decay words` gives gensim `total_words` alone instead, so
both follow the same schedule.
"""

import argparse
import glob
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.config import DEFAULT_LR  # noqa: E402
from training.corpus import iter_sentences  # noqa: E402
from training.evaluate import evaluate_default  # noqa: E402
from training.vocabulary import Vocabulary  # noqa: E402

SYSTEMS = ("gensim", "wordvec")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--corpus",
        nargs="+",
        default=None,
        help="corpus files or directories (default: data/corpus/*)",
    )
    p.add_argument("--epochs", type=int, default=5, help="passes over the corpus")
    p.add_argument("--threads", type=int, default=2, help="worker threads of both")
    p.add_argument(
        "--architectures",
        nargs="+",
        default=["skip-gram", "cbow"],
        choices=["skip-gram", "cbow"],
        help="which architectures to run",
    )
    p.add_argument("--dim", type=int, default=100, help="vector dimensions")
    p.add_argument("--window", type=int, default=5, help="context window")
    p.add_argument("--negative", type=int, default=5, help="negative samples")
    p.add_argument("--min-count", type=int, default=5, help="minimum word count")
    p.add_argument("--sample", type=float, default=1e-3, help="subsampling threshold")
    p.add_argument(
        "--lr",
        type=float,
        help="initial learning rate of both systems (default: wordvec's for the "
        "architecture, 0.025 for skip-gram and 0.05 for cbow)",
    )
    p.add_argument(
        "--gensim-lr",
        type=float,
        help="initial learning rate of gensim alone, e.g. 0.025 for gensim's own "
        "default (default: the same as --lr)",
    )
    p.add_argument("--min-lr", type=float, default=0.0001, help="final learning rate")
    p.add_argument(
        "--gensim-decay",
        default="sentences",
        choices=["sentences", "words"],
        help="what gensim's learning rate decays with: sentences read "
        "(total_examples, its usual call) or words read (total_words, as wordvec)",
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "native", "torch"],
        help="wordvec kernel (default: auto)",
    )
    p.add_argument(
        "--gensim-input",
        default="iterable",
        choices=["iterable", "corpus_file"],
        help="feed gensim a LineSentence iterable or its corpus_file mode",
    )
    p.add_argument("--seed", type=int, default=1, help="random seed of both systems")
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="directory for the scratch files (default: a new temporary one)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    p.add_argument("--architecture", help=argparse.SUPPRESS)
    p.add_argument("--tokens", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB.

    Linux's VmHWM is read first: ru_maxrss survives exec, so a worker would
    report at least the resident size of the parent that forked it.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_gensim(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    model = Word2Vec(
        vector_size=args.dim,
        window=args.window,
        negative=args.negative,
        hs=0,
        min_count=args.min_count,
        sample=args.sample,
        epochs=args.epochs,
        workers=args.threads,
        sg=int(args.architecture == "skip-gram"),
        alpha=args.lr,
        min_alpha=args.min_lr,
        seed=args.seed,
    )
    source: dict[str, Any]
    if args.gensim_input == "corpus_file":
        source = {"corpus_file": args.tokens}
    else:
        source = {"corpus_iterable": LineSentence(args.tokens)}
    started = time.perf_counter()
    model.build_vocab(**source)
    train_started = time.perf_counter()
    # gensim decays by sentences whenever it is given total_examples.
    progress: dict[str, int] = {}
    if args.gensim_decay == "sentences":
        progress["total_examples"] = model.corpus_count
    if "corpus_file" in source or args.gensim_decay == "words":
        progress["total_words"] = model.corpus_total_words
    _, raw_words = model.train(**source, epochs=args.epochs, **progress)
    finished = time.perf_counter()
    rss = peak_rss_mb()
    np.save(out / "vectors.npy", model.wv.vectors)
    (out / "words.txt").write_text("\n".join(model.wv.index_to_key) + "\n")
    return {
        "train_seconds": finished - train_started,
        "words_per_second": raw_words / (finished - train_started),
        "end_to_end_seconds": finished - started,
        "peak_rss_mb": rss,
        "vocab_size": len(model.wv),
    }


def run_wordvec(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from training.config import TrainConfig
    from training.trainer import train

    config = TrainConfig(
        architecture=args.architecture,
        dim=args.dim,
        window=args.window,
        negative=args.negative,
        min_count=args.min_count,
        sample=args.sample,
        epochs=args.epochs,
        lr=args.lr,
        min_lr=args.min_lr,
        threads=args.threads,
        seed=args.seed,
        backend=args.backend,
    )
    started = time.perf_counter()
    result = train(args.corpus, config, out / "bundle", progress=False, evaluate=False)
    finished = time.perf_counter()
    rss = peak_rss_mb()
    return {
        "train_seconds": result.stats["seconds"],
        "words_per_second": result.stats["words_per_second"],
        "end_to_end_seconds": finished - started,
        "peak_rss_mb": rss,
        "vocab_size": int(
            np.load(out / "bundle" / "vectors.npy", mmap_mode="r").shape[0]
        ),
        "backend": result.stats["backend"],
        "final_loss": result.stats["final_loss"],
    }


def worker_main(args: argparse.Namespace) -> None:
    out = Path(args.out)
    run = run_gensim if args.worker == "gensim" else run_wordvec
    (out / "result.json").write_text(json.dumps(run(args, out)))


def load_vectors(system: str, out: Path) -> tuple[list[str], np.ndarray]:
    if system == "gensim":
        words = (out / "words.txt").read_text().split("\n")[:-1]
        return words, np.load(out / "vectors.npy")
    vocabulary = Vocabulary.load(out / "bundle" / "vocabulary.tsv")
    return vocabulary.words, np.load(out / "bundle" / "vectors.npy")


def scores_of(system: str, out: Path) -> dict[str, float | None]:
    words, vectors = load_vectors(system, out)
    scores = evaluate_default(words, vectors)
    return {
        "wordsim353": scores["wordsim353"]["spearman"],
        "simlex999": scores["simlex999"]["spearman"],
        "analogies": scores["analogies"]["total"],
    }


def start_lr(args: argparse.Namespace, system: str, architecture: str) -> float:
    """Return the starting learning rate `system` trains `architecture` with."""
    lr = DEFAULT_LR[architecture] if args.lr is None else args.lr
    if system == "gensim" and args.gensim_lr is not None:
        return float(args.gensim_lr)
    return float(lr)


def run_one(
    args: argparse.Namespace, system: str, architecture: str, tokens: Path, work: Path
) -> dict[str, Any]:
    out = work / f"{system}-{architecture}"
    out.mkdir()
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        system,
        "--architecture",
        architecture,
        "--tokens",
        str(tokens),
        "--out",
        str(out),
        "--corpus",
        *args.corpus,
        "--epochs",
        str(args.epochs),
        "--threads",
        str(args.threads),
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
        "--backend",
        args.backend,
        "--gensim-input",
        args.gensim_input,
        "--lr",
        str(start_lr(args, system, architecture)),
        "--min-lr",
        str(args.min_lr),
        "--gensim-decay",
        args.gensim_decay,
        "--seed",
        str(args.seed),
    ]
    subprocess.run(command, check=True)
    result = json.loads((out / "result.json").read_text())
    result.update(scores_of(system, out))
    result["lr"] = start_lr(args, system, architecture)
    shutil.rmtree(out)
    return result


def write_tokens(corpus: list[str], path: Path) -> int:
    """Write the corpus as whitespace-separated tokens, one sentence a line;
    return the token count."""
    count = 0
    with open(path, "w", encoding="utf-8") as f:
        for tokens in iter_sentences([Path(c) for c in corpus]):
            f.write(" ".join(tokens) + "\n")
            count += len(tokens)
    return count


def ratios(gensim: dict[str, Any], wordvec: dict[str, Any]) -> dict[str, Any]:
    def delta(key: str) -> float | None:
        if gensim[key] is None or wordvec[key] is None:
            return None
        return wordvec[key] - gensim[key]

    return {
        "speed": wordvec["words_per_second"] / gensim["words_per_second"],
        "end_to_end": gensim["end_to_end_seconds"] / wordvec["end_to_end_seconds"],
        "memory": wordvec["peak_rss_mb"] / gensim["peak_rss_mb"],
        "wordsim353_delta": delta("wordsim353"),
        "simlex999_delta": delta("simlex999"),
        "analogies_delta": delta("analogies"),
    }


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(report: dict[str, Any]) -> None:
    print(
        f"corpus: {report['tokens']:,} tokens, {report['epochs']} epochs, "
        f"{report['threads']} threads, gensim input: {report['gensim_input']}, "
        f"lr to {report['min_lr']}, gensim decays by "
        f"{report['gensim_decay']}, seed {report['seed']}"
    )
    header = (
        f"{'architecture':<12} {'system':<8} {'lr':>6} {'train w/s':>11} "
        f"{'train s':>8} "
        f"{'e2e s':>7} {'peak MB':>8} {'WS353':>7} {'SL999':>7} {'analogy':>8}"
    )
    print(header)
    for architecture, runs in report["results"].items():
        for system in SYSTEMS:
            r = runs[system]
            print(
                f"{architecture:<12} {system:<8} {r['lr']:>6} "
                f"{r['words_per_second']:>11,.0f} "
                f"{r['train_seconds']:>8.1f} {r['end_to_end_seconds']:>7.1f} "
                f"{r['peak_rss_mb']:>8.0f} {fmt(r['wordsim353'], '.3f'):>7} "
                f"{fmt(r['simlex999'], '.3f'):>7} {fmt(r['analogies'], '.3f'):>8}"
            )
        q = runs["ratios"]
        print(
            f"{architecture:<12} {'ratio':<8} {'':>6} {q['speed']:>10.2f}x "
            f"{'':>8} {q['end_to_end']:>6.2f}x {q['memory']:>7.2f}x "
            f"{fmt(q['wordsim353_delta'], '+.3f'):>7} "
            f"{fmt(q['simlex999_delta'], '+.3f'):>7} "
            f"{fmt(q['analogies_delta'], '+.3f'):>8}"
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.corpus is None:
        args.corpus = sorted(glob.glob(str(ROOT / "data" / "corpus" / "*")))
    if args.worker:
        worker_main(args)
        return
    with tempfile.TemporaryDirectory(
        prefix="train-vs-gensim-", dir=args.workdir
    ) as tmp:
        work = Path(tmp)
        tokens = work / "tokens.txt"
        num_tokens = write_tokens(args.corpus, tokens)
        results: dict[str, Any] = {}
        for architecture in args.architectures:
            runs = {s: run_one(args, s, architecture, tokens, work) for s in SYSTEMS}
            runs["ratios"] = ratios(runs["gensim"], runs["wordvec"])
            results[architecture] = runs
    report = {
        "corpus": args.corpus,
        "tokens": num_tokens,
        "epochs": args.epochs,
        "threads": args.threads,
        "gensim_input": args.gensim_input,
        "gensim_decay": args.gensim_decay,
        "min_lr": args.min_lr,
        "seed": args.seed,
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
