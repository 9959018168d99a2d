"""`wordvec export` and `wordvec import`: move vectors between wordvec bundles
and the word2vec, GloVe and fastText file formats."""

import argparse
from pathlib import Path
from typing import Any

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

    path = export_vectors(args.bundle, args.format, args.output)
    print(f"wrote {path}")
    return 0


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
    p.set_defaults(handler=run_import)


def run_import(args: argparse.Namespace) -> int:
    """Import the vectors and print where the bundle went; return the exit status."""
    from index.formats import import_vectors

    path = import_vectors(args.file, args.format, args.output, limit=args.limit)
    print(f"wrote {path}")
    return 0
