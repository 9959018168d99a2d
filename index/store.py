"""The index directory inside a bundle: `BUNDLE/index/` holds index.json,
normalised.npy, (for approximate kinds) index.faiss, the neighbour lists and
the vocabulary lookup tables. It is derived from the bundle's vectors and
vocabulary and replaced as a whole; see docs/index.md."""

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index.searchers import FlatSearcher, HnswSearcher, IvfPqSearcher, Searcher
from training.bundle import VECTORS, check_listed_files
from training.durable import (
    fsync_directory,
    replace_directory,
    sha256_file,
    temporary_sibling,
    write_json,
)
from training.errors import BundleError

logger = logging.getLogger(__name__)

INDEX_DIR = "index"
INDEX_INFO = "index.json"
NORMALISED = "normalised.npy"
FAISS_FILE = "index.faiss"
INDEX_FORMAT_VERSION = 1
# Map the FAISS file instead of reading it, so worker processes share it
# through the page cache. IO_FLAG_MMAP alone still copies flat and HNSW
# storage into private memory with faiss-cpu 1.15.1; MMAP_IFC maps both.
_MMAP_FLAGS = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY


def write_index_dir(bundle_path: Path, write_contents: Callable[[Path], None]) -> Path:
    """Fill a new index directory with `write_contents` and swap it into place.

    The directory is built as `BUNDLE/.index.tmp-<hex>`, fsynced, and
    exchanged with `BUNDLE/index` in one step (Linux renameat2), so a reader
    always finds one whole index; the old one is then deleted. Where the
    exchange is unsupported, the old index is renamed away first, leaving a
    moment without `index/` (a loader then searches exactly). If
    `write_contents` raises, the old index is untouched. Returns the new
    directory's path.
    """
    final = bundle_path / INDEX_DIR
    temporary = temporary_sibling(final, "tmp")
    temporary.mkdir()
    try:
        write_contents(temporary)
        fsync_directory(temporary)
        old = replace_directory(temporary, final)
        fsync_directory(bundle_path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    if old is not None:
        # Processes that mapped the old files keep them until they reload.
        shutil.rmtree(old)
    return final


def file_checksums(directory: Path) -> dict[str, dict[str, Any]]:
    """Return `{name: {sha256, bytes}}` of the files in `directory`, for the
    `files` entry of index.json (written last, so not itself listed)."""
    return {
        path.name: {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        for path in sorted(directory.iterdir())
        if path.is_file() and path.name != INDEX_INFO
    }


def verify_index(bundle_path: Path) -> None:
    """Check every file index.json lists against its size and SHA-256 (reads
    every byte). Raises BundleError naming the first file that differs; an
    index built before checksums were recorded passes with a warning."""
    directory = Path(bundle_path) / INDEX_DIR
    info = _read_info(directory / INDEX_INFO)
    files = info.get("files")
    if not isinstance(files, dict):
        logger.warning(
            "%s records no checksums; rebuild it with `wordvec index` to have them "
            "checked",
            directory,
        )
        return
    check_listed_files(directory, files, checksums=True, listed_in=INDEX_INFO)


def save_normalised(path: Path, normalised: np.ndarray) -> None:
    """Write float32 (V, D) unit vectors as a .npy file and fsync it."""
    with open(path, "wb") as f:
        np.save(f, normalised, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def save_faiss(path: Path, index: faiss.Index) -> None:
    """Write a FAISS index to `path` and fsync it."""
    faiss.write_index(index, str(path))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_info(path: Path, info: dict[str, Any]) -> None:
    """Write index.json (strict JSON, fsynced)."""
    write_json(path, info)


def open_index_dir(
    bundle_path: Path, manifest: dict[str, Any]
) -> tuple[dict[str, Any], np.ndarray, Searcher]:
    """Return (index.json contents, memory-mapped unit vectors, searcher) of
    the bundle at `bundle_path` with manifest `manifest`.

    Raises BundleError when the index was built from other vectors, or its
    files are missing or of the wrong shape; `wordvec index` rebuilds it.
    """
    directory = bundle_path / INDEX_DIR
    info = _read_info(directory / INDEX_INFO)
    expected = manifest["files"].get(VECTORS, {}).get("sha256")
    if info.get("vectors_sha256") != expected:
        raise BundleError(
            f"{directory} was built from other vectors than {bundle_path / VECTORS}; "
            f"rebuild it with `wordvec index {bundle_path}`"
        )
    shape = (int(manifest["vocab_size"]), int(manifest["dim"]))
    normalised = _load_normalised(directory / NORMALISED, shape)
    return info, normalised, _searcher(directory, info, normalised)


def index_summary(info: dict[str, Any]) -> dict[str, Any]:
    """Return the facts of an index (index.json contents) worth showing a user:
    kind, recall@10 against exact search with the floor and sample it was
    measured with, FAISS factory string and parameters, build time and
    precomputed lists.

    An index.json that lacks a key gives None for it. A bundle served
    without an index (`{"kind": "flat", "built_at_load": true}`) is exact
    search, so its recall is 1.0.
    """
    exact_at_load = bool(info.get("built_at_load"))
    lists = info.get("neighbour_lists")
    return {
        "kind": info.get("kind"),
        "recall_at_10": 1.0 if exact_at_load else info.get("recall_at_10"),
        "recall_floor": info.get("recall_floor"),
        "recall_at_10_by_sample": info.get("recall_at_10_by_sample"),
        "recall_sample_size": info.get("recall_sample_size"),
        "factory": info.get("factory"),
        "params": info.get("params") or {},
        "built_at": info.get("built_at"),
        "built_at_load": exact_at_load,
        "neighbour_lists": (
            {"words": lists.get("words"), "k": lists.get("k")}
            if isinstance(lists, dict)
            else None
        ),
    }


def read_index_summary(bundle_path: Path) -> dict[str, Any]:
    """Return `index_summary` of the bundle's index.json, every value None
    when it is missing or unreadable (listing versions must not fail)."""
    try:
        info = json.loads(
            (bundle_path / INDEX_DIR / INDEX_INFO).read_text(encoding="utf-8")
        )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        info = {}
    return index_summary(info if isinstance(info, dict) else {})


def _searcher(
    directory: Path, info: dict[str, Any], normalised: np.ndarray
) -> Searcher:
    params = info.get("params", {})
    kind = info.get("kind")
    if kind == "flat":
        return FlatSearcher(normalised)
    index = _read_faiss(directory / FAISS_FILE, normalised.shape)
    if kind == "hnsw":
        return HnswSearcher(index, int(params["efSearch"]))
    if kind == "ivf-pq":
        return IvfPqSearcher(
            index, normalised, int(params["nprobe"]), int(params["refine_factor"])
        )
    raise BundleError(
        f"{directory / INDEX_INFO} names an unknown index kind {kind!r}; rebuild it "
        "with `wordvec index`"
    )


def _read_info(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(
            f"cannot read {path}: {exc}; rebuild with `wordvec index`"
        ) from exc
    if not isinstance(info, dict) or info.get("format_version") != INDEX_FORMAT_VERSION:
        raise BundleError(
            f"{path} is not an index description this wordvec reads; rebuild it "
            "with `wordvec index`"
        )
    return info


def _load_normalised(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    return map_array(path, np.dtype(np.float32), shape)


def map_array(path: Path, dtype: np.dtype, shape: tuple[int | None, ...]) -> np.ndarray:
    """Return the .npy file at `path` memory-mapped read-only, checked to hold
    `dtype` in `shape` (None: any length on that axis). Raises BundleError
    naming the file and the fix (`wordvec index` rebuilds index files)."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BundleError(
            f"cannot read {path}: {exc}; rebuild with `wordvec index`"
        ) from exc
    fits = array.ndim == len(shape) and all(
        want is None or have == want
        for have, want in zip(array.shape, shape, strict=True)
    )
    if array.dtype != dtype or not fits:
        expected = "x".join("N" if n is None else str(n) for n in shape)
        raise BundleError(
            f"{path} holds {array.dtype} {array.shape}, expected {dtype} "
            f"({expected}); rebuild it with `wordvec index`"
        )
    return array


def _read_faiss(path: Path, shape: tuple[int, ...]) -> faiss.Index:
    try:
        index = faiss.read_index(str(path), _MMAP_FLAGS)
    except RuntimeError as exc:
        raise BundleError(
            f"cannot read {path}: {exc}; rebuild with `wordvec index`"
        ) from exc
    if (index.ntotal, index.d) != shape:
        raise BundleError(
            f"{path} holds {index.ntotal} vectors of dim {index.d}, expected "
            f"{shape}; rebuild it with `wordvec index`"
        )
    return index
