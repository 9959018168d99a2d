"""`wordvec models add|list|activate|delete`: the versions in a data directory."""

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from app.registry import ModelRegistry, manifest_summary
from index import kinds
from index.build import IndexConfig
from training.errors import ConfigError

DATA_DIR_ENV = "WORDVEC_DATA_DIR"


def add_models_parser(subparsers: Any) -> None:
    """Register `wordvec models` and its subcommands on argparse `subparsers`."""
    p = subparsers.add_parser(
        "models",
        help="add, list, activate and delete model versions in a data directory",
        description="Manage the model versions kept in a data directory. Servers "
        "started with `wordvec serve --data-dir DIR` follow the active version.",
    )
    commands = p.add_subparsers(title="commands", metavar="COMMAND", required=True)

    add = commands.add_parser(
        "add",
        help="register a bundle as a new version",
        description="Copy a trained or imported bundle into the data directory as "
        "a new, immutable version, building its index if it has none.",
    )
    add.add_argument("bundle", type=Path, metavar="BUNDLE_DIR", help="bundle to add")
    add.add_argument(
        "--version", help="name of the new version (default: a time-stamped name)"
    )
    add.add_argument(
        "--activate", action="store_true", help="make it the active version too"
    )
    add.add_argument(
        "--index-kind",
        default="auto",
        choices=kinds.KIND_CHOICES,
        help="index to build when the bundle has none (default: %(default)s)",
    )
    add.set_defaults(handler=run_add)

    listing = commands.add_parser("list", help="list the versions, oldest first")
    listing.add_argument(
        "--json", action="store_true", help="print a JSON array instead of a table"
    )
    listing.set_defaults(handler=run_list)

    activate = commands.add_parser(
        "activate",
        help="check a version and make it the one servers answer with",
        description="Check a version (checksums, index, a test query) and make it "
        "active; servers switch to it within their reload interval. A version "
        "that fails its checks is refused and the active one stays.",
    )
    activate.add_argument("version", metavar="VERSION")
    activate.set_defaults(handler=run_activate)

    delete = commands.add_parser(
        "delete", help="remove a version (never the active one)"
    )
    delete.add_argument("version", metavar="VERSION")
    delete.set_defaults(handler=run_delete)

    for command in (add, listing, activate, delete):
        command.add_argument(
            "--data-dir",
            type=Path,
            help=f"data directory (default: ${DATA_DIR_ENV})",
        )


def run_add(args: argparse.Namespace) -> int:
    """Add the bundle as a version and print its name."""
    registry = _registry(args)
    config = IndexConfig(kind=args.index_kind)
    info = registry.add(
        args.bundle, version=args.version, activate=args.activate, index_config=config
    )
    state = "added and activated" if info.active else "added"
    sys.stdout.write(f"{state} version {info.version}\n")
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Print the versions, oldest first, marking the active one."""
    summaries = [manifest_summary(info) for info in _registry(args).versions()]
    if args.json:
        sys.stdout.write(json.dumps(summaries, indent=2) + "\n")
        return 0
    if not summaries:
        sys.stdout.write("no versions yet; add one with `wordvec models add`\n")
        return 0
    rows = [("", "VERSION", "CREATED", "WORDS", "DIM", "INDEX")]
    for s in summaries:
        created = str(s["created_at"] or "-")
        index = str(s["index_kind"] or "-")
        rows.append(
            ("*" if s["active"] else "", s["version"], created,
             str(s["vocab_size"]), str(s["dim"]), index)
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        line = "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        )
        sys.stdout.write(line.rstrip() + "\n")
    return 0


def run_activate(args: argparse.Namespace) -> int:
    """Check and activate the version."""
    _registry(args).activate(args.version)
    sys.stdout.write(f"activated version {args.version}\n")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    """Delete the version."""
    _registry(args).delete(args.version)
    sys.stdout.write(f"deleted version {args.version}\n")
    return 0


def _registry(args: argparse.Namespace) -> ModelRegistry:
    data_dir = args.data_dir or os.environ.get(DATA_DIR_ENV)
    if not data_dir:
        raise ConfigError(
            f"no data directory: give --data-dir DIR or set {DATA_DIR_ENV}"
        )
    return ModelRegistry(Path(data_dir))
