"""The in-process query path the server uses: neighbours, similarity,
analogies and text embeddings over a bundle's unit vectors and index.

Every method is safe to call from several threads at once: the arrays and
the FAISS index are read-only after loading, and the neighbour cache is
functools.lru_cache, which locks internally.
"""

import functools
import json
import logging
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from index import lookup, neighbour_lists
from index.errors import QueryError, WordNotFound
from index.lookup import (
    FoldedWords,
    LookupTables,
    QueryWords,
    SpellingLookup,
    WordTable,
)
from index.neighbour_lists import NeighbourLists
from index.results import Neighbour, check_k, clipped, top_ids, unit
from index.searchers import FlatSearcher, Searcher
from index.store import INDEX_DIR, INDEX_INFO, open_index_dir
from index.subword_lookup import SubwordModel, load_subword_model
from index.threads import single_threaded
from training.bundle import VOCABULARY, check_listed_files, load_bundle, read_manifest
from training.errors import BundleError
from training.tokenizer import tokenize
from training.vectors import normalise_rows

__all__ = ["Neighbour", "VectorIndex", "WordNotFound"]

logger = logging.getLogger(__name__)

# Neighbour lists kept per (word id, k) for words without a precomputed list
# (beyond its N words, or k beyond its K, or an older index): a hit costs
# about a microsecond against 0.1-20 ms for a search (see docs/index.md).
NEIGHBOUR_CACHE_SIZE = 4096
# SIF weight a / (a + p(w)), a = 1e-3 (Arora, Liang and Ma 2017).
SIF_A = 1e-3
# 3CosMul's epsilon keeps the division finite (Levy and Goldberg 2014).
COSMUL_EPSILON = 1e-3
# Rows of the unit vectors checked for NaN at a time when a bundle loads.
_FINITE_CHECK_ROWS = 65_536


class VectorIndex:
    """Nearest-neighbour queries over one loaded bundle. Build with `load`."""

    def __init__(
        self,
        manifest: dict[str, Any],
        index_info: dict[str, Any],
        normalised: np.ndarray,
        searcher: Searcher,
        subwords: SubwordModel | None,
        lists: NeighbourLists | None,
        tables: LookupTables,
        version: str,
    ) -> None:
        self.version = version
        self.manifest = manifest
        self.index_info = index_info
        self.vocab_size, self.dim = (int(n) for n in normalised.shape)
        # Word lookups, counts and spelling tables are arrays mapped from
        # BUNDLE/index/ (or built at load for an older index), so a worker
        # holds no per-word Python object.
        self._table = WordTable(tables)
        self._counts = tables.counts
        self._total_count = max(int(tables.counts.sum()), 1)
        self._normalised = normalised
        self._searcher: Searcher | None = searcher
        self._subwords = subwords
        self._lists = lists
        self._spelling = SpellingLookup(self._table)
        folded = None if tables.folded is None else FoldedWords(tables.folded)
        self._words = QueryWords(
            self._table,
            self._spelling,
            lookup.folds_case(manifest, self._table),
            folded,
        )
        self._cached_neighbours = functools.lru_cache(maxsize=NEIGHBOUR_CACHE_SIZE)(
            self._neighbours_of_id
        )

    @classmethod
    def load(cls, bundle_path: Path) -> "VectorIndex":
        """Return the query path over the bundle at `bundle_path`.

        Memory-maps the bundle's `index/` (built by `wordvec index`): vectors,
        index, neighbour lists and vocabulary lookup tables. An index built
        before the lookup tables existed still loads: the tables are built
        in this process, with a warning. Without an index, normalises the
        vectors in memory and searches them exactly, with a warning. Raises
        BundleError for a bad bundle or a stale index.
        """
        single_threaded()
        path = Path(bundle_path)
        directory = path / INDEX_DIR
        info = _read_index_info(directory)
        if info is not None and info.get("vocabulary_tables"):
            loaded = _load_mapped(path, info)
        else:
            loaded = _load_building_tables(path, has_index=info is not None)
        manifest, info, normalised, searcher, tables = loaded
        _check_finite(path, normalised)
        lists = neighbour_lists.load(directory, info, normalised.shape[0])
        logger.info("loaded %s index of %s", info["kind"], path)
        subwords = load_subword_model(path)
        version = str(manifest.get("version") or path.name)
        return cls(
            manifest, info, normalised, searcher, subwords, lists, tables, version
        )

    @property
    def folds_case(self) -> bool:
        """True when the model's words are case-folded, so queries are too."""
        return self._words.folds_case

    def normalise(self, word: str) -> str:
        """Return `word` stripped, apostrophes unified and, when the model
        folds case, lower-cased: the form its vocabulary words have."""
        return self._words.key(word)

    def resolve(self, word: str) -> str:
        """Return the spelling `word` is answered for: stripped, apostrophes
        unified and, for a case-folding model, lower-cased; for a
        case-keeping model, `word` if the vocabulary holds it, else the most
        frequent word spelt like it in another case (else `word`)."""
        return self._words.resolve(word)

    def has_word(self, word: str) -> bool:
        """Return True if `word` (as `resolve` finds it) is in the vocabulary."""
        return self._words.find(word)[1] is not None

    def word_vector(self, word: str) -> tuple[np.ndarray, bool]:
        """Return (float32 (dim,) unit vector, inferred_from_subwords) of `word`.

        Words outside the vocabulary get a vector from their character
        n-grams when the bundle has subword vectors. Raises WordNotFound
        (with spelling suggestions) otherwise.
        """
        key, word_id = self._words.find(word)
        if word_id is not None:
            self._check_open()
            return np.array(self._normalised[word_id]), False
        if self._subwords is not None:
            inferred = self._subwords.vector(key)
            if inferred is not None:
                return inferred, True
        raise WordNotFound(key, self._words.suggestions(key), self.vocab_size)

    def neighbours(self, word: str, k: int) -> list[Neighbour]:
        """Return the `k` words nearest `word`, best first, never `word` itself.

        Words with a precomputed list get its exact answer; others are
        searched in the index. Raises WordNotFound, or QueryError for k < 1.
        """
        listed = self.listed(word, k)
        if listed is not None:
            pairs = zip(listed[0], listed[1].tolist(), strict=True)
            return [Neighbour(word, score) for word, score in pairs]
        check_k(k)
        key, word_id = self._words.find(word)
        if word_id is None:
            vector, _ = self.word_vector(key)
            return self.neighbours_of_vector(vector, k, exclude=(key,))
        return list(self._cached_neighbours(word_id, k))

    def listed(self, word: str, k: int) -> tuple[list[str], np.ndarray] | None:
        """Return (the `k` nearest words, their float32 (k,) cosine scores in
        [-1, 1]) from the precomputed lists, best first; None when `word` has
        no list of at least `k` (then `neighbours` searches).

        Never searches: a slice of a mapped file, a few microseconds, so it
        may run on an event loop. The scores array is a read-only view.
        """
        lists = self._lists
        if lists is None or k < 1:
            return None
        word_id = self._words.find(word)[1]
        if word_id is None:
            return None
        row = lists.row(word_id, k)
        if row is None:
            return None
        return self._table.words(row[0]), row[1]

    def neighbours_of_vector(
        self, vector: np.ndarray, k: int, exclude: Collection[str] = ()
    ) -> list[Neighbour]:
        """Return the `k` words nearest float (dim,) `vector` (any length),
        best first, leaving out the words in `exclude`.

        Raises QueryError for k < 1 or a vector of the wrong shape.
        """
        check_k(k)
        query = unit(np.asarray(vector, dtype=np.float32), self.dim)
        return self._search(query, k, self._ids_of(exclude))

    def most_similar(
        self, positive: Sequence[str], negative: Sequence[str], k: int
    ) -> list[Neighbour]:
        """Return the `k` words nearest the mean of the unit vectors of
        `positive` minus those of `negative` (as gensim does), inputs excluded.

        Raises WordNotFound, or QueryError when both lists are empty.
        """
        if not positive and not negative:
            raise QueryError(
                "most_similar needs at least one positive or negative word"
            )
        vectors = [self.word_vector(w)[0] for w in positive]
        vectors += [-self.word_vector(w)[0] for w in negative]
        target = np.mean(vectors, axis=0)
        return self.neighbours_of_vector(target, k, exclude=[*positive, *negative])

    def similarity(self, a: str, b: str) -> float:
        """Return the cosine score of words `a` and `b`. Raises WordNotFound."""
        score = float(np.dot(self.word_vector(a)[0], self.word_vector(b)[0]))
        return clipped(score)

    def analogy(
        self,
        a: str,
        b: str,
        c: str,
        k: int,
        method: Literal["3cosadd", "3cosmul"] = "3cosadd",
    ) -> list[Neighbour]:
        """Return answers to a : b :: c : ?, best first, a, b and c excluded.

        3cosadd searches the index for b - a + c. 3cosmul ranks every word by
        cos'(x, b) cos'(x, c) / (cos'(x, a) + 1e-3), cos' = (cos + 1) / 2
        (Levy and Goldberg 2014); its scores are still each answer's cosine
        with b - a + c, so they need not descend. Raises WordNotFound, QueryError.
        """
        check_k(k)
        va, vb, vc = (self.word_vector(w)[0] for w in (a, b, c))
        target = unit(vb - va + vc, self.dim)
        if method == "3cosadd":
            return self.neighbours_of_vector(target, k, exclude=(a, b, c))
        if method != "3cosmul":
            raise QueryError(
                f"unknown analogy method {method!r}; use 3cosadd or 3cosmul"
            )
        single_threaded()
        cos = (self._normalised @ np.stack([va, vb, vc], axis=1) + 1.0) / 2.0
        objective = cos[:, 1] * cos[:, 2] / (cos[:, 0] + COSMUL_EPSILON)
        excluded = self._ids_of((a, b, c))
        objective[list(excluded)] = -np.inf
        best = top_ids(objective, k)
        scores = self._normalised[best] @ target
        return [
            Neighbour(self._table.word(i), clipped(s))
            for i, s in zip(best, scores.tolist(), strict=True)
        ]

    def embed(
        self, text: str, weighting: Literal["mean", "sif"] = "mean"
    ) -> tuple[np.ndarray | None, list[str], list[str]]:
        """Return (float32 (dim,) unit vector or None, known words, oov words).

        Tokenises with training.tokenizer.tokenize (folding case as the
        model did; a case-keeping model finds each token as `resolve` does,
        and known words are listed as the vocabulary spells them) and
        averages the unit vectors of the known tokens, every occurrence
        counted; "sif" weights each by a / (a + p(w)), a = 1e-3, without
        removing the first principal component (that needs a corpus of
        sentences). Word lists keep first-appearance order without repeats;
        the vector is None when no token is known. Out-of-vocabulary words
        are not inferred from subwords.
        """
        found = [self._words.find(t) for t in tokenize(text, self.folds_case)]
        ids = [i for _, i in found if i is not None]
        known = list(dict.fromkeys(t for t, i in found if i is not None))
        oov = list(dict.fromkeys(t for t, i in found if i is None))
        if not ids:
            return None, known, oov
        weights = np.ones(len(ids))
        if weighting == "sif":
            probabilities = self._counts[ids] / self._total_count
            weights = SIF_A / (SIF_A + probabilities)
        elif weighting != "mean":
            raise QueryError(f"unknown weighting {weighting!r}; use mean or sif")
        vector = np.average(self._normalised[ids], axis=0, weights=weights)
        return unit(vector.astype(np.float32), self.dim), known, oov

    def vocabulary_prefix(self, prefix: str, limit: int) -> list[tuple[str, int]]:
        """Return up to `limit` (word, count) pairs of words starting with
        `prefix`, most frequent first. The prefix is folded like query words;
        for a case-keeping model its lower-case, capitalised and upper-case
        forms match too."""
        ids = self._words.ids_with_prefix(prefix, max(limit, 0))
        counts = self._counts[ids].tolist()
        return list(zip(self._table.words(ids), counts, strict=True))

    def close(self) -> None:
        """Drop the index and the memory maps; queries afterwards raise QueryError."""
        self._searcher = None
        self._lists = None
        self._cached_neighbours.cache_clear()
        self._normalised = np.zeros((0, self.dim), dtype=np.float32)

    def _neighbours_of_id(self, word_id: int, k: int) -> tuple[Neighbour, ...]:
        query = np.asarray(self._normalised[word_id])
        return tuple(self._search(query, k, {word_id}))

    def _check_open(self) -> Searcher:
        if self._searcher is None:
            raise QueryError("this VectorIndex was closed; load the bundle again")
        return self._searcher

    def _search(self, query: np.ndarray, k: int, excluded: set[int]) -> list[Neighbour]:
        searcher = self._check_open()
        single_threaded()
        scores, ids = searcher.search(query[None, :], k + len(excluded))
        found = [
            Neighbour(self._table.word(i), clipped(s))
            for s, i in zip(scores[0].tolist(), ids[0].tolist(), strict=True)
            if i >= 0 and i not in excluded
        ]
        return found[:k]

    def _ids_of(self, words: Collection[str]) -> set[int]:
        ids = (self._words.find(w)[1] for w in words)
        return {i for i in ids if i is not None}


_Loaded = tuple[dict[str, Any], dict[str, Any], np.ndarray, Searcher, LookupTables]


def _check_finite(path: Path, normalised: np.ndarray) -> None:
    """Raise BundleError if float32 (V, D) `normalised` holds NaN or infinity.

    write_bundle refuses such vectors, so only a damaged or hand-made bundle
    has them; served, they would turn every score they touch into NaN,
    which JSON cannot carry. Read in blocks: a mapped matrix stays mapped.
    """
    for start in range(0, normalised.shape[0], _FINITE_CHECK_ROWS):
        block = np.asarray(normalised[start : start + _FINITE_CHECK_ROWS])
        if not np.isfinite(block).all():
            row = start + int(np.argwhere(~np.isfinite(block))[0][0])
            raise BundleError(
                f"{path}: vector {row} holds NaN or infinity; the bundle is "
                "damaged, so write or import it again"
            )


def _read_index_info(directory: Path) -> dict[str, Any] | None:
    """Return index.json as written, or None when the bundle has no index."""
    if not (directory / INDEX_INFO).is_file():
        return None
    # open_index_dir reads and checks it again; this only picks the path.
    try:
        info = json.loads((directory / INDEX_INFO).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


def _load_mapped(path: Path, info: dict[str, Any]) -> _Loaded:
    """Map everything from an index that holds the lookup tables; the
    vocabulary file itself is never read."""
    manifest = read_manifest(path)
    check_listed_files(path, manifest["files"])
    info, normalised, searcher = open_index_dir(path, manifest)
    expected = manifest["files"].get(VOCABULARY, {}).get("sha256")
    if info.get("vocabulary_sha256") != expected:
        raise BundleError(
            f"{path / INDEX_DIR} was built from another vocabulary than "
            f"{path / VOCABULARY}; rebuild it with `wordvec index {path}`"
        )
    directory = path / INDEX_DIR
    folded = "folded_words" in info["vocabulary_tables"]
    tables = lookup.load_tables(directory, normalised.shape[0], folded)
    if lookup.describe_tables(tables).items() - info["vocabulary_tables"].items():
        raise BundleError(
            f"the lookup tables in {directory} do not match its {INDEX_INFO}; "
            f"rebuild it with `wordvec index {path}`"
        )
    return manifest, info, normalised, searcher, tables


def _load_building_tables(path: Path, has_index: bool) -> _Loaded:
    """Load the bundle's vocabulary file and build the lookup tables in this
    process (private memory): for a bundle without an index, or with one
    written before the tables existed."""
    bundle = load_bundle(path)
    searcher: Searcher
    if has_index:
        logger.warning(
            "%s has an index without vocabulary lookup tables (built by an older "
            "wordvec); building them in this process, which every worker then "
            "repeats in private memory. Run `wordvec index %s` to write them",
            path,
            path,
        )
        info, normalised, searcher = open_index_dir(path, bundle.manifest)
    else:
        logger.warning(
            "%s has no index; searching exactly over vectors normalised in "
            "this process (not shared). Run `wordvec index %s` to build one",
            path,
            path,
        )
        normalised = normalise_rows(bundle.vectors)
        searcher = FlatSearcher(normalised)
        info = {"kind": "flat", "built_at_load": True}
    vocabulary = bundle.vocabulary
    tables = lookup.build_bundle_tables(
        vocabulary.words, vocabulary.counts, bundle.manifest
    )
    return bundle.manifest, info, normalised, searcher, tables
