"""Models that are valid files but odd vectors: zero rows, NaN rows, a
one-word vocabulary and an import that repeats words. The server answers
finite scores or a clear problem, and no JSON body ever holds NaN."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi.testclient import TestClient
from numpy.lib.format import open_memmap

from app.core.config import Settings
from app.main import create_app
from app.registry import ModelRegistry
from index.formats import import_vectors
from tests.app.conftest import SMALL_INDEX, structured_vectors
from training.bundle import write_bundle
from training.vocabulary import Vocabulary


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"the body holds {name}, which JSON does not allow")


def strict_json(response: httpx.Response) -> Any:
    """The response's JSON, refusing NaN and infinity."""
    return json.loads(response.text, parse_constant=_refuse_constant)


def write_model(path: Path, words: list[str], vectors: np.ndarray) -> Path:
    counts = np.arange(len(words), 0, -1, dtype=np.int64)
    manifest = {"source": "trained", "config": {"lowercase": True}}
    return write_bundle(
        path, vocabulary=Vocabulary(words, counts), vectors=vectors, manifest=manifest
    )


@contextmanager
def serving(bundle: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(bundle_path=bundle))) as client:
        yield client


def test_zero_vectors_get_finite_scores(tmp_path: Path) -> None:
    words, vectors = structured_vectors()
    vectors[words.index("dog")] = 0.0
    vectors[words.index("cat")] = 0.0
    with serving(write_model(tmp_path / "zero", words, vectors)) as client:
        responses = [
            client.get("/similar", params={"word": "dog", "k": 5}),
            client.get("/similarity", params={"a": "dog", "b": "cat"}),
            client.get("/analogy", params={"a": "dog", "b": "cat", "c": "king"}),
            client.get("/vectors/dog"),
            client.post("/embed", json={"texts": ["dog cat", "dog king"]}),
            client.post("/similar", json={"positive": ["dog"], "negative": ["cat"]}),
        ]
    assert [r.status_code for r in responses] == [200] * len(responses)
    bodies = [strict_json(r) for r in responses]
    assert all(-1 <= n["score"] <= 1 for n in bodies[0]["neighbours"])
    assert bodies[1]["score"] == 0.0
    assert bodies[3]["vector"] == [0.0] * vectors.shape[1]


def test_a_bundle_with_nan_vectors_is_refused_at_load(tmp_path: Path) -> None:
    words, vectors = structured_vectors()
    bundle = write_model(tmp_path / "nan", words, vectors)
    # Damage the file in place (same size), as a bad disk or a hand edit would.
    stored = open_memmap(bundle / "vectors.npy", mode="r+")
    stored[words.index("dog")] = np.nan
    stored.flush()
    del stored
    with serving(bundle) as client:
        health = client.get("/health")
        similar = client.get("/similar", params={"word": "king"})
    assert health.status_code == 503
    assert "NaN" in strict_json(health)["last_load_error"]
    assert similar.status_code == 503
    assert strict_json(similar)["type"] == "/problems/model-not-ready"


def test_one_word_vocabulary_answers_empty_neighbour_lists(tmp_path: Path) -> None:
    vectors = np.ones((1, 4), dtype=np.float32)
    with serving(write_model(tmp_path / "solo", ["solo"], vectors)) as client:
        similar = client.get("/similar", params={"word": "solo", "k": 3})
        analogy = client.get(
            "/analogy", params={"a": "solo", "b": "solo", "c": "solo", "k": 2}
        )
        cosmul = client.get(
            "/analogy",
            params={"a": "solo", "b": "solo", "c": "solo", "method": "3cosmul"},
        )
        similarity = client.get("/similarity", params={"a": "solo", "b": "solo"})
    assert strict_json(similar)["neighbours"] == []
    assert strict_json(analogy)["neighbours"] == []
    assert strict_json(cosmul)["neighbours"] == []
    assert strict_json(similarity)["score"] == 1.0


def test_one_word_version_can_be_indexed_and_activated(tmp_path: Path) -> None:
    source = write_model(tmp_path / "solo", ["solo"], np.ones((1, 4), np.float32))
    registry = ModelRegistry(tmp_path / "data")
    registry.add(source, version="solo", activate=True, index_config=SMALL_INDEX)
    settings = Settings(data_dir=registry.data_dir)
    with TestClient(create_app(settings)) as client:
        response = client.get("/similar", params={"word": "solo"})
    assert response.status_code == 200
    assert strict_json(response)["neighbours"] == []


def test_an_import_that_repeats_a_word_serves_its_first_vector(
    tmp_path: Path,
) -> None:
    source = tmp_path / "repeats.txt"
    source.write_text("3 2\nnorth 1 0\nsouth 0 1\nnorth 0 1\n")
    bundle = import_vectors(source, "word2vec-text", tmp_path / "imported")
    with serving(bundle) as client:
        words = strict_json(client.get("/vocabulary", params={"prefix": "n"}))
        vector = strict_json(client.get("/vectors/north"))
    assert [w["word"] for w in words["words"]] == ["north"]
    assert vector["vector"] == [1.0, 0.0]
