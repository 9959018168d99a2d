"""GET /similar answered from precomputed neighbour lists (on the event
loop) gives the same bodies as exact search (on the threadpool)."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings, get_settings
from app.main import create_app
from app.schemas import NeighboursResponse
from index.build import IndexConfig, build_index
from tests.app.conftest import MODEL_VERSION, WORD_PARTS, write_test_bundle

LISTED_WORDS = 10  # the 10 most frequent of the 20 words have lists
LISTED_K = 5


@pytest.fixture(scope="module")
def listed_client(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The app serving the test bundle with a flat index and short lists."""
    bundle = write_test_bundle(tmp_path_factory.mktemp("listed") / MODEL_VERSION)
    config = IndexConfig(
        kind="flat", threads=1, precompute_words=LISTED_WORDS, precompute_k=LISTED_K
    )
    build_index(bundle, config)
    app = create_app()
    listed_settings = settings.model_copy(update={"bundle_path": bundle})
    app.dependency_overrides[get_settings] = lambda: listed_settings
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize("k", [1, LISTED_K, LISTED_K + 3])
def test_listed_and_searched_words_answer_like_exact_search(
    k: int, listed_client: TestClient, client: TestClient
) -> None:
    # `client` serves the same vectors without an index: exact search only.
    model = listed_client.app.state.model_holder.current
    listed_words = list(WORD_PARTS)[:LISTED_WORDS]
    assert all(
        (model.listed(w, k) is not None) == (k <= LISTED_K) for w in listed_words
    )
    for word in WORD_PARTS:
        params = {"word": word.upper(), "k": k}
        listed = listed_client.get("/similar", params=params)
        searched = client.get("/similar", params=params).json()
        assert listed.status_code == 200
        assert listed.headers["content-type"] == "application/json"
        body = NeighboursResponse.model_validate_json(listed.content).model_dump()
        assert body.keys() == searched.keys()
        assert body["word"] == word and body["inferred"] is False
        assert [n["word"] for n in body["neighbours"]] == [
            n["word"] for n in searched["neighbours"]
        ]
        for got, expected in zip(
            body["neighbours"], searched["neighbours"], strict=True
        ):
            assert got["score"] == pytest.approx(expected["score"], abs=2e-6)


def test_unknown_word_is_a_404_with_suggestions_when_lists_exist(
    listed_client: TestClient,
) -> None:
    response = listed_client.get("/similar", params={"word": "kingg"})
    assert response.status_code == 404
    assert "king" in response.json()["suggestions"]


def test_k_over_the_server_maximum_is_refused_before_any_lookup(
    listed_client: TestClient,
) -> None:
    response = listed_client.get("/similar", params={"word": "king", "k": 101})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "k"


def test_similar_documents_its_query_parameters_for_openapi(
    listed_client: TestClient,
) -> None:
    operation = listed_client.get("/openapi.json").json()["paths"]["/similar"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert parameters["word"]["required"] is True
    assert parameters["word"]["schema"]["minLength"] == 1
    assert parameters["k"]["required"] is False
    assert (
        parameters["k"]["schema"] | {"default": 10, "minimum": 1}
        == (parameters["k"]["schema"])
    )


@pytest.mark.parametrize(("k", "expected"), [("+3", 3), (" 2", 2), ("1.0", 1)])
def test_k_written_other_ways_is_read_as_pydantic_reads_an_integer(
    k: str, expected: int, listed_client: TestClient
) -> None:
    response = listed_client.get("/similar", params={"word": "king", "k": k})
    assert response.status_code == 200
    assert len(response.json()["neighbours"]) == expected


def test_similar_requests_are_counted_per_route_in_the_metrics(
    listed_client: TestClient,
) -> None:
    def answered() -> float:
        text = listed_client.get("/metrics").text
        prefix = (
            'wordvec_http_requests_total{method="GET",route="/similar",status="200"}'
        )
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return float(lines[0].split()[-1]) if lines else 0.0

    before = answered()
    for _ in range(3):
        listed_client.get("/similar", params={"word": "king", "k": 2})
    assert answered() == before + 3
