"""`wordvec init`: give an empty data directory its first model.

A fresh deployment (the `init` service of docker-compose.yml) has a data
directory with nothing to serve. `init` trains the default model from the
shipped corpus, adds it as a version and activates it; on every later start
it finds the active version and does nothing. An exclusive lock on
DATA_DIR/.init.lock makes containers started together train only once: the
others wait, then find the version the first one activated.
"""

import argparse
import fcntl
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.registry import ModelRegistry, VersionNotFound
from training.cli import add_size_arguments
from training.config import TrainConfig
from training.errors import ConfigError, CorpusError

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "WORDVEC_DATA_DIR"
LOCK_FILE = ".init.lock"
DEFAULT_VERSION = "default"
DEFAULT_CORPUS = Path("data/corpus")


def add_init_parser(subparsers: Any) -> None:
    """Register `wordvec init` on an argparse subparsers object."""
    defaults = TrainConfig()
    p = subparsers.add_parser(
        "init",
        help="train and activate the default model when a data directory has none",
        description="Make sure a data directory has an active model version. When "
        "none is active, train one from CORPUS, add it as a version and activate "
        "it; otherwise do nothing. Safe to run from several processes at once: "
        "only one trains.",
    )
    p.add_argument(
        "--data-dir", type=Path, help=f"data directory (default: ${DATA_DIR_ENV})"
    )
    p.add_argument(
        "--corpus",
        type=Path,
        action="append",
        metavar="PATH",
        help="text file or directory to train on, repeatable "
        f"(default: {DEFAULT_CORPUS}, relative to the working directory)",
    )
    p.add_argument(
        "--version",
        default=DEFAULT_VERSION,
        help="name of the version to create (default: %(default)s)",
    )
    add_size_arguments(p, defaults)
    p.add_argument(
        "--threads",
        type=int,
        default=defaults.threads,
        help="CPU threads; 0 uses every core (default: %(default)s)",
    )
    p.set_defaults(handler=run_init)


def run_init(args: argparse.Namespace) -> int:
    """Ensure the data directory has an active version; return the exit status."""
    registry = ModelRegistry(_data_dir(args))
    corpus = args.corpus or [DEFAULT_CORPUS]
    config = TrainConfig(dim=args.dim, epochs=args.epochs, threads=args.threads)
    config.validate()
    version = ensure_active_version(registry, corpus, config, args.version)
    sys.stdout.write(f"active version: {version}\n")
    return 0


def ensure_active_version(
    registry: ModelRegistry, corpus: list[Path], config: TrainConfig, version: str
) -> str:
    """Return the active version of `registry`, first training `version` from
    `corpus` and activating it when no version is active.

    Raises CorpusError for a missing corpus, VersionExists when `version`
    exists but is not the active one, ActivationRefused when it fails its
    checks.
    """
    active = registry.active_version()
    if active is not None:
        logger.info(
            "version %s is active in %s; nothing to do", active, registry.data_dir
        )
        return active
    with _exclusive_lock(registry.data_dir / LOCK_FILE):
        # Another process may have finished while this one waited.
        active = registry.active_version()
        if active is not None:
            logger.info("version %s was activated meanwhile; nothing to do", active)
            return active
        if _activate_existing(registry, version):
            return version
        _check_corpus(corpus)
        _train_and_activate(registry, corpus, config, version)
    return version


def _activate_existing(registry: ModelRegistry, version: str) -> bool:
    """Activate `version` if it was published but never activated (an earlier
    run stopped between the two steps); return whether it was there."""
    try:
        registry.get(version)
    except VersionNotFound:
        return False
    logger.info("version %s exists but is not active; activating it", version)
    registry.activate(version)
    return True


def _train_and_activate(
    registry: ModelRegistry, corpus: list[Path], config: TrainConfig, version: str
) -> None:
    from training.trainer import train

    staging = registry.staging_path(version)
    logger.info(
        "no active version in %s: training %r from %s (progress below)",
        registry.data_dir, version, ", ".join(str(p) for p in corpus),
    )  # fmt: skip
    try:
        result = train(corpus, config, staging, progress=True, evaluate=True)
        logger.info("trained in %.0f s; building its index", result.stats["seconds"])
        registry.add(result.bundle_path, version=version, activate=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("version %s is trained and active", version)


def _check_corpus(corpus: list[Path]) -> None:
    missing = [str(path) for path in corpus if not path.exists()]
    if missing:
        raise CorpusError(
            f"the corpus {', '.join(missing)} does not exist (working directory "
            f"{Path.cwd()}); give the shipped data/corpus or your own text with "
            "--corpus PATH"
        )


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing) for the block,
    waiting for whoever holds it."""
    with open(path, "a+b") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("another process is initialising %s; waiting", path.parent)
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _data_dir(args: argparse.Namespace) -> Path:
    data_dir = args.data_dir or os.environ.get(DATA_DIR_ENV)
    if not data_dir:
        raise ConfigError(
            f"no data directory: give --data-dir DIR or set {DATA_DIR_ENV}"
        )
    return Path(data_dir)
