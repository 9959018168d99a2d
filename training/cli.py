"""`wordvec train` and `wordvec evaluate`: argument parsing and output only."""

import argparse
import dataclasses
import json
import logging
import re
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.config import DEFAULT_LR, DRY_RUN_TOKENS, TrainConfig
from training.errors import ConfigError

if TYPE_CHECKING:
    from training.trainer import TrainResult

logger = logging.getLogger(__name__)

# TrainConfig fields that `wordvec train` sets from a flag of the same name.
_FLAG_SETTINGS = [
    "architecture", "dim", "window", "negative", "min_count", "max_vocab_size",
    "sample", "epochs", "lr", "min_lr", "threads", "processes", "sync_every",
    "seed", "device", "backend", "min_n", "max_n", "buckets",
]  # fmt: skip
_SETTING_NAME = re.compile(r"(?<![\w-])(" + "|".join(_FLAG_SETTINGS) + r")(?![\w-])")
# Key `wordvec evaluate --json` adds next to the scores of each set.
_SECONDS_KEY = "seconds"


def add_train_parser(subparsers: Any) -> None:
    """Register `wordvec train` on an argparse subparsers object."""
    defaults = TrainConfig()
    p = subparsers.add_parser(
        "train",
        help="train word vectors on a corpus and write a model bundle",
        description="Train skip-gram or CBOW word vectors with negative sampling. "
        "CORPUS may be plain text (one sentence or paragraph per line), .gz, .bz2 or "
        ".xz text, a directory of such files, or a Wikipedia XML dump.",
    )
    p.add_argument("corpus", nargs="+", type=Path, metavar="CORPUS", help="input files")
    p.add_argument(
        "--output",
        required=True,
        type=Path,
        metavar="BUNDLE_DIR",
        help="directory to write the model bundle to (must not exist)",
    )
    p.add_argument(
        "--architecture",
        choices=["skip-gram", "cbow"],
        default=defaults.architecture,
        help="skip-gram predicts context words from the centre word; cbow predicts the "
        "centre word from its context (default: %(default)s)",
    )
    add_size_arguments(p, defaults)
    p.add_argument(
        "--window",
        type=int,
        default=defaults.window,
        help="largest distance between centre and context word; each centre word "
        "draws its window from 1..WINDOW (default: %(default)s)",
    )
    p.add_argument(
        "--negative",
        type=int,
        default=defaults.negative,
        help="negative samples per positive example (default: %(default)s)",
    )
    p.add_argument(
        "--min-count",
        type=int,
        default=defaults.min_count,
        help="ignore words seen fewer times than this (default: %(default)s)",
    )
    p.add_argument(
        "--max-vocab-size",
        type=int,
        default=None,
        help="keep only this many most frequent words (default: no limit)",
    )
    p.add_argument(
        "--sample",
        type=float,
        default=defaults.sample,
        help="subsampling threshold for frequent words, 0 disables it "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="starting learning rate (default: "
        f"{DEFAULT_LR['skip-gram']} for skip-gram, {DEFAULT_LR['cbow']} for cbow, "
        "as in word2vec)",
    )
    p.add_argument(
        "--min-lr",
        type=float,
        default=defaults.min_lr,
        help="learning rate reached at the end, decaying linearly "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=defaults.threads,
        help="CPU threads of each process; 0 shares every core among the "
        "processes (default: %(default)s)",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=defaults.processes,
        metavar="N",
        help="train data-parallel in N processes on this machine with "
        "torch.distributed (gloo on CPU, nccl with a GPU per process); under "
        "torchrun the group is torchrun's (default: %(default)s)",
    )
    p.add_argument(
        "--sync-every",
        type=int,
        default=defaults.sync_every,
        metavar="TOKENS",
        help="with several processes, tokens each one trains between two "
        "syncs of the vectors (default: %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="random seed; a run repeats exactly only with --threads 1, since "
        "Hogwild threads race on the shared vectors (default: %(default)s)",
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default=defaults.device,
        help="auto uses a GPU when PyTorch sees one (default: %(default)s)",
    )
    p.add_argument(
        "--backend",
        choices=["auto", "native", "torch"],
        default=defaults.backend,
        help="native: the compiled CPU kernel; torch: pure PyTorch (GPU or fallback); "
        "auto picks native on CPU when it is built (default: %(default)s)",
    )
    p.add_argument(
        "--keep-case",
        action="store_true",
        help="keep upper case instead of lower-casing every token",
    )
    p.add_argument(
        "--subwords",
        action="store_true",
        help="also learn character n-gram vectors (fastText style), "
        "so unseen words get vectors",
    )
    p.add_argument(
        "--min-n",
        type=int,
        default=defaults.min_n,
        help="shortest n-gram with --subwords (default: %(default)s)",
    )
    p.add_argument(
        "--max-n",
        type=int,
        default=defaults.max_n,
        help="longest n-gram with --subwords (default: %(default)s)",
    )
    p.add_argument(
        "--buckets",
        type=int,
        default=defaults.buckets,
        help="hash buckets for n-grams with --subwords (default: %(default)s)",
    )
    p.add_argument(
        "--no-evaluate", action="store_true", help="skip the evaluation after training"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check the whole path in seconds: train 1 epoch on the first "
        f"~{DRY_RUN_TOKENS:,} tokens of the corpus, evaluate, write the bundle to "
        "a temporary directory, load it back and delete it; nothing is written "
        "at --output",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary to stdout")
    p.set_defaults(handler=run_train)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Return the TrainConfig the command-line flags describe."""
    return TrainConfig(
        architecture=args.architecture,
        dim=args.dim,
        window=args.window,
        negative=args.negative,
        min_count=args.min_count,
        max_vocab_size=args.max_vocab_size,
        sample=args.sample,
        epochs=args.epochs,
        lr=args.lr,
        min_lr=args.min_lr,
        threads=args.threads,
        processes=args.processes,
        sync_every=args.sync_every,
        seed=args.seed,
        device=args.device,
        backend=args.backend,
        lowercase=not args.keep_case,
        subwords=args.subwords,
        min_n=args.min_n,
        max_n=args.max_n,
        buckets=args.buckets,
    )


def validate_flags(config: TrainConfig) -> None:
    """Check `config` as TrainConfig.validate does, naming the flag at fault
    ("--min-count must be at least 1") instead of the setting."""
    try:
        config.validate()
    except ConfigError as exc:
        message = _SETTING_NAME.sub(
            lambda m: "--" + m.group(1).replace("_", "-"), str(exc)
        )
        raise ConfigError(message) from exc


def run_train(args: argparse.Namespace) -> int:
    """Train, write the bundle, print the summary; return the exit status."""
    from training.distributed import launched_by_torchrun, member_from_environment
    from training.dry_run import dry_run
    from training.trainer import train

    config = config_from_args(args)
    validate_flags(config)
    progress = not args.no_progress
    if launched_by_torchrun() and member_from_environment().rank != 0:
        # One progress bar and one log for the whole group, from rank 0.
        progress = False
        logging.getLogger().setLevel(
            max(logging.getLogger().getEffectiveLevel(), logging.WARNING)
        )
    if args.dry_run:
        result = dry_run(args.corpus, config, args.output, progress=progress)
    else:
        result = train(
            args.corpus,
            config,
            args.output,
            progress=progress,
            evaluate=not args.no_evaluate,
        )
    if result.rank == 0:
        print_summary(args, result)
    return 0


def print_summary(args: argparse.Namespace, result: "TrainResult") -> None:
    """Print what a training run or dry run did, as text or with --json."""
    summary = {
        "bundle": None if args.dry_run else str(result.bundle_path),
        "dry_run": args.dry_run,
        "training": result.stats,
        "evaluation": result.scores,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    if args.dry_run:
        print(
            "dry run: trained 1 epoch on the start of the corpus, wrote the "
            f"bundle, loaded and verified it, deleted it; {args.output} untouched"
        )
    else:
        print(f"wrote {result.bundle_path}")
    print(format_stats(result.stats))
    if result.scores:
        print(format_scores(result.scores))


def add_size_arguments(p: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    """Add --dim and --epochs, which `wordvec init` shares with `train`."""
    p.add_argument(
        "--dim",
        type=int,
        default=defaults.dim,
        help="vector dimensions (default: %(default)s)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=defaults.epochs,
        help="passes over the corpus (default: %(default)s)",
    )


def add_evaluate_parser(subparsers: Any) -> None:
    """Register `wordvec evaluate` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "evaluate",
        help="score a bundle on word-similarity and analogy sets",
        description="Spearman correlation on word-pair sets and accuracy on the "
        "Google analogy set. Without --pairs/--analogies, uses the shipped "
        "WordSim-353, SimLex-999 and Google analogy sets.",
    )
    p.add_argument(
        "bundle", type=Path, metavar="BUNDLE_DIR", help="model bundle directory"
    )
    p.add_argument(
        "--pairs",
        type=Path,
        nargs="+",
        action="extend",
        default=[],
        metavar="FILE",
        help="word-pair files, lines 'word1 word2 score'; scores are keyed by "
        "file name without suffix, or by the path as given when two names clash "
        "(the flag may also be repeated)",
    )
    p.add_argument(
        "--analogies",
        type=Path,
        metavar="FILE",
        help="analogy file in the Google format",
    )
    p.add_argument(
        "--restrict-vocab",
        type=int,
        default=30_000,
        help="analogy candidates: the N most frequent words, for the shipped "
        "Google set and --analogies alike (default: %(default)s)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the scores and the evaluation time (key 'seconds') as JSON "
        "to stdout",
    )
    p.set_defaults(handler=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a bundle and print the scores; return the exit status."""
    from training.bundle import load_bundle

    if args.restrict_vocab < 1:
        raise ConfigError(
            f"--restrict-vocab must be at least 1, got {args.restrict_vocab}"
        )
    bundle = load_bundle(args.bundle)
    started = time.perf_counter()
    scores = evaluate_files(bundle, args.pairs, args.analogies, args.restrict_vocab)
    seconds = round(time.perf_counter() - started, 3)
    if args.json:
        print(json.dumps({**scores, _SECONDS_KEY: seconds}, indent=2))
    else:
        print(format_scores(scores))
        print(f"  evaluated in {seconds:.2f} s")
    return 0


def evaluate_files(
    bundle: Any, pairs: list[Path], analogies: Path | None, restrict_vocab: int
) -> dict[str, Any]:
    """Return scores on the given files, or on the shipped sets when none is
    given, keyed as `result_names` says; a file given twice is scored once."""
    from training import evaluate

    if not pairs and analogies is None:
        return evaluate.evaluate_default(
            bundle.vocabulary, bundle.vectors, restrict_vocab=restrict_vocab
        )
    pairs = list(dict.fromkeys(pairs))
    names = result_names([*pairs, *([analogies] if analogies else [])])
    scores: dict[str, Any] = {}
    for path, name in zip(pairs, names, strict=False):
        pair_scores = evaluate.evaluate_word_pairs(
            bundle.vocabulary, bundle.vectors, path
        )
        scores[name] = dataclasses.asdict(pair_scores)
    if analogies is not None:
        analogy_scores = evaluate.evaluate_analogies(
            bundle.vocabulary, bundle.vectors, analogies, restrict_vocab=restrict_vocab
        )
        scores[names[-1]] = dataclasses.asdict(analogy_scores)
    return scores


def result_names(paths: list[Path]) -> list[str]:
    """Return the key of each file's scores: its name without suffix, or the
    path as given when another file has the same stem (or the stem is the
    key the timing uses), so no result overwrites another."""
    stems = Counter(path.stem for path in paths)
    return [
        path.stem if stems[path.stem] == 1 and path.stem != _SECONDS_KEY else str(path)
        for path in paths
    ]


def format_stats(stats: dict[str, Any]) -> str:
    """Return the training statistics as aligned `name: value` lines."""
    keys = [
        "seconds",
        "words_per_second",
        "backend",
        "device",
        "processes",
        "threads",
        "process_group_backend",
        "sync_every",
        "final_loss",
        "vocab_size",
    ]
    return "\n".join(f"  {k:<21} {_fmt(stats[k])}" for k in keys if k in stats)


def format_scores(scores: dict[str, Any]) -> str:
    """Return evaluation scores as one human-readable line per set."""
    lines = []
    for name, score in scores.items():
        if "spearman" in score:
            lines.append(
                f"  {name:<21} spearman {_fmt(score['spearman'])}  "
                f"({score['pairs']} pairs, {score['oov_pairs']} out of vocabulary)"
            )
        elif "total" in score:
            lines.append(
                f"  {name:<21} total {_fmt(score['total'])}  "
                f"semantic {_fmt(score['semantic'])}  "
                f"syntactic {_fmt(score['syntactic'])}  ({score['questions']} "
                f"questions, {score['oov_questions']} out of vocabulary)"
            )
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 1000 else f"{value:.4f}"
    return str(value)
