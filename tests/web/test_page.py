"""The web page in headless Chromium against the real server and worker:
what a person types and clicks, checked against what the JSON API answers."""

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.app.test_jobs_e2e import API_KEY, upload_text
from tests.web.conftest import ARTIFACTS, BASE_VERSION

# Playwright waits up to this long for the page to show something.
WAIT_MS = 10_000


def api_get(server_url: str, path: str, **params: str) -> httpx.Response:
    return httpx.get(f"{server_url}{path}", params=params, timeout=10)


def search(page: Page, word: str) -> None:
    page.fill("#search-word", word)
    page.click("#search-form button[type=submit]")


def test_typing_suggests_words_then_shows_neighbours_and_their_plot(
    page: Page, server_url: str
) -> None:
    page.locator("#search-word").press_sequentially("kin", delay=30)
    suggestions = page.locator("#vocabulary-options option")
    expect(suggestions.first).to_have_attribute("value", "king", timeout=WAIT_MS)
    search(page, "king")

    expected = api_get(server_url, "/similar", word="king", k="10").json()
    rows = page.locator("#neighbours li")
    expect(rows).to_have_count(len(expected["neighbours"]), timeout=WAIT_MS)
    for row, neighbour in zip(rows.all(), expected["neighbours"], strict=True):
        expect(row.locator("button.word")).to_have_text(neighbour["word"])
        expect(row.locator(".score")).to_have_text(f"{neighbour['score']:.3f}")
    # One point per word in the plot, the query word marked.
    points = page.locator("#plot svg g.point")
    expect(points).to_have_count(len(expected["neighbours"]) + 1, timeout=WAIT_MS)
    expect(page.locator("#plot svg g.point.query text")).to_have_text("king")
    expect(page.locator("#served-version")).to_have_text(BASE_VERSION)


def test_plot_spreads_points_apart(page: Page) -> None:
    search(page, "queen")
    circles = page.locator("#plot svg circle")
    expect(circles).to_have_count(11, timeout=WAIT_MS)
    centres = {(c.get_attribute("cx"), c.get_attribute("cy")) for c in circles.all()}
    # A PCA that failed (all zeros, NaN) would stack the points on one spot.
    assert len(centres) == 11
    assert not any("NaN" in f"{x}{y}" for x, y in centres)


# The query's dot as the browser paints it, and whether anything is painted
# after it (SVG draws later elements on top of earlier ones).
QUERY_DOT = """svg => {
  const points = [...svg.querySelectorAll("g.point")];
  const style = (g) => getComputedStyle(g.querySelector("circle"));
  const query = svg.querySelector("g.point.query");
  const neighbour = points.find((g) => g !== query);
  return {
    last: points[points.length - 1] === query,
    fill: style(query).fill, neighbourFill: style(neighbour).fill,
    stroke: style(query).stroke, neighbourStroke: style(neighbour).stroke,
  };
}"""


def test_query_word_is_drawn_on_top_and_marked_apart(page: Page) -> None:
    search(page, "king")
    expect(page.locator("#plot svg g.point")).to_have_count(11, timeout=WAIT_MS)
    dot = page.locator("#plot svg").evaluate(QUERY_DOT)
    assert dot["last"], "a neighbour is painted over the query word"
    assert dot["fill"] != dot["neighbourFill"]
    assert dot["stroke"] != dot["neighbourStroke"]


# Pairs of word labels in the plot whose rendered boxes intersect.
OVERLAPPING_LABELS = """svg => {
  const boxes = [...svg.querySelectorAll("g.point text")].map(t => t.getBBox());
  const pairs = [];
  boxes.forEach((a, i) => boxes.slice(i + 1).forEach(b => {
    if (a.x < b.x + b.width && b.x < a.x + a.width &&
        a.y < b.y + b.height && b.y < a.y + a.height) pairs.push([a, b]);
  }));
  return pairs.length;
}"""


@pytest.mark.parametrize("word", ["king", "queen", "cat", "apple"])
def test_plot_labels_do_not_overlap(page: Page, word: str) -> None:
    search(page, word)
    expect(page.locator("#plot svg g.point")).to_have_count(11, timeout=WAIT_MS)
    svg = page.locator("#plot svg")
    assert svg.evaluate(OVERLAPPING_LABELS) == 0
    # Every label stays inside the drawing.
    view_height = float(svg.get_attribute("viewBox").split()[3])
    bottoms = svg.evaluate(
        "svg => [...svg.querySelectorAll('g.point text')]"
        ".map(t => t.getBBox().y + t.getBBox().height)"
    )
    assert max(bottoms) <= view_height


def test_clicking_a_neighbour_searches_for_it(page: Page) -> None:
    search(page, "king")
    first = page.locator("#neighbours li button.word").first
    expect(first).to_be_visible(timeout=WAIT_MS)
    word = first.inner_text()
    first.click()
    expect(page.locator("#search-word")).to_have_value(word)
    expect(page.locator("#plot svg g.point.query text")).to_have_text(
        word, timeout=WAIT_MS
    )


def test_unknown_word_shows_the_servers_problem_detail(
    page: Page, server_url: str
) -> None:
    search(page, "qzxvw")
    problem = api_get(server_url, "/similar", word="qzxvw", k="10").json()
    assert problem["status"] == 404
    expect(page.locator("#search-error")).to_contain_text(
        problem["detail"], timeout=WAIT_MS
    )
    expect(page.locator("#neighbours li")).to_have_count(0)
    expect(page.locator("#plot-figure")).to_be_hidden()


def test_close_spellings_are_offered_as_links_that_search(
    page: Page, server_url: str
) -> None:
    search(page, "quen")
    problem = api_get(server_url, "/similar", word="quen", k="10").json()
    assert problem["suggestions"], problem
    links = page.locator("#search-error button.word")
    expect(links).to_have_text(problem["suggestions"], timeout=WAIT_MS)
    links.first.click()
    expect(page.locator("#search-error")).to_be_hidden()
    expect(page.locator("#plot svg g.point.query text")).to_have_text(
        problem["suggestions"][0], timeout=WAIT_MS
    )


def test_analogy_form_lists_the_apis_answers(page: Page, server_url: str) -> None:
    page.fill("#analogy-a", "king")
    page.fill("#analogy-b", "queen")
    page.fill("#analogy-c", "prince")
    page.click("#analogy-form button[type=submit]")
    expected = api_get(server_url, "/analogy", a="king", b="queen", c="prince")
    words = [n["word"] for n in expected.json()["neighbours"]]
    answers = page.locator("#analogy-results li button.word")
    expect(answers).to_have_text(words, timeout=WAIT_MS)
    assert not {"king", "queen", "prince"} & set(words)


def test_similarity_form_shows_the_cosine_score(page: Page, server_url: str) -> None:
    page.fill("#similarity-a", "bread")
    page.fill("#similarity-b", "cheese")
    page.click("#similarity-form button[type=submit]")
    score = api_get(server_url, "/similarity", a="bread", b="cheese").json()["score"]
    expect(page.locator("#similarity-result")).to_contain_text(
        f"{score:.3f}", timeout=WAIT_MS
    )
    page.fill("#similarity-b", "qzxvw")
    page.click("#similarity-form button[type=submit]")
    expect(page.locator("#similarity-error")).to_contain_text("qzxvw")
    expect(page.locator("#similarity-result")).to_be_hidden()


def test_finetune_without_the_key_shows_why_it_was_refused(
    page: Page, tmp_path: Path
) -> None:
    upload = tmp_path / "upload.txt"
    upload.write_text(upload_text(num_sentences=300))
    page.fill("#api-key", "not-the-key")
    page.set_input_files("#finetune-file", str(upload))
    page.click("#finetune-form button[type=submit]")
    expect(page.locator("#finetune-error")).to_contain_text(
        "API key is wrong", timeout=WAIT_MS
    )
    expect(page.locator("#job")).to_be_hidden()


def test_finetune_upload_runs_to_succeeded_and_can_be_rolled_back(
    page: Page, server_url: str, tmp_path: Path
) -> None:
    upload = tmp_path / "royal.txt"
    upload.write_text(upload_text())
    page.fill("#api-key", API_KEY)
    page.set_input_files("#finetune-file", str(upload))
    page.fill("#finetune-epochs", "3")
    page.click("#finetune-form button[type=submit]")

    job = page.locator("#job")
    expect(job).to_be_visible(timeout=WAIT_MS)
    expect(job).to_have_attribute("data-status", "succeeded", timeout=60_000)
    job_id = page.locator("#job-id").inner_text()
    result = api_get(server_url, f"/jobs/{job_id}").json()
    assert result["status"] == "succeeded", result["error"]
    new_version = result["result_version"]
    expect(page.locator("#job-detail")).to_contain_text(new_version)
    expect(page.locator("#served-version")).to_have_text(new_version, timeout=WAIT_MS)
    expect(page.locator("#models tr.active")).to_have_attribute(
        "data-version", new_version
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "after-finetune.png"), full_page=True)

    # Roll back to the base version from the versions table.
    page.locator(f'#models tr[data-version="{BASE_VERSION}"] button').click()
    expect(page.locator("#served-version")).to_have_text(BASE_VERSION, timeout=WAIT_MS)
    assert api_get(server_url, "/models").json()["active_version"] == BASE_VERSION


def test_page_loads_only_from_its_own_server(
    page: Page, server_url: str, requested: list[str], console_errors: list[str]
) -> None:
    search(page, "king")
    expect(page.locator("#plot svg")).to_be_visible(timeout=WAIT_MS)
    own = urlsplit(server_url).netloc
    assert requested, "the page made no request"
    assert {urlsplit(url).netloc for url in requested} == {own}
    assert console_errors == []
    headers = httpx.get(f"{server_url}/", timeout=10).headers
    assert "default-src 'none'" in headers["content-security-policy"]


@pytest.mark.parametrize("name", ["app.js", "app.css"])
def test_static_files_are_served_with_their_type(server_url: str, name: str) -> None:
    response = httpx.get(f"{server_url}/static/{name}", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] in (
        "text/javascript",
        "text/css",
    )
    assert response.text.strip()


@pytest.mark.parametrize("name", ["index.html", "secret.txt", "..%2Fweb%2Fapp.js"])
def test_other_static_names_are_404_problems(server_url: str, name: str) -> None:
    response = httpx.get(f"{server_url}/static/{name}", timeout=10)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "use strict" not in response.text
