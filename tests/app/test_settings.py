"""The settings object: which values it takes, and how `wordvec serve` finds
what to serve through it (flags first, then WORDVEC_* variables and .env)."""

import os
import subprocess
from pathlib import Path
from typing import get_args

import httpx
import pytest

from app.core.config import IndexKindSetting, Settings
from index.kinds import KIND_CHOICES
from tests.app.conftest import MODEL_VERSION, running_server, wordvec_command

# A `wordvec serve` that is refused exits long before this.
DEADLINE_SECONDS = 60


def wordvec_serve(
    *arguments: str, env_vars: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run `wordvec serve ARGUMENTS` in `cwd` with only `env_vars` among the
    WORDVEC_* variables; return it once it has exited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORDVEC_")}
    return subprocess.run(
        [*wordvec_command(), "serve", *arguments],
        capture_output=True,
        text=True,
        env={**env, **env_vars},
        cwd=cwd,
        timeout=DEADLINE_SECONDS,
        check=False,
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Check that `result` failed with status 2 and one line; return it."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("wordvec: error: ")
    return line


def test_index_kind_setting_takes_the_kinds_the_index_command_builds() -> None:
    assert get_args(IndexKindSetting) == KIND_CHOICES


def test_an_unknown_index_kind_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORDVEC_INDEX_KIND", "hnsw")
    assert Settings().index_kind == "hnsw"
    monkeypatch.setenv("WORDVEC_INDEX_KIND", "bogus")
    with pytest.raises(ValueError, match="'auto', 'flat', 'hnsw' or 'ivf-pq'"):
        Settings()


def test_an_unknown_index_kind_stops_serve_with_one_line(
    bundle_path: Path, tmp_path: Path
) -> None:
    result = wordvec_serve(
        str(bundle_path), env_vars={"WORDVEC_INDEX_KIND": "bogus"}, cwd=tmp_path
    )
    line = assert_one_error_line(result)
    assert "invalid setting: WORDVEC_INDEX_KIND" in line
    assert "'ivf-pq'" in line


def test_an_empty_variable_leaves_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    for name in ("WORDVEC_MAX_K", "WORDVEC_CORS_ORIGINS", "WORDVEC_INDEX_KIND"):
        monkeypatch.setenv(name, "")
    settings = Settings()
    assert settings.max_k == defaults.max_k == 100
    assert settings.cors_origins == []
    assert settings.index_kind == "auto"


def test_serve_serves_the_bundle_named_by_wordvec_bundle_path(
    bundle_path: Path, tmp_path: Path
) -> None:
    env_vars = {"WORDVEC_BUNDLE_PATH": str(bundle_path)}
    with running_server([], tmp_path / "server.log", env_vars) as url:
        answer = httpx.get(f"{url}/similar", params={"word": "king"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == MODEL_VERSION
    assert answer.json()["neighbours"]


def test_serve_reads_the_bundle_path_from_dot_env(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-bundle"
    (tmp_path / ".env").write_text(f"WORDVEC_BUNDLE_PATH={missing}\n")
    line = assert_one_error_line(wordvec_serve(env_vars={}, cwd=tmp_path))
    assert str(missing) in line


def test_serve_bundle_dir_wins_over_wordvec_bundle_path(
    bundle_path: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-bundle"
    env_vars = {"WORDVEC_BUNDLE_PATH": str(bundle_path)}
    result = wordvec_serve(str(missing), env_vars=env_vars, cwd=tmp_path)
    assert str(missing) in assert_one_error_line(result)


def test_serve_with_nothing_to_serve_names_both_variables(tmp_path: Path) -> None:
    line = assert_one_error_line(wordvec_serve(env_vars={}, cwd=tmp_path))
    assert "nothing to serve" in line
    assert "WORDVEC_BUNDLE_PATH" in line and "WORDVEC_DATA_DIR" in line


def test_serve_refuses_a_bundle_dir_that_dot_env_would_override(
    bundle_path: Path, tmp_path: Path
) -> None:
    # The app serves WORDVEC_DATA_DIR first, so a bundle given as a flag
    # would silently lose to a data directory named in .env.
    (tmp_path / ".env").write_text(f"WORDVEC_DATA_DIR={tmp_path / 'data'}\n")
    result = wordvec_serve(str(bundle_path), env_vars={}, cwd=tmp_path)
    line = assert_one_error_line(result)
    assert "WORDVEC_DATA_DIR" in line and ".env" in line


@pytest.mark.parametrize("threads", [1, 3])
def test_query_threads_size_the_pool_query_handlers_run_on(
    settings: Settings, threads: int
) -> None:
    from fastapi.testclient import TestClient

    from app.api import deps
    from app.core.config import get_settings
    from app.main import create_app

    app = create_app()
    app.dependency_overrides[get_settings] = lambda: settings.model_copy(
        update={"query_threads": threads}
    )
    with TestClient(app) as client:
        response = client.post("/similar", json={"words": ["king"], "k": 2})
        assert response.status_code == 200, response.text
        assert deps._limiter().total_tokens == threads
