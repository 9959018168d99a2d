"""End to end with approximate indexes: a bundle trained in the test session,
indexed by `wordvec index --index hnsw|ivf-pq`, served by `wordvec serve`
and checked over HTTP against exact search done here with numpy."""

import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import numpy as np
import pytest

from tests.app.conftest import run_wordvec, running_server
from training.config import TrainConfig
from training.trainer import train

PROBLEM = "application/problem+json"
# 15 topics of 20 words: 300 words, enough for IVF-PQ's 256-word minimum.
NUM_TOPICS = 15
WORDS_PER_TOPIC = 20
MAX_BODY_BYTES = 2048


def write_topic_corpus(path: Path, num_sentences: int = 2500, seed: int = 0) -> Path:
    """Write sentences of words drawn from one topic each (plus glue words),
    so a trained model puts a topic's words near each other."""
    rng = random.Random(seed)
    topics = [[f"t{t}w{w}" for w in range(WORDS_PER_TOPIC)] for t in range(NUM_TOPICS)]
    glue = ["the", "a", "of", "and", "in"]
    lines = []
    for _ in range(num_sentences):
        topic = rng.choice(topics)
        words = [
            rng.choice(topic) if rng.random() < 0.7 else rng.choice(glue)
            for _ in range(rng.randint(6, 12))
        ]
        lines.append(" ".join(words))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 305-word bundle trained on the topic corpus (a few seconds)."""
    root = tmp_path_factory.mktemp("approximate")
    corpus = write_topic_corpus(root / "corpus.txt")
    config = TrainConfig(dim=24, epochs=3, min_count=1, threads=1, seed=1)
    result = train([corpus], config, root / "trained", progress=False, evaluate=False)
    return Path(result.bundle_path)


def exact_neighbours(bundle: Path, k: int) -> dict[str, list[str]]:
    """Return each word's `k` nearest other words by exact cosine score."""
    words = [
        line.split("\t", 1)[0]
        for line in (bundle / "vocabulary.tsv").read_text(encoding="utf-8").splitlines()
    ]
    vectors = np.load(bundle / "vectors.npy").astype(np.float64)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = unit @ unit.T
    np.fill_diagonal(scores, -np.inf)
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return {
        word: [words[i] for i in row] for word, row in zip(words, best, strict=True)
    }


class Served(NamedTuple):
    url: str
    bundle: Path
    kind: str


@pytest.fixture(scope="module", params=["hnsw", "ivf-pq"])
def served(
    request: pytest.FixtureRequest,
    trained_bundle: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """`wordvec serve` on a copy of the trained bundle indexed with the
    parameter's kind and no precomputed lists, so every /similar answer
    comes from the approximate index itself."""
    kind = request.param
    bundle = tmp_path_factory.mktemp(kind) / "bundle"
    shutil.copytree(trained_bundle, bundle)
    built = ["--index", kind, "--precompute-words", "0", "--threads", "1"]
    run_wordvec("index", str(bundle), *built)
    log = bundle.parent / "server.log"
    env = {"WORDVEC_MAX_BODY_BYTES": str(MAX_BODY_BYTES)}
    with running_server([str(bundle)], log, env) as url:
        yield Served(url, bundle, kind)


@pytest.fixture(scope="module")
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        yield client


def served_index(http: httpx.Client) -> dict[str, Any]:
    (model,) = http.get("/models").json()["models"]
    index: dict[str, Any] = model["index"]
    return index


def test_models_shows_the_approximate_index_and_its_recall(
    http: httpx.Client, served: Served
) -> None:
    index = served_index(http)
    assert index["kind"] == served.kind
    assert index["recall_at_10"] >= index["recall_floor"] == 0.95
    assert index["neighbour_lists"] is None
    assert index["built_at"] is not None


def test_similar_over_http_agrees_with_exact_search_within_the_recall_floor(
    http: httpx.Client, served: Served
) -> None:
    exact = exact_neighbours(served.bundle, 10)
    hits = 0
    for word, expected in exact.items():
        response = http.get("/similar", params={"word": word, "k": 10})
        assert response.status_code == 200, response.text
        body = response.json()
        found = [n["word"] for n in body["neighbours"]]
        scores = [n["score"] for n in body["neighbours"]]
        assert word not in found and len(found) == 10
        assert scores == sorted(scores, reverse=True)
        hits += len(set(found) & set(expected))
    recall = hits / (10 * len(exact))
    assert recall >= served_index(http)["recall_floor"]


def test_a_body_over_the_limit_is_a_413_problem_over_http(http: httpx.Client) -> None:
    words = ["t1w1"] * (MAX_BODY_BYTES // 5)
    response = http.post("/similar", json={"words": words})
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "/problems/body-too-large"
