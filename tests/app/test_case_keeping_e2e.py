"""End to end on a case-keeping model: vectors imported by `wordvec import`
without --lowercase, indexed, served by `wordvec serve` and queried over
HTTP in several cases (docs/api.md, "Case")."""

from collections.abc import Iterator

import httpx
import pytest

from index.formats import write_word2vec
from tests.app.conftest import run_wordvec, running_server, structured_vectors

# The structured test words, some renamed into capitals or mixed case;
# "paris" and "Paris" are two different words, "Paris" the more frequent.
RENAMED = {
    "king": "King",
    "queen": "Queen",
    "london": "LONDON",
    "bread": "Paris",
    "cheese": "McCheese",
}


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A client of `wordvec serve` on the imported, indexed case-keeping bundle."""
    root = tmp_path_factory.mktemp("case-keeping")
    words, vectors = structured_vectors()
    vectors_file = root / "cased.txt"
    write_word2vec(
        vectors_file, [RENAMED.get(w, w) for w in words], vectors, binary=False
    )
    bundle = root / "bundle"
    imported = ["--format", "word2vec-text", "--output", str(bundle)]
    run_wordvec("import", str(vectors_file), *imported)
    run_wordvec("index", str(bundle), "--index", "flat", "--threads", "1")
    log = root / "server.log"
    with (
        running_server([str(bundle)], log) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client


@pytest.mark.parametrize(
    ("query", "answered"),
    [
        ("King", "King"),
        ("king", "King"),
        ("KING", "King"),
        ("london", "LONDON"),
        ("Paris", "Paris"),
        ("paris", "paris"),
        ("PARIS", "Paris"),
        ("The", "the"),
        ("mccheese", "McCheese"),
        ("MCCHEESE", "McCheese"),
    ],
)
def test_similar_finds_a_word_as_given_then_in_other_cases(
    http: httpx.Client, query: str, answered: str
) -> None:
    response = http.get("/similar", params={"word": query, "k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["word"] == answered
    assert answered not in [n["word"] for n in body["neighbours"]]


def test_suggestions_for_an_unknown_word_can_each_be_queried(
    http: httpx.Client,
) -> None:
    problem = http.get("/similar", params={"word": "Quen"}).json()
    assert problem["status"] == 404
    assert "Queen" in problem["suggestions"]
    for suggestion in problem["suggestions"]:
        answer = http.get("/similar", params={"word": suggestion})
        assert answer.status_code == 200
        assert answer.json()["word"] == suggestion


def test_vocabulary_prefix_matches_words_in_any_case(http: httpx.Client) -> None:
    body = http.get("/vocabulary", params={"prefix": "lon"}).json()
    assert [w["word"] for w in body["words"]] == ["LONDON"]
    body = http.get("/vocabulary", params={"prefix": "pa"}).json()
    assert {w["word"] for w in body["words"]} == {"Paris", "paris"}
    body = http.get("/vocabulary", params={"prefix": "mcc"}).json()
    assert [w["word"] for w in body["words"]] == ["McCheese"]


def test_pairs_analogies_and_texts_find_words_in_other_cases(
    http: httpx.Client,
) -> None:
    pair = http.get("/similarity", params={"a": "king", "b": "QUEEN"}).json()
    assert (pair["a"], pair["b"]) == ("King", "Queen")
    analogy = http.get("/analogy", params={"a": "man", "b": "king", "c": "woman"})
    assert analogy.json()["neighbours"][0]["word"] == "Queen"
    embedded = http.post("/embed", json={"texts": ["The king and the Qzx"]}).json()
    (embedding,) = embedded["embeddings"]
    assert embedding["known_words"] == ["the", "King", "and"]
    assert embedding["oov_words"] == ["Qzx"]
