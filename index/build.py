"""`wordvec index`: build the FAISS index of a bundle, measure its recall@10
against exact search, and store it in `BUNDLE/index/` (see docs/index.md)."""

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from index import kinds, lookup, neighbour_lists
from index.evaluate import RECALL_K, recall_samples, tune
from index.searchers import HnswSearcher, IvfPqSearcher, Searcher
from index.store import (
    FAISS_FILE,
    INDEX_FORMAT_VERSION,
    INDEX_INFO,
    NORMALISED,
    file_checksums,
    save_faiss,
    save_info,
    save_normalised,
    write_index_dir,
)
from training.bundle import VECTORS, VOCABULARY, load_bundle
from training.durable import sha256_file
from training.errors import BundleError, ConfigError
from training.vectors import normalise_rows
from training.vocabulary import Vocabulary

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexConfig:
    """How to build an index; every field has a `wordvec index` flag."""

    kind: str = "auto"
    recall_floor: float = 0.95
    memory_budget_mb: float = 4096.0
    hnsw_m: int = 32
    ef_construction: int = 200
    max_ef_search: int = 1024
    max_nprobe: int = 256
    refine_factor: int = 10
    recall_sample: int = 1000
    seed: int = 0
    threads: int | None = None
    # Exact neighbour lists of the most frequent words (0 words: none).
    precompute_words: int = neighbour_lists.DEFAULT_PRECOMPUTE_WORDS
    precompute_k: int = neighbour_lists.DEFAULT_PRECOMPUTE_K

    def check(self) -> None:
        """Raise ConfigError naming the first setting outside its valid range."""
        if self.kind not in kinds.KIND_CHOICES:
            raise ConfigError(
                f"unknown index kind {self.kind!r}; use {', '.join(kinds.KIND_CHOICES)}"
            )
        if not 0.0 < self.recall_floor <= 1.0:
            raise ConfigError(
                f"recall floor must be in (0, 1], got {self.recall_floor}"
            )
        for name in ("hnsw_m", "ef_construction", "max_ef_search", "max_nprobe"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"{name} must be at least 1, got {getattr(self, name)}"
                )
        if self.refine_factor < 1 or self.recall_sample < 1:
            raise ConfigError("refine_factor and recall_sample must be at least 1")
        if self.precompute_words < 0 or self.precompute_k < 1:
            raise ConfigError(
                "precompute_words must be at least 0 and precompute_k at least 1"
            )
        if self.memory_budget_mb <= 0:
            raise ConfigError("memory budget must be positive (MB)")


def build_index(bundle_path: Path | str, config: IndexConfig) -> dict[str, Any]:
    """Build, measure and store the index of the bundle at `bundle_path`.

    Returns the contents written to index.json. Raises IndexBuildError when
    recall@10 stays under `config.recall_floor` (the old index is kept),
    ConfigError for bad settings, BundleError for a bad bundle.
    """
    config.check()
    started = time.perf_counter()
    bundle = load_bundle(Path(bundle_path))
    vectors_sha256 = _checked_sha256(bundle.path, bundle.manifest)
    normalised = normalise_rows(bundle.vectors)
    kind = config.kind
    if kind == "auto":
        vocab_size, dim = normalised.shape
        kind = kinds.choose_kind(
            vocab_size, dim, config.hnsw_m, config.memory_budget_mb
        )
    logger.info("building a %s index over %d x %d vectors", kind, *normalised.shape)
    # TODO: on a machine whose cores are busy with other work, OpenMP threads
    # spin while waiting for each other: a 3,000-word IVF-PQ build took 12-15 s
    # with 2 threads and 1.9 s with 1. Defaulting to the idle cores (or
    # OMP_WAIT_POLICY=PASSIVE) would avoid that; measure on the target host.
    lists = None
    with _build_threads(config.threads or os.cpu_count() or 1):
        index, info = _build_kind(kind, normalised, config)
        if config.precompute_words > 0 and normalised.shape[0] > 1:
            lists, info["neighbour_lists"] = neighbour_lists.compute(
                normalised, config.precompute_words, config.precompute_k
            )
    info.setdefault("neighbour_lists", None)
    tables, info["vocabulary_tables"] = _lookup_tables(
        bundle.vocabulary, bundle.manifest
    )
    info.update(
        format_version=INDEX_FORMAT_VERSION,
        kind=kind,
        metric="inner_product",
        vocab_size=int(normalised.shape[0]),
        dim=int(normalised.shape[1]),
        vectors_sha256=vectors_sha256,
        vocabulary_sha256=bundle.manifest["files"][VOCABULARY]["sha256"],
        recall_floor=config.recall_floor,
        config=asdict(config),
        build_seconds=round(time.perf_counter() - started, 3),
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )

    def write_contents(directory: Path) -> None:
        save_normalised(directory / NORMALISED, normalised)
        if index is not None:
            save_faiss(directory / FAISS_FILE, index)
        if lists is not None:
            neighbour_lists.save(directory, lists)
        lookup.save_tables(directory, tables)
        save_info(directory / INDEX_INFO, {**info, "files": file_checksums(directory)})

    write_index_dir(bundle.path, write_contents)
    logger.info(
        "stored %s index in %s: recall@%d %.4f, %.1f s",
        kind,
        bundle.path / "index",
        RECALL_K,
        info["recall_at_10"],
        info["build_seconds"],
    )
    return info


def _lookup_tables(
    vocabulary: Vocabulary, manifest: dict[str, Any]
) -> tuple[lookup.LookupTables, dict[str, Any]]:
    started = time.perf_counter()
    tables = lookup.build_bundle_tables(vocabulary.words, vocabulary.counts, manifest)
    seconds = round(time.perf_counter() - started, 3)
    logger.info(
        "built vocabulary lookup tables in %.1f s (case-folded table: %s)",
        seconds,
        "no" if tables.folded is None else "yes",
    )
    return tables, lookup.describe_tables(tables) | {"seconds": seconds}


def _build_kind(
    kind: str, normalised: np.ndarray, config: IndexConfig
) -> tuple[faiss.Index | None, dict[str, Any]]:
    if kind == "flat":
        exact: dict[str, Any] = {"factory": "Flat", "index_file": None, "params": {}}
        return None, exact | {"recall_at_10": 1.0, "recall_sample_size": 0}
    samples = recall_samples(normalised.shape[0], config.recall_sample, config.seed)
    index: faiss.Index
    if kind == "hnsw":
        index = kinds.build_hnsw(normalised, config.hnsw_m, config.ef_construction)

        def hnsw_searcher(ef_search: int) -> Searcher:
            return HnswSearcher(index, ef_search)

        ladder = _ladder(kinds.EF_SEARCH_LADDER, config.max_ef_search)
        ef_search, recalls = tune(
            hnsw_searcher, ladder, normalised, samples, config.recall_floor, "efSearch"
        )
        factory = f"HNSW{config.hnsw_m},Flat"
        params = {
            "M": config.hnsw_m,
            "efConstruction": config.ef_construction,
            "efSearch": ef_search,
        }
    else:
        nlist, m = kinds.ivf_pq_shape(*normalised.shape)
        index = kinds.build_ivf_pq(normalised, nlist, m, config.seed)

        def ivf_searcher(nprobe: int) -> Searcher:
            return IvfPqSearcher(index, normalised, nprobe, config.refine_factor)

        ladder = _ladder(kinds.NPROBE_LADDER, min(config.max_nprobe, nlist))
        nprobe, recalls = tune(
            ivf_searcher, ladder, normalised, samples, config.recall_floor, "nprobe"
        )
        factory = kinds.ivf_pq_factory(nlist, m)
        params = {
            "nlist": nlist,
            "m": m,
            "nbits": 8,
            "nprobe": nprobe,
            "refine_factor": config.refine_factor,
        }
    info: dict[str, Any] = {
        "factory": factory,
        "index_file": FAISS_FILE,
        "params": params,
        # The lowest of the samples' recalls: what the floor was checked on.
        "recall_at_10": round(min(recalls.values()), 4),
        "recall_at_10_by_sample": {k: round(v, 4) for k, v in recalls.items()},
        "recall_sample_size": max(len(ids) for ids in samples.values()),
        "recall_seed": config.seed,
    }
    return index, info


@contextmanager
def _build_threads(threads: int) -> Iterator[None]:
    # A build may run in a process that also serves queries on one thread
    # (see index.threads), so the calling thread's limits are put back.
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            yield
    finally:
        faiss.omp_set_num_threads(before)


def _ladder(ladder: tuple[int, ...], cap: int) -> list[int]:
    steps = [value for value in ladder if value < cap]
    return [*steps, cap]


def _checked_sha256(bundle_path: Path, manifest: dict[str, Any]) -> str:
    # Reading every byte costs a second per GB but proves which vectors the
    # index belongs to; loaders then compare against the manifest for free.
    actual = sha256_file(bundle_path / VECTORS)
    if manifest["files"].get(VECTORS, {}).get("sha256") != actual:
        raise BundleError(
            f"{bundle_path / VECTORS} fails its SHA-256 check; restore the bundle "
            "or write it again before indexing"
        )
    return actual
