"""Query endpoints through the real app in-process (TestClient)."""

from fastapi.testclient import TestClient

from tests.app.conftest import MODEL_VERSION, WORD_PARTS


def test_similar_returns_k_neighbours_by_descending_score(client: TestClient) -> None:
    response = client.get("/similar", params={"word": "king", "k": 5})
    assert response.status_code == 200
    body = response.json()
    scores = [n["score"] for n in body["neighbours"]]
    assert body["word"] == "king"
    assert body["model_version"] == MODEL_VERSION
    assert len(scores) == 5
    assert scores == sorted(scores, reverse=True)
    assert body["neighbours"][0]["word"] == "prince"


def test_similar_excludes_the_query_word(client: TestClient) -> None:
    body = client.get("/similar", params={"word": "dog", "k": 19}).json()
    assert "dog" not in [n["word"] for n in body["neighbours"]]


def test_similar_folds_case_and_spaces_like_the_tokeniser(client: TestClient) -> None:
    body = client.get("/similar", params={"word": "  KING ", "k": 1}).json()
    assert body["word"] == "king"
    assert body["inferred"] is False


def test_similar_defaults_to_ten_neighbours(client: TestClient) -> None:
    assert (
        len(client.get("/similar", params={"word": "cat"}).json()["neighbours"]) == 10
    )


def test_post_similar_answers_each_word_of_a_batch(client: TestClient) -> None:
    response = client.post("/similar", json={"words": ["King", "bread"], "k": 2})
    body = response.json()
    assert response.status_code == 200
    assert body["model_version"] == MODEL_VERSION
    assert [r["word"] for r in body["results"]] == ["king", "bread"]
    assert all(len(r["neighbours"]) == 2 for r in body["results"])


def test_post_similar_with_positive_and_negative_solves_king_man_woman(
    client: TestClient,
) -> None:
    query = {"positive": ["king", "woman"], "negative": ["man"], "k": 3}
    body = client.post("/similar", json=query).json()
    words = [n["word"] for n in body["neighbours"]]
    assert words[0] == "queen"
    assert not {"king", "woman", "man"} & set(words)


def test_similarity_is_higher_for_related_words(client: TestClient) -> None:
    related = client.get("/similarity", params={"a": "king", "b": "queen"}).json()
    unrelated = client.get("/similarity", params={"a": "king", "b": "cheese"}).json()
    assert related["score"] > unrelated["score"]
    assert related["a"] == "king"
    assert related["model_version"] == MODEL_VERSION


def test_post_similarity_scores_each_pair_in_order(client: TestClient) -> None:
    pairs = [{"a": "dog", "b": "cat"}, {"a": "bread", "b": "paris"}]
    body = client.post("/similarity", json={"pairs": pairs}).json()
    assert [(r["a"], r["b"]) for r in body["results"]] == [
        ("dog", "cat"),
        ("bread", "paris"),
    ]
    assert body["results"][0]["score"] > body["results"][1]["score"]


def test_analogy_answers_queen_and_excludes_query_words(client: TestClient) -> None:
    params = {"a": "man", "b": "king", "c": "woman", "k": 3}
    body = client.get("/analogy", params=params).json()
    words = [n["word"] for n in body["neighbours"]]
    assert words[0] == "queen"
    assert not {"man", "king", "woman"} & set(words)
    assert body["method"] == "3cosadd"


def test_analogy_accepts_3cosmul(client: TestClient) -> None:
    params = {"a": "man", "b": "king", "c": "woman", "method": "3cosmul"}
    body = client.get("/analogy", params=params).json()
    assert body["method"] == "3cosmul"
    assert body["neighbours"][0]["word"] == "queen"


def test_embed_returns_a_unit_vector_per_text_and_lists_oov_words(
    client: TestClient,
) -> None:
    texts = ["The king and the queen", "qzxv blorp"]
    body = client.post("/embed", json={"texts": texts}).json()
    first, second = body["embeddings"]
    assert body["dim"] == 16
    assert len(first["vector"]) == 16
    assert abs(sum(x * x for x in first["vector"]) - 1) < 1e-3
    assert second == {"vector": None, "known_words": [], "oov_words": ["qzxv", "blorp"]}


def test_embed_accepts_sif_weighting(client: TestClient) -> None:
    body = client.post("/embed", json={"texts": ["king"], "weighting": "sif"}).json()
    assert body["weighting"] == "sif"
    assert body["embeddings"][0]["known_words"] == ["king"]


def test_vector_of_a_word_has_unit_length(client: TestClient) -> None:
    body = client.get("/vectors/Queen").json()
    assert body["word"] == "queen"
    assert body["inferred"] is False
    assert len(body["vector"]) == body["dim"] == 16
    assert abs(sum(x * x for x in body["vector"]) - 1) < 1e-3


def test_vocabulary_lists_words_with_a_prefix_most_frequent_first(
    client: TestClient,
) -> None:
    body = client.get("/vocabulary", params={"prefix": "PRIN", "limit": 5}).json()
    assert [w["word"] for w in body["words"]] == ["prince", "princess"]
    counts = [w["count"] for w in body["words"]]
    assert counts == sorted(counts, reverse=True)


def test_vocabulary_without_prefix_lists_the_most_frequent_words(
    client: TestClient,
) -> None:
    body = client.get("/vocabulary", params={"limit": 3}).json()
    assert [w["word"] for w in body["words"]] == list(WORD_PARTS)[:3]


def test_unknown_word_with_subwords_gets_an_inferred_vector(
    subword_client: TestClient,
) -> None:
    body = subword_client.get("/vectors/kingdoms").json()
    assert body["inferred"] is True
    assert len(body["vector"]) == 16


def test_similar_flags_neighbours_of_an_inferred_word(
    subword_client: TestClient,
) -> None:
    body = subword_client.get("/similar", params={"word": "kingdoms", "k": 3}).json()
    assert body["inferred"] is True
    assert len(body["neighbours"]) == 3


def test_known_word_is_not_flagged_as_inferred_with_subwords(
    subword_client: TestClient,
) -> None:
    body = subword_client.get("/similarity", params={"a": "king", "b": "kingz"}).json()
    assert body["inferred_words"] == ["kingz"]
