"""Time fine-tuning a bundle on uploads of given sizes, and score the model
before and after.

    .venv/bin/python benchmarks/finetune_time.py [--base models/default]
        [--sizes-mb 1 10] [--text FILE ...] [--probe-words buffer file]
        [--json OUT]

Each upload is the first N MB of the text files in sorted path order (cut at
a line end). The default text is Debian's own documentation, which the
default corpus does not contain: Perl's pod pages, Vim's help files and a few
licences (11.8 MB); 1 MB is then Perl pages alone, 10 MB mostly Vim help.
Every size is a fresh fine-tune of the base, in this process, one after the
other.

- seconds: wall time of the `finetune` call (reading, counting, encoding,
  training, evaluating and writing the bundle); training s is the epochs alone.
- words/s: raw upload tokens times epochs over the training time.
- probe: with --probe-words W ..., each size is fine-tuned once per word W,
  on the upload with every second W replaced by a made-up word; the rank of
  W among the made-up word's nearest neighbours (cosine, whole vocabulary)
  says whether the new word landed in W's place.
"""

import argparse
import glob
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.bundle import load_bundle  # noqa: E402
from training.finetune import FinetuneConfig, finetune  # noqa: E402
from training.vectors import normalise_rows  # noqa: E402

DEFAULT_TEXT = [
    "/usr/share/vim/vim9*/doc/*.txt",
    "/usr/share/perl/5.*/**/*.pod",
    "/usr/lib/x86_64-linux-gnu/perl*/**/*.pod",
    *(
        f"/usr/share/common-licenses/{name}"
        for name in ("GPL-3", "LGPL-3", "Apache-2.0", "MPL-2.0", "GFDL-1.3", "Artistic")
    ),
]
PROBE_WORD = "zorblat"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--base", default=str(ROOT / "models" / "default"), help="bundle to fine-tune"
    )
    p.add_argument(
        "--sizes-mb", nargs="+", type=float, default=[1, 10], help="upload sizes"
    )
    p.add_argument(
        "--text",
        nargs="+",
        default=DEFAULT_TEXT,
        help="text files (globs allowed) the uploads are cut from",
    )
    p.add_argument("--epochs", type=int, default=5, help="fine-tune epochs")
    p.add_argument("--lr", type=float, default=None, help="default: half the base's")
    p.add_argument("--min-count", type=int, default=5, help="for new words")
    p.add_argument("--threads", type=int, default=0, help="0: one per core")
    p.add_argument(
        "--probe-words",
        "--probe-word",
        nargs="+",
        default=[None],
        help="one fine-tune per word; see the module docstring",
    )
    p.add_argument("--json", default=None, help="also write the results here")
    return p.parse_args(argv)


def source_text(patterns: list[str]) -> bytes:
    """Return the matched files' bytes, concatenated in sorted name order."""
    files = sorted(
        {f for pattern in patterns for f in glob.glob(pattern, recursive=True)}
    )
    if not files:
        sys.exit(f"no text file matches {patterns}; pass --text")
    return b"".join(Path(f).read_bytes().rstrip(b"\n") + b"\n" for f in files)


def write_upload(text: bytes, size_mb: float, path: Path, probe: str | None) -> Path:
    """Write the first `size_mb` MB of `text`, cut at a line end, to `path`."""
    limit = int(size_mb * 1_000_000)
    if len(text) < limit:
        sys.exit(f"the text holds {len(text):,} bytes, fewer than {limit:,}")
    cut = text.rfind(b"\n", 0, limit) + 1
    upload = text[:cut].decode("utf-8", errors="replace")
    if probe is not None:
        upload = replace_every_second(upload, probe, PROBE_WORD)
    path.write_text(upload, encoding="utf-8")
    return path


def replace_every_second(text: str, word: str, new_word: str) -> str:
    seen = 0

    def swap(match: re.Match[str]) -> str:
        nonlocal seen
        seen += 1
        return new_word if seen % 2 == 0 else match.group()

    return re.sub(rf"\b{re.escape(word)}\b", swap, text, flags=re.IGNORECASE)


def probe_rank(bundle_path: Path, word: str) -> dict[str, Any]:
    """Where `word` ranks among PROBE_WORD's neighbours, and the top five."""
    bundle = load_bundle(bundle_path)
    lookup = bundle.vocabulary.word_to_id
    if PROBE_WORD not in lookup or word not in lookup:
        return {"rank": None, "neighbours": []}
    unit = normalise_rows(np.asarray(bundle.vectors))
    cosine_scores = unit @ unit[lookup[PROBE_WORD]]
    order = [int(i) for i in np.argsort(-cosine_scores) if i != lookup[PROBE_WORD]]
    words = bundle.vocabulary.words
    return {
        "rank": order.index(lookup[word]) + 1,
        "neighbours": [words[i] for i in order[:5]],
    }


def run_size(
    args: argparse.Namespace,
    text: bytes,
    size_mb: float,
    probe_word: str | None,
    work: Path,
) -> dict[str, Any]:
    upload = write_upload(text, size_mb, work / f"upload-{size_mb}mb.txt", probe_word)
    config = FinetuneConfig(
        epochs=args.epochs, lr=args.lr, min_count=args.min_count, threads=args.threads
    )
    output = work / f"finetuned-{size_mb}mb"
    started = time.perf_counter()
    result = finetune(Path(args.base), [upload], config, output)
    seconds = time.perf_counter() - started
    stats = result.stats
    row = {
        "size_mb": size_mb,
        "upload_bytes": upload.stat().st_size,
        "raw_tokens": stats["upload"]["raw_tokens"],
        "seconds": round(seconds, 2),
        "training_seconds": stats["training_seconds"],
        "words_per_second": stats["words_per_second"],
        "new_words": stats["new_words"],
        "new_words_sample": stats["new_words_sample"][:10],
        "lr": stats["config"]["lr"],
        "epochs": args.epochs,
        "before": headline(result.evaluation_before),
        "after": headline(result.evaluation_after),
    }
    if probe_word is not None:
        row["probe"] = {"word": probe_word, **probe_rank(output, probe_word)}
    shutil.rmtree(output)
    return row


def headline(scores: dict[str, Any] | None) -> dict[str, float | None]:
    if scores is None:
        return {}
    return {
        "wordsim353": scores["wordsim353"]["spearman"],
        "simlex999": scores["simlex999"]["spearman"],
        "analogies": scores["analogies"]["total"],
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'MB':>5} {'tokens':>9} {'seconds':>8} {'train s':>8} {'words/s':>9} "
        f"{'new':>6}  WordSim b->a     SimLex b->a      analogy b->a"
    )
    for r in rows:
        b, a = r["before"], r["after"]
        scores = "  ".join(
            f"{_fmt(b.get(k))}->{_fmt(a.get(k))}"
            for k in ("wordsim353", "simlex999", "analogies")
        )
        print(
            f"{r['size_mb']:>5} {r['raw_tokens']:>9,} {r['seconds']:>8.2f} "
            f"{r['training_seconds']:>8.2f} {r['words_per_second']:>9,} "
            f"{r['new_words']:>6}  {scores}"
        )
        if "probe" in r:
            probe = r["probe"]
            print(
                f"      probe: {probe['word']!r} ranks {probe['rank']} among "
                f"{PROBE_WORD!r}'s neighbours; top 5 {probe['neighbours']}"
            )


def _fmt(value: float | None) -> str:
    return "  -   " if value is None else f"{value:.4f}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    text = source_text(args.text)
    with tempfile.TemporaryDirectory(prefix="wordvec-finetune-bench-") as work:
        rows = [
            run_size(args, text, size, probe_word, Path(work))
            for size in args.sizes_mb
            for probe_word in args.probe_words
        ]
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
