"""`wordvec export` and `wordvec import`: move vectors between wordvec bundles
and the word2vec, GloVe and fastText file formats. `wordvec index`: build a
bundle's FAISS index."""

import argparse
import os
from pathlib import Path
from typing import Any

from training.errors import ConfigError

IMPORT_FORMATS = ["word2vec-text", "word2vec-binary", "glove", "fasttext-vec"]
EXPORT_FORMATS = ["word2vec-text", "word2vec-binary"]


def add_export_parser(subparsers: Any) -> None:
    """Register `wordvec export` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "export",
        help="write a bundle's vectors in the word2vec text or binary format",
        description="Write the word vectors of a bundle in a format gensim "
        "(KeyedVectors.load_word2vec_format), fastText and the word2vec tool read.",
    )
    p.add_argument(
        "bundle", type=Path, metavar="BUNDLE_DIR", help="model bundle directory"
    )
    p.add_argument(
        "--format", required=True, choices=EXPORT_FORMATS, help="output format"
    )
    p.add_argument(
        "--output", required=True, type=Path, metavar="FILE", help="file to write"
    )
    p.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Export the vectors and print where they went; return the exit status."""
    from index.formats import export_vectors

    check_output_file(args.output)
    path = export_vectors(args.bundle, args.format, args.output)
    print(f"wrote {path}")
    return 0


def check_output_file(path: Path) -> None:
    """Raise ConfigError unless a file can be written (or replaced) at `path`:
    its directory must exist and be writable, and `path` must not be one."""
    directory = path.absolute().parent
    if path.is_dir():
        raise ConfigError(
            f"cannot write {path}: it is a directory; give a file name, "
            f"e.g. {path / 'vectors.txt'}"
        )
    if not directory.exists():
        raise ConfigError(
            f"cannot write {path}: the directory {directory} does not exist; "
            "create it first or choose another path"
        )
    if not directory.is_dir():
        raise ConfigError(
            f"cannot write {path}: {directory} is a file, not a directory; "
            "choose a path inside a directory"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot write {path}: no permission to write in {directory}; "
            "choose a directory you can write to"
        )


def add_import_parser(subparsers: Any) -> None:
    """Register `wordvec import` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "import",
        help="make a bundle from word2vec, GloVe or fastText .vec vectors",
        description="Read vectors trained elsewhere into a wordvec bundle. The files "
        "carry no word counts, so counts are estimated from each word's rank.",
    )
    p.add_argument("file", type=Path, metavar="FILE", help="vector file to read")
    p.add_argument(
        "--format", required=True, choices=IMPORT_FORMATS, help="input format"
    )
    p.add_argument(
        "--output",
        required=True,
        type=Path,
        metavar="BUNDLE_DIR",
        help="bundle directory to write",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="keep only the first N words (files list the most frequent first)",
    )
    p.add_argument(
        "--lowercase",
        action="store_true",
        help="lower-case every word as the server does with queries; case variants "
        "merge into the first (most frequent) one's vector",
    )
    p.set_defaults(handler=run_import)


def run_import(args: argparse.Namespace) -> int:
    """Import the vectors and print where the bundle went; return the exit status."""
    from index.formats import import_vectors
    from training.bundle import check_bundle_output

    # Before the file is read, which can take long for a large one.
    check_bundle_output(args.output)
    path = import_vectors(
        args.file,
        args.format,
        args.output,
        limit=args.limit,
        lowercase=args.lowercase,
    )
    print(f"wrote {path}")
    return 0


def add_index_parser(subparsers: Any) -> None:
    """Register `wordvec index` on an argparse subparsers object."""
    from index.build import IndexConfig
    from index.kinds import KIND_CHOICES

    defaults = IndexConfig()
    p = subparsers.add_parser(
        "index",
        help="(re)build a bundle's FAISS index and measure its recall@10",
        description="Build the nearest-neighbour index of a bundle into BUNDLE_DIR/"
        "index, replacing any old one only when the new one meets the recall floor.",
    )
    p.add_argument(
        "bundle", type=Path, metavar="BUNDLE_DIR", help="model bundle directory"
    )
    p.add_argument(
        "--index",
        dest="kind",
        choices=KIND_CHOICES,
        default=defaults.kind,
        help="flat (exact), hnsw, ivf-pq, or auto: by vocabulary size and "
        "--memory-budget-mb (default: %(default)s)",
    )
    p.add_argument(
        "--recall-floor",
        type=float,
        default=defaults.recall_floor,
        help="fail when recall@10 against exact search is lower (default: %(default)s)",
    )
    p.add_argument(
        "--memory-budget-mb",
        type=float,
        default=defaults.memory_budget_mb,
        help="auto picks ivf-pq when HNSW would need more (default: %(default)s)",
    )
    _add_tuning_flags(p, defaults)
    p.set_defaults(handler=run_index)


def _add_tuning_flags(p: argparse.ArgumentParser, defaults: Any) -> None:
    flags = [
        ("--hnsw-m", "hnsw_m", "HNSW neighbours per word (M)"),
        ("--ef-construction", "ef_construction", "HNSW efConstruction"),
        ("--max-ef-search", "max_ef_search", "largest HNSW efSearch tried"),
        ("--max-nprobe", "max_nprobe", "largest IVF nprobe tried"),
        ("--refine-factor", "refine_factor", "IVF-PQ candidates re-ranked per result"),
        ("--recall-sample", "recall_sample", "query words recall is measured on"),
        ("--seed", "seed", "seed of the recall sample and IVF training sample"),
        (
            "--precompute-words",
            "precompute_words",
            "most frequent words given exact neighbour lists; 0: none",
        ),
        ("--precompute-k", "precompute_k", "neighbours per precomputed list"),
    ]
    for flag, name, text in flags:
        default = getattr(defaults, name)
        p.add_argument(
            flag, dest=name, type=int, default=default, help=f"{text} ({default})"
        )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="FAISS threads while building (default: all cores); queries use one",
    )


def run_index(args: argparse.Namespace) -> int:
    """Build the index and print its kind and recall; return the exit status."""
    from index.build import IndexConfig, build_index

    config = IndexConfig(
        kind=args.kind,
        recall_floor=args.recall_floor,
        memory_budget_mb=args.memory_budget_mb,
        hnsw_m=args.hnsw_m,
        ef_construction=args.ef_construction,
        max_ef_search=args.max_ef_search,
        max_nprobe=args.max_nprobe,
        refine_factor=args.refine_factor,
        recall_sample=args.recall_sample,
        seed=args.seed,
        threads=args.threads,
        precompute_words=args.precompute_words,
        precompute_k=args.precompute_k,
    )
    info = build_index(args.bundle, config)
    print(
        f"built {info['kind']} index in {args.bundle / 'index'}: "
        f"recall@10 {info['recall_at_10']:.4f}, {info['build_seconds']:.1f} s"
    )
    return 0
