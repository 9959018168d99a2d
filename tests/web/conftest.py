"""Fixtures for the web page: a real data directory, `wordvec serve` and
`wordvec worker` processes, and Debian's Chromium driven by Playwright."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from app.registry import ModelRegistry
from index.build import IndexConfig
from tests.app.conftest import running_server
from tests.app.test_jobs_e2e import JOB_ENV, base_bundle, running_worker

__all__ = ["base_bundle"]  # a fixture, used through pytest's name lookup

CHROMIUM = Path(os.environ.get("WORDVEC_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
BASE_VERSION = "base"


@pytest.fixture(scope="module")
def web_data_dir(tmp_path_factory: pytest.TempPathFactory, base_bundle: Path) -> Path:
    """A data directory whose active version is the trained tiny model."""
    registry = ModelRegistry(tmp_path_factory.mktemp("web") / "data")
    registry.add(
        base_bundle,
        version=BASE_VERSION,
        activate=True,
        index_config=IndexConfig(kind="flat", threads=1),
    )
    return registry.data_dir


@pytest.fixture(scope="module")
def server_url(web_data_dir: Path) -> Iterator[str]:
    """`wordvec serve --data-dir` on a free port, with a worker beside it."""
    logs = web_data_dir.parent
    arguments = ["--data-dir", str(web_data_dir), "--workers", "1"]
    with (
        running_server(arguments, logs / "server.log", JOB_ENV) as url,
        running_worker(web_data_dir, logs / "worker.log"),
    ):
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium from Debian's package (Playwright downloads none)."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


@pytest.fixture
def requested() -> list[str]:
    """Every URL the page fixture's tab asked for, in order."""
    return []


@pytest.fixture
def console_errors() -> list[str]:
    """Errors the page fixture's tab wrote to its console."""
    return []


@pytest.fixture
def page(
    browser: Browser,
    server_url: str,
    requested: list[str],
    console_errors: list[str],
    request: pytest.FixtureRequest,
) -> Iterator[Page]:
    """A fresh tab showing the page; its screenshot is kept in test-artifacts/web."""
    context = browser.new_context(viewport={"width": 1200, "height": 1400})
    tab = context.new_page()
    tab.on("request", lambda r: requested.append(r.url))
    tab.on(
        "console",
        lambda m: console_errors.append(m.text) if m.type == "error" else None,
    )
    tab.goto(f"{server_url}/")
    try:
        yield tab
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        context.close()
