"""The `wordvec` command: one entry point whose subcommands come from each floor.

Every error wordvec raises on purpose (bad input or settings) ends the command
with one line on stderr naming the problem and the fix, and exit status 2.
What the system refuses while a command runs (a full disk, a permission, an
I/O error, memory it cannot give) is one line too, with exit status 1; its
traceback is logged only with `--log-level DEBUG`.

Each subcommand's module is imported only when that subcommand runs, so that
`wordvec train` and `wordvec evaluate` never load FAISS, FastAPI or uvicorn.
"""

import argparse
import errno
import importlib
import logging
import os
import sys
from typing import Any

from training.errors import WordvecError

logger = logging.getLogger(__name__)

# Subcommand -> (module, function that registers it), in `--help` order.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("training.cli", "add_train_parser"),
    "evaluate": ("training.cli", "add_evaluate_parser"),
    "export": ("index.cli", "add_export_parser"),
    "import": ("index.cli", "add_import_parser"),
    "index": ("index.cli", "add_index_parser"),
    "serve": ("app.serve", "add_serve_parser"),
    "models": ("app.models_cli", "add_models_parser"),
    "worker": ("app.jobs.worker", "add_worker_parser"),
    "init": ("app.bootstrap", "add_init_parser"),
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_LEVEL_VARIABLE = "WORDVEC_LOG_LEVEL"
# Exit statuses: bad input or settings, and a refusal by the system.
BAD_INPUT = 2
SYSTEM_ERROR = 1


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Return the parser for `wordvec` and all its subcommands, or with only
    the subcommand `only` (a key of COMMANDS), which imports only its module."""
    parser = argparse.ArgumentParser(
        prog="wordvec",
        description="Train word vectors, index them and serve them over HTTP.",
    )
    parser.add_argument(
        "--log-level",
        default=None,
        choices=LOG_LEVELS,
        help=f"logging detail on stderr (default: {LOG_LEVEL_VARIABLE}, else INFO)",
    )
    subparsers = parser.add_subparsers(
        title="commands", metavar="COMMAND", required=True
    )
    for name, (module, function) in COMMANDS.items():
        if only is None or name == only:
            getattr(importlib.import_module(module), function)(subparsers)
    return parser


def chosen_command(argv: list[str]) -> str | None:
    """Return the subcommand `argv` runs, or None when it asks for the top-level
    help, names no known subcommand or starts with an option we do not know."""
    skip_value = False
    for token in argv:
        if skip_value:
            skip_value = False
        elif token == "--log-level":
            skip_value = True
        elif token.startswith("--log-level="):
            continue
        elif token.startswith("-"):
            return None
        else:
            return token if token in COMMANDS else None
    return None


def configure_logging(level: str) -> None:
    """Send log records to stderr, one line each."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def log_level(flag: str | None) -> str:
    """Return the log level: the flag, else WORDVEC_LOG_LEVEL, else INFO.

    Read straight from the environment so that commands which never load
    the server settings (and pydantic) still honour it. Raises WordvecError
    for a value the server settings would refuse too.
    """
    if flag is not None:
        return flag
    value = os.environ.get(LOG_LEVEL_VARIABLE, "").strip()
    if not value:
        return "INFO"
    if value not in LOG_LEVELS:
        raise WordvecError(
            f"invalid setting: {LOG_LEVEL_VARIABLE}={value!r}; use one of "
            f"{', '.join(LOG_LEVELS)} (upper case)"
        )
    return value


def main(argv: list[str] | None = None) -> int:
    """Run `wordvec` with `argv` and return the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(chosen_command(argv)).parse_args(argv)
    try:
        args.log_level = log_level(args.log_level)
    except WordvecError as exc:
        return _fail(str(exc), BAD_INPUT)
    configure_logging(args.log_level)
    try:
        status: int = args.handler(args)
    except WordvecError as exc:
        return _fail(str(exc), BAD_INPUT)
    except KeyboardInterrupt:
        sys.stderr.write("wordvec: interrupted\n")
        return 130
    except MemoryError as exc:
        logger.debug("out of memory", exc_info=True)
        return _fail(_memory_message(exc), SYSTEM_ERROR)
    except OSError as exc:
        logger.debug("system error", exc_info=True)
        return _fail(_os_message(exc), SYSTEM_ERROR)
    except Exception as exc:
        if not _is_settings_error(exc):
            raise
        # Settings from WORDVEC_* variables that fail their checks.
        return _fail(f"invalid setting: {_settings_errors(exc)}", BAD_INPUT)
    return status


def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"wordvec: error: {message}\n")
    return status


def _is_settings_error(exc: Exception) -> bool:
    # pydantic is imported only by the commands that read server settings;
    # when it was never loaded, nothing can have raised its ValidationError.
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(exc, pydantic.ValidationError)


def _settings_errors(exc: Any) -> str:
    parts = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"])
        variable = f"WORDVEC_{name.upper()}" if name else "settings"
        parts.append(f"{variable}: {error['msg']}")
    return "; ".join(parts)


def _memory_message(exc: MemoryError) -> str:
    detail = " ".join(str(exc).split()) or "an allocation failed"
    return (
        f"out of memory: {detail}; lower --dim or the vocabulary size "
        "(--min-count, --max-vocab-size), or free memory"
    )


# What to do about the system errors a command is most likely to meet.
_OS_HINTS = {
    errno.ENOSPC: "free disk space or write somewhere else",
    errno.EDQUOT: "free disk space or write somewhere else",
    errno.EACCES: "check the permissions or choose another path",
    errno.EPERM: "check the permissions or choose another path",
    errno.EROFS: "the filesystem is read-only; choose another path",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a directory; check the path",
    errno.EISDIR: "the path is a directory; give a file name",
    errno.EEXIST: "choose a path that does not exist yet",
}


def _os_message(exc: OSError) -> str:
    # TODO: a failed atomic write names its temporary sibling (.NAME.tmp-HEX),
    # not the file asked for; training/durable.py could re-raise with the
    # target's name so this line names the path the user gave.
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        what = f"{what}: {exc.filename}"
    hint = _OS_HINTS.get(exc.errno or 0, "check the path and the machine")
    return f"{what}; {hint}"


if __name__ == "__main__":
    sys.exit(main())
