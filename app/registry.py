"""The model versions kept in a data directory and the pointer to the active one.

Layout (see docs/models.md):

    DATA_DIR/models/<version>/   published bundles, never changed afterwards
    DATA_DIR/active              the active version's name and a newline
    DATA_DIR/staging/            bundles being built, published by a rename
    DATA_DIR/uploads/            fine-tune uploads (app.jobs)

Every change is one rename on one filesystem, so a crash leaves either the
old state or the new one, plus at most a leftover in staging/ or a hidden
`.<version>.old-<hex>` directory that `clean_staging` removes.
"""

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from index.build import IndexConfig, build_index
from index.search import VectorIndex
from index.store import INDEX_DIR, INDEX_INFO, verify_index
from training.bundle import MANIFEST, is_temporary_name, read_manifest, verify_bundle
from training.durable import atomic_file, fsync_directory, temporary_sibling, write_json
from training.errors import BundleError, WordvecError

logger = logging.getLogger(__name__)

# A letter or digit first, so no name is hidden, `.` or `..`; no slash, so a
# name never leaves models/.
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ACTIVE_FILE = "active"
# The version a server last loaded and checked: what a worker starting while
# `active` names a damaged version serves instead of nothing.
LAST_GOOD_FILE = "last-good"
# flock'd around the switch of `active` and the removal of a version, so that
# a version cannot be deleted while it is being activated.
LOCK_FILE = "registry.lock"
# Neighbours asked of a version's index before it may be served.
_CHECK_K = 10


class RegistryError(WordvecError):
    """A model version cannot be added, published, activated or deleted."""


class InvalidVersionName(RegistryError):
    """A version name breaks VERSION_PATTERN."""


class VersionNotFound(RegistryError):
    """No published version has this name."""


class VersionExists(RegistryError):
    """A version of this name is already published."""


class ActivationRefused(RegistryError):
    """The version failed its checks (checksums, index load, test query)."""


class VersionActive(RegistryError):
    """The version is active, so it cannot be deleted."""


@dataclass
class VersionInfo:
    """A published version: its name, directory, manifest and whether it is active."""

    version: str
    path: Path
    manifest: dict[str, Any]
    active: bool


def check_version_name(name: str) -> str:
    """Return `name` if it is a valid version name; raise InvalidVersionName."""
    if not isinstance(name, str) or VERSION_PATTERN.fullmatch(name) is None:
        raise InvalidVersionName(
            f"{name!r} is not a valid version name: use 1 to 64 letters, digits, "
            "'.', '_' or '-', starting with a letter or digit (e.g. 2024-06-news)"
        )
    return name


def read_active_version(data_dir: Path) -> str | None:
    """Return the text of DATA_DIR/active without its newline, or None when the
    file is missing or blank. The name is not checked: it may be invalid or
    name a version that does not exist (ModelRegistry.path_of checks it)."""
    try:
        text = (Path(data_dir) / ACTIVE_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(
            f"cannot read {Path(data_dir) / ACTIVE_FILE}: {exc}; activate a "
            "version again with `wordvec models activate`"
        ) from exc
    return text.strip() or None


class ModelRegistry:
    """The versions in one data directory; creates its directories if missing.

    Reading methods are safe in any number of processes. Writing methods
    (publish, activate, delete) are safe to run concurrently with readers;
    two writers racing on one version name get VersionExists from one of them.
    """

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.models_dir = self.data_dir / "models"
        self.staging_dir = self.data_dir / "staging"
        self.uploads_dir = self.data_dir / "uploads"
        self.active_file = self.data_dir / ACTIVE_FILE
        try:
            for directory in (self.models_dir, self.staging_dir, self.uploads_dir):
                directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(
                f"cannot create the data directory {self.data_dir}: {exc}; "
                "choose a writable --data-dir (or WORDVEC_DATA_DIR)"
            ) from exc

    def versions(self) -> list[VersionInfo]:
        """Return every published version, oldest first (by the manifest's
        created_at, then name). Leftovers of interrupted writes and
        directories without a readable manifest are skipped with a warning."""
        active = self.active_version()
        found = []
        for path in sorted(self.models_dir.iterdir()):
            if is_temporary_name(path.name) or not VERSION_PATTERN.fullmatch(path.name):
                logger.warning(
                    "skipping %s: not a version (leftover of a crash?)", path
                )
                continue
            try:
                manifest = read_manifest(path)
            except BundleError as exc:
                logger.warning("skipping %s: %s", path, exc)
                continue
            found.append(VersionInfo(path.name, path, manifest, path.name == active))
        return sorted(
            found, key=lambda v: (str(v.manifest.get("created_at")), v.version)
        )

    def get(self, version: str) -> VersionInfo:
        """Return the published `version`. Raises VersionNotFound, or
        RegistryError when its manifest cannot be read."""
        path = self.path_of(version)
        if not path.is_dir():
            raise VersionNotFound(
                f"no version {version!r} in {self.models_dir}; "
                "`wordvec models list` shows the versions there"
            )
        try:
            manifest = read_manifest(path)
        except BundleError as exc:
            raise RegistryError(
                f"version {version!r} is damaged ({exc}); delete it with "
                f"`wordvec models delete {version}` and add it again"
            ) from exc
        return VersionInfo(version, path, manifest, version == self.active_version())

    def path_of(self, version: str) -> Path:
        """Return models/<version> (which may not exist); checks the name."""
        return self.models_dir / check_version_name(version)

    def active_version(self) -> str | None:
        """Return what DATA_DIR/active names, or None when nothing is active."""
        return read_active_version(self.data_dir)

    def last_good_version(self) -> str | None:
        """Return the version a server last loaded and checked (see
        `record_good`), or None when none has been or the record is unreadable."""
        try:
            text = (self.data_dir / LAST_GOOD_FILE).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        return text.strip() or None

    def record_good(self, version: str) -> None:
        """Note that `version` passed a server's load checks. Best effort: a
        failure to write is logged, since serving must not depend on it."""
        if self.last_good_version() == version:
            return
        try:
            with atomic_file(self.data_dir / LAST_GOOD_FILE) as f:
                f.write(f"{version}\n".encode())
        except OSError as exc:
            logger.warning(
                "cannot record %s as the last good version: %s", version, exc
            )

    def new_version_name(self) -> str:
        """Return an unused name that sorts by creation time to the second,
        e.g. 20261203-192000-3f9a2c."""
        while True:
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            name = f"{stamp}-{secrets.token_hex(3)}"
            if not self.path_of(name).exists():
                return name

    def staging_path(self, version: str) -> Path:
        """Return a path under staging/ that does not exist yet, for building
        the bundle of `version` (write_bundle creates it; publish moves it)."""
        check_version_name(version)
        return self.staging_dir / f"{version}.{secrets.token_hex(4)}"

    def publish(self, bundle_dir: Path, version: str) -> VersionInfo:
        """Move the finished bundle at `bundle_dir` to models/<version> and return it.

        The bundle must have its index, its manifest's `version` must equal
        `version`, and it must pass `check`; nothing inside it is changed.
        `bundle_dir` must be on the data directory's filesystem (build it
        at `staging_path(version)`). Raises VersionExists, RegistryError.
        """
        bundle_dir = Path(bundle_dir)
        target = self.path_of(version)
        if target.exists():
            raise _exists(version)
        try:
            _checked_model(bundle_dir, version)
        except WordvecError as exc:
            raise RegistryError(
                f"cannot publish {bundle_dir} as {version!r}: {exc}"
            ) from exc
        try:
            os.rename(bundle_dir, target)
        except OSError as exc:
            raise _publish_error(exc, bundle_dir, version) from exc
        fsync_directory(self.models_dir)
        fsync_directory(bundle_dir.parent)
        logger.info("published version %s", version)
        return self.get(version)

    def add(
        self,
        bundle_dir: Path,
        *,
        version: str | None = None,
        activate: bool = False,
        index_config: IndexConfig | None = None,
    ) -> VersionInfo:
        """Copy the bundle at `bundle_dir` in as a new version and return it.

        The copy's manifest gets `version` (default: `new_version_name()`);
        its index is built with `index_config` (default settings) when the
        bundle has none. `bundle_dir` itself is not changed. With `activate`
        the new version is activated too. Raises BundleError for something
        that is not a bundle, VersionExists, ActivationRefused.
        """
        bundle_dir = Path(bundle_dir)
        manifest = read_manifest(bundle_dir)
        if version is None:
            version = self.new_version_name()
        check_version_name(version)
        if self.path_of(version).exists():
            raise _exists(version)
        staging = self.staging_path(version)
        try:
            _copy_durably(bundle_dir, staging)
            manifest["version"] = version
            write_json(staging / MANIFEST, manifest)
            if not (staging / INDEX_DIR / INDEX_INFO).is_file():
                logger.info("%s has no index; building one", bundle_dir)
                build_index(staging, index_config or IndexConfig())
            info = self.publish(staging, version)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if activate:
            self.activate(version)
            info.active = True
        return info

    def check(self, version: str) -> None:
        """Check `version` as a server does before serving it: every file's
        SHA-256, the index loads, and a test query answers. Raises
        VersionNotFound, or ActivationRefused naming the failure."""
        self.load_checked(version)

    def load_checked(self, version: str) -> VectorIndex:
        """Return `version` loaded for serving after the checks of `check`."""
        try:
            path = self.get(version).path
        except (VersionNotFound, InvalidVersionName):
            raise
        except RegistryError as exc:
            # An unreadable manifest fails the first check, like any damage.
            raise ActivationRefused(_refusal(version, str(exc))) from exc
        try:
            return _checked_model(path, version)
        except WordvecError as exc:
            raise ActivationRefused(_refusal(version, str(exc))) from exc
        except Exception as exc:
            # FAISS and numpy raise their own types on damaged files; none of
            # them may let a broken version through.
            logger.exception("unexpected failure checking version %s", version)
            reason = f"unexpected {type(exc).__name__}: {exc}"
            raise ActivationRefused(_refusal(version, reason)) from exc

    def activate(
        self, version: str, fence: contextlib.AbstractContextManager[Any] | None = None
    ) -> None:
        """Check `version`, then make it the active one: servers switch to it
        within their reload interval. Raises VersionNotFound,
        ActivationRefused (the active version is then unchanged).

        With `fence`, `active` is replaced inside it, under the registry lock,
        after the checks: a fence that raises on entry (a job worker's lease
        check) refuses the switch, and one that raises on exit undoes it.
        """
        self.check(version)
        with self._locked():
            # A delete may have removed it while it was being checked.
            self.get(version)
            previous = self.active_version()
            written = False
            try:
                with fence if fence is not None else contextlib.nullcontext():
                    self._write_active(version)
                    written = True
            except BaseException:
                # The fence could not record the switch: undo it.
                if written and previous != version:
                    self._restore_active(previous)
                raise
        logger.info("activated version %s", version)

    def _write_active(self, version: str) -> None:
        with atomic_file(self.active_file) as f:
            f.write(f"{version}\n".encode())

    def _restore_active(self, previous: str | None) -> None:
        if previous is not None:
            self._write_active(previous)
            return
        self.active_file.unlink(missing_ok=True)
        fsync_directory(self.data_dir)

    def delete(self, version: str) -> None:
        """Remove the published `version`. Raises VersionActive for the active
        one, VersionNotFound. Servers that still map its files keep them until
        they switch (deleted files stay readable while mapped)."""
        with self._locked():
            path = self.get(version).path
            if version == self.active_version():
                raise VersionActive(
                    f"version {version!r} is active; activate another version "
                    "first (`wordvec models activate VERSION`), then delete it"
                )
            # Renamed first so that a crash in rmtree leaves a hidden leftover
            # that list skips and clean_staging removes, never half a version.
            discarded = temporary_sibling(path, "old")
            os.rename(path, discarded)
            fsync_directory(self.models_dir)
        shutil.rmtree(discarded)
        logger.info("deleted version %s", version)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Held for a rename or two, never across a check or a load; but
        # activate() with a fence also holds it while the fence waits for the
        # job table's write lock (up to the job table's lock wait, 30 s).
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def clean_staging(self, older_than: float = 0.0) -> list[Path]:
        """Remove what interrupted jobs and deletes left behind: entries of
        staging/, hidden leftovers in models/ and of `active`, last modified
        more than `older_than` seconds ago. Returns what was removed.

        With several workers on one data directory, pass an age that no
        running job can reach (the job worker gives its time limit plus the
        lease): a younger leftover may belong to a job still writing it.
        """
        leftovers = list(self.staging_dir.iterdir())
        leftovers += [p for p in self.models_dir.iterdir() if is_temporary_name(p.name)]
        leftovers += [
            p
            for p in self.data_dir.glob(f".{ACTIVE_FILE}.*")
            if is_temporary_name(p.name)
        ]
        cutoff = time.time() - older_than
        removed = []
        for path in leftovers:
            try:
                if path.lstat().st_mtime > cutoff:
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except FileNotFoundError:
                continue  # another worker removed it first
            removed.append(path)
            logger.info("removed leftover %s", path)
        return removed


def _checked_model(path: Path, version: str) -> VectorIndex:
    """Return the bundle at `path` loaded for serving after checking it fully."""
    manifest = read_manifest(path)
    if manifest.get("version") != version:
        raise BundleError(
            f"its manifest names version {manifest.get('version')!r}, not {version!r}; "
            "add it with `wordvec models add`, which sets the name"
        )
    if not (path / INDEX_DIR / INDEX_INFO).is_file():
        raise BundleError(
            f"it has no index; build one with `wordvec index {path}` or add the "
            "bundle with `wordvec models add`, which builds it"
        )
    verify_bundle(path)
    verify_index(path)
    model = VectorIndex.load(path)
    _test_query(model)
    return model


def _test_query(model: VectorIndex) -> None:
    """Search the index for the most frequent word's neighbours; raise
    BundleError unless it answers with words and finite scores."""
    top = model.vocabulary_prefix("", 1)
    if not top:
        raise BundleError("its vocabulary is empty")
    vector, _ = model.word_vector(top[0][0])
    k = min(_CHECK_K, model.vocab_size)
    found = model.neighbours_of_vector(vector, k)
    scores = np.array([n.score for n in found], dtype=np.float64)
    if not found or not np.isfinite(scores).all():
        raise BundleError(
            f"a test query for {top[0][0]!r} returned {len(found)} neighbours "
            "with scores that are not all finite; rebuild its index"
        )


def _refusal(version: str, reason: str) -> str:
    return (
        f"version {version!r} failed its checks and will not be served: {reason}. "
        f"Delete it (`wordvec models delete {version}`) and add the bundle again"
    )


def _exists(version: str) -> VersionExists:
    return VersionExists(
        f"version {version!r} already exists and versions never change; "
        "choose another name (or leave --version out for a fresh one)"
    )


def _publish_error(exc: OSError, bundle_dir: Path, version: str) -> RegistryError:
    if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
        return _exists(version)
    if exc.errno == errno.EXDEV:
        return RegistryError(
            f"{bundle_dir} is on another filesystem than the data directory, so it "
            "cannot be renamed into place; build it under "
            "ModelRegistry.staging_path() or use `wordvec models add`"
        )
    return RegistryError(f"cannot move {bundle_dir} into place as {version!r}: {exc}")


def _copy_durably(source: Path, target: Path) -> None:
    """Copy directory `source` to `target` (which must not exist), skipping
    leftovers of interrupted writes, and fsync every file and directory."""

    def leftovers(_: str, names: list[str]) -> list[str]:
        return [name for name in names if is_temporary_name(name)]

    shutil.copytree(source, target, ignore=leftovers)
    for directory, _, files in os.walk(target):
        for name in files:
            with open(os.path.join(directory, name), "rb+") as f:
                os.fsync(f.fileno())
        fsync_directory(Path(directory))


def manifest_summary(info: VersionInfo) -> dict[str, Any]:
    """Return the JSON-ready summary of a version that `wordvec models list` shows."""
    manifest = info.manifest
    index_info = _index_info(info.path)
    return {
        "version": info.version,
        "active": info.active,
        "created_at": manifest.get("created_at"),
        "source": manifest.get("source"),
        "vocab_size": manifest.get("vocab_size"),
        "dim": manifest.get("dim"),
        "index_kind": index_info.get("kind"),
        "recall_at_10": index_info.get("recall_at_10"),
    }


def _index_info(path: Path) -> dict[str, Any]:
    try:
        value = json.loads((path / INDEX_DIR / INDEX_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
