"""Model bundles: the directory of vectors, vocabulary, training state and
manifest that training writes once and every later step reads.

The layout and the manifest keys are described in docs/bundle-format.md.
"""

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from training.durable import (
    fsync_directory,
    replace_directory,
    sha256_file,
    temporary_sibling,
    write_json,
)
from training.errors import BundleError
from training.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

BUNDLE_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VECTORS = "vectors.npy"
VOCABULARY = "vocabulary.tsv"
OUTPUT_VECTORS = "training/output_vectors.npy"
SUBWORD_VECTORS = "training/subword_vectors.npy"
STATE = "training/state.json"

# Names of directories a write leaves behind if it is interrupted; loaders and
# registries skip them (see `is_temporary_name`).
_TEMPORARY = re.compile(r"\..+\.(tmp|old)-[0-9a-f]+")
# Rows checked for NaN/inf at a time, so a large matrix needs no full-size mask.
_FINITE_CHECK_ROWS = 65_536


@dataclass
class TrainingState:
    """What a fine-tune needs besides the word vectors to go on training."""

    output_vectors: np.ndarray  # float32 (vocab_size, dim)
    subword_vectors: np.ndarray | None  # float32 (buckets, dim)
    state: dict[str, Any]  # see docs/bundle-format.md, training/state.json


@dataclass
class Bundle:
    """A bundle read from disk. `vectors` is read-only (memory-mapped by default)."""

    path: Path
    manifest: dict[str, Any]
    vocabulary: Vocabulary
    vectors: np.ndarray  # float32 (vocab_size, dim)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def vocab_size(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def version(self) -> str:
        return str(self.manifest.get("version") or self.path.name)

    def load_training_state(self) -> TrainingState | None:
        """Return the state to continue training from, or None if the bundle has none.

        The arrays are read into memory and writable (training changes them).
        Raises BundleError when the files are unreadable or their shapes are wrong.
        """
        if not (self.path / STATE).is_file():
            return None
        output_vectors = _load_array(self.path / OUTPUT_VECTORS, mmap=False)
        _check_shape(self.path / OUTPUT_VECTORS, output_vectors, self.vectors.shape)
        state = _read_json(self.path / STATE)
        subword_vectors = None
        if (self.path / SUBWORD_VECTORS).is_file():
            subword_vectors = _load_array(self.path / SUBWORD_VECTORS, mmap=False)
            _check_shape(self.path / SUBWORD_VECTORS, subword_vectors, (None, self.dim))
        elif state.get("subwords"):
            raise BundleError(
                f"{self.path / STATE} describes subwords but {SUBWORD_VECTORS} is "
                "missing; the bundle is damaged, train or import it again"
            )
        return TrainingState(output_vectors, subword_vectors, state)


def is_temporary_name(name: str) -> bool:
    """Return True for the names of unfinished or discarded bundle directories.

    `write_bundle` builds a bundle in `.<name>.tmp-<hex>` and moves a replaced
    one to `.<name>.old-<hex>`; a crash can leave either behind, and neither
    is a bundle. They are safe to delete once no write is running.
    """
    return _TEMPORARY.fullmatch(name) is not None


def load_bundle(path: Path | str, *, verify: bool = False, mmap: bool = True) -> Bundle:
    """Return the bundle stored in directory `path`.

    `verify` also checks every file's SHA-256 (reads every byte); without it
    only file sizes and array shapes are checked. `mmap` maps `vectors.npy`
    instead of reading it, so processes share one copy in the page cache.
    Raises BundleError naming the problem (missing directory or manifest,
    unknown format_version, size or shape mismatch).
    """
    path = Path(path)
    manifest = read_manifest(path)
    if verify:
        verify_bundle(path)
    else:
        check_listed_files(path, manifest["files"])
    vectors = _load_array(path / VECTORS, mmap=mmap)
    vectors.setflags(write=False)
    _check_shape(path / VECTORS, vectors, (manifest["vocab_size"], manifest["dim"]))
    vocabulary = _check_vocabulary_size(path, manifest)
    logger.info(
        "loaded bundle %s: %d words, dim %d", path, len(vocabulary), vectors.shape[1]
    )
    return Bundle(path, manifest, vocabulary, vectors)


def read_manifest(path: Path) -> dict[str, Any]:
    """Return the manifest of bundle directory `path`, checked for format version 1.

    Raises BundleError if `path` is not a finished bundle directory.
    """
    if is_temporary_name(path.name):
        raise BundleError(
            f"{path} is a temporary directory left by an interrupted bundle write, "
            "not a bundle; delete it"
        )
    if not path.exists():
        raise BundleError(f"no bundle at {path}: the directory does not exist")
    if not path.is_dir():
        raise BundleError(
            f"{path} is not a bundle directory: it is a file; give the directory "
            "that `wordvec train` or `wordvec import` wrote"
        )
    if not (path / MANIFEST).is_file():
        raise BundleError(f"{path} is not a bundle: it has no {MANIFEST}")
    manifest = _read_json(path / MANIFEST)
    version = manifest.get("format_version")
    if version != BUNDLE_FORMAT_VERSION:
        raise BundleError(
            f"{path / MANIFEST} has format_version {version!r}; this wordvec reads "
            f"version {BUNDLE_FORMAT_VERSION} only, so use the wordvec that wrote it"
        )
    for key in ("vocab_size", "dim", "files"):
        if key not in manifest:
            raise BundleError(
                f"{path / MANIFEST} lacks the key {key!r}; the bundle is damaged"
            )
    return manifest


def verify_bundle(path: Path | str) -> None:
    """Check every file of the bundle against the manifest's checksums and shapes.

    Raises BundleError naming the first file that is missing, has the wrong
    size or SHA-256, or holds an array of the wrong shape.
    """
    path = Path(path)
    manifest = read_manifest(path)
    check_listed_files(path, manifest["files"], checksums=True)
    shape = (manifest["vocab_size"], manifest["dim"])
    _check_shape(path / VECTORS, _load_array(path / VECTORS, mmap=True), shape)
    _check_vocabulary_size(path, manifest)
    if (path / OUTPUT_VECTORS).is_file():
        output_vectors = _load_array(path / OUTPUT_VECTORS, mmap=True)
        _check_shape(path / OUTPUT_VECTORS, output_vectors, shape)
    if (path / SUBWORD_VECTORS).is_file():
        subword_vectors = _load_array(path / SUBWORD_VECTORS, mmap=True)
        _check_shape(path / SUBWORD_VECTORS, subword_vectors, (None, shape[1]))


def write_bundle(
    output_dir: Path,
    *,
    vocabulary: Vocabulary,
    vectors: np.ndarray,
    manifest: dict[str, Any],
    training_state: TrainingState | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a bundle to `output_dir` atomically and return its path.

    `vectors` is float32 (vocab_size, dim) in vocabulary id order. The given
    `manifest` keys are kept; format_version, wordvec_version, created_at,
    vocab_size, dim and files are filled in. The bundle is built in a
    temporary sibling directory, fsynced and renamed into place.

    With `overwrite`, an existing bundle trades places with the new one in
    one step and is then deleted (on systems without renameat2, two renames:
    see `training.durable.replace_directory`). Raises BundleError for bad arrays,
    a manifest that is not JSON, an existing `output_dir` without
    `overwrite`, or one that is not a bundle (never deleted).
    """
    output_dir = Path(output_dir)
    _check_arrays(vocabulary, vectors, training_state)
    check_bundle_output(output_dir, overwrite=overwrite)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(output_dir, "tmp")
    temporary.mkdir()
    try:
        _write_contents(temporary, vocabulary, vectors, manifest, training_state)
        _move_into_place(temporary, output_dir, overwrite)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    logger.info("wrote bundle %s: %d words, dim %d", output_dir, *vectors.shape)
    return output_dir


def _write_contents(
    directory: Path,
    vocabulary: Vocabulary,
    vectors: np.ndarray,
    manifest: dict[str, Any],
    training_state: TrainingState | None,
) -> None:
    _save_array(directory / VECTORS, vectors)
    vocabulary.save(directory / VOCABULARY)
    if training_state is not None:
        (directory / "training").mkdir()
        _save_array(directory / OUTPUT_VECTORS, training_state.output_vectors)
        if training_state.subword_vectors is not None:
            _save_array(directory / SUBWORD_VECTORS, training_state.subword_vectors)
        _write_json(directory / STATE, training_state.state)
        fsync_directory(directory / "training")
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    full = dict(manifest)
    full.update(
        format_version=BUNDLE_FORMAT_VERSION,
        wordvec_version=_package_version(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        vocab_size=int(vectors.shape[0]),
        dim=int(vectors.shape[1]),
        files={
            p.relative_to(directory).as_posix(): {
                "sha256": sha256_file(p),
                "bytes": p.stat().st_size,
            }
            for p in files
        },
    )
    # The manifest goes last: a directory without one is never a bundle.
    _write_json(directory / MANIFEST, full)
    fsync_directory(directory)


def check_bundle_output(output_dir: Path, *, overwrite: bool = False) -> None:
    """Raise BundleError unless a bundle can be written at `output_dir`.

    Runs before any work, so a bad path fails at once rather than after a
    whole training run: `output_dir` must not exist (unless `overwrite`, when
    it must be a bundle), and its nearest existing ancestor must be a
    directory this process can write in (missing parents are created).
    """
    output_dir = Path(output_dir)
    if os.path.lexists(output_dir):
        if not overwrite:
            raise BundleError(f"{output_dir} already exists; choose another path")
        # Overwriting deletes the old directory, so it had better be a bundle.
        if not (output_dir / MANIFEST).is_file():
            raise BundleError(
                f"refusing to overwrite {output_dir}: it is not a bundle "
                f"(no {MANIFEST})"
            )
    ancestor = output_dir.absolute().parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise BundleError(
            f"cannot create {output_dir}: {ancestor} is a file, not a directory; "
            "choose an output path inside a directory"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise BundleError(
            f"cannot create {output_dir}: no permission to write in {ancestor}; "
            "choose a directory you can write to"
        )


def _move_into_place(temporary: Path, output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and not overwrite:
        raise BundleError(f"{output_dir} appeared while the bundle was written")
    old = replace_directory(temporary, output_dir)
    fsync_directory(output_dir.parent)
    if old is not None:
        shutil.rmtree(old)


def _check_arrays(
    vocabulary: Vocabulary, vectors: np.ndarray, training_state: TrainingState | None
) -> None:
    _check_matrix("vectors", vectors, (len(vocabulary), None))
    if vectors.shape[1] < 1 or vectors.shape[0] < 1:
        raise BundleError(
            f"vectors has shape {vectors.shape}; a bundle needs words and dim >= 1"
        )
    for word_id, word in enumerate(vocabulary.words):
        if "\n" in word or "\r" in word:
            raise BundleError(
                f"word {word_id} ({word!r}) contains a line break; remove it"
            )
    if training_state is None:
        return
    _check_matrix("output_vectors", training_state.output_vectors, vectors.shape)
    if training_state.subword_vectors is not None:
        _check_matrix(
            "subword_vectors", training_state.subword_vectors, (None, vectors.shape[1])
        )


def _check_matrix(name: str, array: np.ndarray, shape: tuple[int | None, ...]) -> None:
    if not isinstance(array, np.ndarray) or array.dtype != np.float32:
        found = getattr(array, "dtype", type(array).__name__)
        raise BundleError(
            f"{name} must be a float32 numpy array, got {found}; "
            "convert it with .astype(np.float32)"
        )
    if not _shape_matches(array.shape, shape):
        raise BundleError(
            f"{name} has shape {array.shape}, expected {_shape_text(shape)}"
        )
    for start in range(0, array.shape[0], _FINITE_CHECK_ROWS):
        block = array[start : start + _FINITE_CHECK_ROWS]
        if not np.isfinite(block).all():
            row = start + int(np.argwhere(~np.isfinite(block))[0][0])
            raise BundleError(
                f"{name} row {row} holds NaN or infinity; training diverged (lower lr)"
            )


def _check_shape(path: Path, array: np.ndarray, shape: tuple[int | None, ...]) -> None:
    if array.dtype != np.float32 or not _shape_matches(array.shape, shape):
        raise BundleError(
            f"{path} holds a {array.dtype} array of shape {array.shape}, expected "
            f"float32 {_shape_text(shape)}; the bundle is damaged"
        )


def _check_vocabulary_size(path: Path, manifest: dict[str, Any]) -> Vocabulary:
    vocabulary = Vocabulary.load(path / VOCABULARY)
    if len(vocabulary) != manifest["vocab_size"]:
        raise BundleError(
            f"{path / VOCABULARY} has {len(vocabulary)} words but the manifest "
            f"says {manifest['vocab_size']}; the bundle is damaged"
        )
    return vocabulary


def _shape_matches(actual: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    if len(actual) != len(expected):
        return False
    return all(e is None or a == e for a, e in zip(actual, expected, strict=True))


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"


def check_listed_files(
    directory: Path,
    files: dict[str, Any],
    *,
    checksums: bool = False,
    listed_in: str = "the manifest",
) -> None:
    """Check each `{name: {"bytes", "sha256"}}` entry of `files` (a manifest's
    or an index's list) against the file of that name in `directory`: that it
    exists and has its size and, with `checksums`, its SHA-256 (reads every
    byte). Raises BundleError naming the first file that differs."""
    for name, expected in files.items():
        file = directory / name
        if not file.is_file():
            raise BundleError(f"{file} is listed in {listed_in} but missing")
        size = file.stat().st_size
        if size != expected["bytes"]:
            raise BundleError(
                f"{file} has {size} bytes but {listed_in} says {expected['bytes']}; "
                "the file is truncated or was replaced"
            )
        if checksums and sha256_file(file) != expected["sha256"]:
            raise BundleError(
                f"{file} fails its SHA-256 check: the file changed after it was "
                "written; restore it, or write the bundle or index again"
            )


def _load_array(path: Path, *, mmap: bool) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read {path}: {exc}") from exc
    if not isinstance(array, np.ndarray):
        raise BundleError(f"{path} is not a single .npy array")
    return array


def _save_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"cannot read {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise BundleError(f"{path} must hold a JSON object")
    return value


def _write_json(path: Path, value: dict[str, Any]) -> None:
    try:
        write_json(path, value)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{path.name} cannot be written as JSON: {exc}") from exc


def _package_version() -> str:
    try:
        return metadata.version("wordvec")
    except metadata.PackageNotFoundError:
        # Running from a checkout that was never pip-installed.
        return "unknown"
