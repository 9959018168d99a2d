"""The `wordvec` command: one entry point whose subcommands come from each floor.

Every error wordvec raises on purpose ends the command with one line on
stderr naming the problem and the fix, and exit status 2.
"""

import argparse
import logging
import sys

from pydantic import ValidationError

from app import bootstrap, models_cli
from app import serve as serve_cli
from app.jobs import worker as worker_cli
from index import cli as index_cli
from training import cli as training_cli
from training.errors import WordvecError

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for `wordvec` and all its subcommands."""
    parser = argparse.ArgumentParser(
        prog="wordvec",
        description="Train word vectors, index them and serve them over HTTP.",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging detail on stderr (default: %(default)s)",
    )
    subparsers = parser.add_subparsers(
        title="commands", metavar="COMMAND", required=True
    )
    training_cli.add_train_parser(subparsers)
    training_cli.add_evaluate_parser(subparsers)
    index_cli.add_export_parser(subparsers)
    index_cli.add_import_parser(subparsers)
    index_cli.add_index_parser(subparsers)
    serve_cli.add_serve_parser(subparsers)
    models_cli.add_models_parser(subparsers)
    worker_cli.add_worker_parser(subparsers)
    bootstrap.add_init_parser(subparsers)
    return parser


def configure_logging(level: str) -> None:
    """Send log records to stderr, one line each."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    """Run `wordvec` with `argv` and return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        status: int = args.handler(args)
    except WordvecError as exc:
        sys.stderr.write(f"wordvec: error: {exc}\n")
        return 2
    except ValidationError as exc:
        # Settings from WORDVEC_* variables that fail their checks.
        sys.stderr.write(f"wordvec: error: invalid setting: {_settings_errors(exc)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("wordvec: interrupted\n")
        return 130
    return status


def _settings_errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"])
        variable = f"WORDVEC_{name.upper()}" if name else "settings"
        parts.append(f"{variable}: {error['msg']}")
    return "; ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
