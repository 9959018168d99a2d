"""Dockerfile, .dockerignore and docker-compose.yml, checked without a Docker
engine: parsed and compared with the project, and the exact commands the
containers run, run here as processes against a temporary data directory."""

import fnmatch
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.cli import build_parser
from app.core.config import Settings
from app.registry import ModelRegistry
from tests.app.conftest import free_port, wait_until_ready, wordvec_command
from tests.conftest import write_tiny_corpus

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
WORDVEC_SERVICES = ("init", "api", "worker")
# Where the worker service notes that it is alive, inside its container.
ALIVE_FILE = "/tmp/wordvec-worker.alive"
DATA_VOLUME = "wordvec-data:/data"
SECRET_PATH = "/run/secrets/api_key"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    """Dockerfile instructions, one string each, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def instructions(dockerfile: list[str], keyword: str) -> list[str]:
    return [line for line in dockerfile if line.split()[0].upper() == keyword]


def final_stage(dockerfile: list[str]) -> list[str]:
    starts = [i for i, line in enumerate(dockerfile) if line.upper().startswith("FROM")]
    return dockerfile[starts[-1] :]


def exec_form(instruction: str) -> list[str]:
    """The JSON-array argument of a CMD/HEALTHCHECK instruction."""
    return list(yaml.safe_load(instruction[instruction.index("[") :]))


# ---- docker-compose.yml -------------------------------------------------


def test_compose_runs_init_api_and_worker_on_one_data_volume(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name in WORDVEC_SERVICES:
        assert services[name]["volumes"] == [DATA_VOLUME], name
        assert "profiles" not in services[name], f"{name} must start by default"
    assert set(compose["volumes"]) == {"wordvec-data", "redis-data"}


def test_api_and_worker_wait_for_init_to_succeed(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["init"]["restart"] == "no"
    for name in ("api", "worker"):
        condition = services[name]["depends_on"]["init"]["condition"]
        assert condition == "service_completed_successfully"


@pytest.mark.parametrize("service", WORDVEC_SERVICES)
def test_compose_commands_are_real_wordvec_commands(
    compose: dict[str, Any], service: str
) -> None:
    command = compose["services"][service]["command"]
    assert command[0] == "wordvec"
    # Parsing the whole command catches unknown flags and bad values.
    args = build_parser().parse_args(command[1:])
    assert Path(args.data_dir) == Path("/data")
    help_text = subprocess.run(
        [*wordvec_command(), command[1], "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"usage: wordvec {command[1]}" in help_text


def test_api_health_check_matches_the_images(
    compose: dict[str, Any], dockerfile: list[str]
) -> None:
    api_check = compose["services"]["api"]["healthcheck"]
    (image_check,) = instructions(dockerfile, "HEALTHCHECK")
    assert api_check["test"][0] == "CMD"
    assert api_check["test"][1:] == exec_form(image_check)
    assert "/health'" in api_check["test"][-1]
    assert compose["services"]["init"]["healthcheck"] == {"disable": True}
    worker_check = compose["services"]["worker"]["healthcheck"]
    assert worker_check["test"][:2] == ["CMD", "python"]
    assert ALIVE_FILE in worker_check["test"][-1]
    assert ALIVE_FILE in compose["services"]["worker"]["command"]


def test_settings_come_from_the_environment_not_the_file(
    compose: dict[str, Any],
) -> None:
    settings = {f"WORDVEC_{name.upper()}" for name in Settings.model_fields}
    # The secret's path: read by the settings (see docs/docker.md).
    settings.add("WORDVEC_API_KEY_FILE")
    for name in WORDVEC_SERVICES:
        environment = compose["services"][name]["environment"]
        for key, value in environment.items():
            assert key in settings, f"{name}: {key} is not a wordvec setting"
            # No value: passed through from the shell or .env when set.
            assert value is None or key == "WORDVEC_API_KEY_FILE", (name, key)
    api = compose["services"]["api"]
    assert api["environment"]["WORDVEC_API_KEY_FILE"] == SECRET_PATH
    assert api["secrets"] == ["api_key"]
    assert "file" in compose["secrets"]["api_key"]
    # Only the host's loopback unless asked otherwise.
    assert api["ports"][0].startswith("${WORDVEC_BIND_ADDRESS:-127.0.0.1}:")


def test_redis_profile_adds_the_queue_that_api_and_worker_can_switch_to(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["redis"]["profiles"] == ["redis"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name in ("api", "worker"):
        assert "WORDVEC_QUEUE_URL" in services[name]["environment"]


def compose_command() -> list[str] | None:
    """`docker compose` when the plugin works (no engine needed for
    `config`), else Debian's `docker-compose`, else None."""
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.parametrize("profile", [None, "redis"])
def test_compose_config_validates(tmp_path: Path, profile: str | None) -> None:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    secret = tmp_path / "api_key"
    secret.write_text("a-test-key\n")
    env = {**os.environ, "WORDVEC_API_KEY_SECRET": str(secret)}
    env.pop("COMPOSE_PROFILES", None)
    profile_flags = ["--profile", profile] if profile else []
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), *profile_flags, "config"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    services = resolved["services"]
    assert set(WORDVEC_SERVICES) <= set(services)
    if profile:
        assert services["redis"]["profiles"] == [profile]
    assert resolved["secrets"]["api_key"]["file"] == str(secret)


# ---- Dockerfile and .dockerignore ---------------------------------------


def test_image_is_multi_stage_with_cpu_torch_and_no_compiler_at_run_time(
    dockerfile: list[str],
) -> None:
    stages = instructions(dockerfile, "FROM")
    assert len(stages) == 2
    assert re.search(
        r"python:3\.1[1-9]-slim", " ".join(instructions(dockerfile, "ARG"))
    )
    torch = [line for line in dockerfile if "torch==" in line]
    assert len(torch) == 1
    assert "torch==2.13.0" in torch[0]
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch[0]
    runtime = " ".join(final_stage(dockerfile))
    assert "g++" not in runtime and "apt-get install" not in runtime
    assert "COPY --from=build /opt/venv /opt/venv" in runtime


def test_image_runs_as_a_non_root_user(dockerfile: list[str]) -> None:
    stage = final_stage(dockerfile)
    users = [line.split()[1] for line in stage if line.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    user_at = max(i for i, line in enumerate(stage) if line.startswith("USER "))
    cmd_at = max(i for i, line in enumerate(stage) if line.startswith("CMD "))
    assert user_at < cmd_at


def test_image_bakes_in_no_settings_or_secrets(dockerfile: list[str]) -> None:
    for line in instructions(dockerfile, "ENV") + instructions(dockerfile, "ARG"):
        assert "WORDVEC_" not in line.replace("WORDVEC_NATIVE_ARCH", ""), line
        assert not re.search(r"KEY|SECRET|TOKEN|PASSWORD", line, re.I), line
    assert instructions(dockerfile, "VOLUME") == ["VOLUME /data"]


def test_image_default_command_and_health_check(dockerfile: list[str]) -> None:
    (cmd,) = instructions(dockerfile, "CMD")
    command = exec_form(cmd)
    assert command[:2] == ["wordvec", "serve"]
    build_parser().parse_args(command[1:])
    (check,) = instructions(dockerfile, "HEALTHCHECK")
    assert "--start-period=" in check and "/health'" in check


def test_copied_paths_exist_and_pass_dockerignore(dockerfile: list[str]) -> None:
    patterns = dockerignore_patterns()
    for line in instructions(dockerfile, "COPY"):
        if "--from=" in line:
            continue
        for source in shlex.split(line)[1:-1]:
            assert (ROOT / source).exists(), source
            assert included(source, patterns), f"{source} is in .dockerignore"


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and line[0] != "#"]


def included(path: str, patterns: list[str]) -> bool:
    """Whether Docker sends `path` (relative, / separated) with the context:
    the last pattern matching the path or one of its parent directories
    decides, `!` patterns re-including."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    keep = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        if any(_matches(prefix, body) for prefix in prefixes):
            keep = negated
    return keep


def _matches(path: str, pattern: str) -> bool:
    if pattern.startswith("**/"):
        rest = pattern[3:]
        tail = path.split("/")
        return any(
            fnmatch.fnmatchcase("/".join(tail[i:]), rest) for i in range(len(tail))
        )
    return fnmatch.fnmatchcase(path, pattern) and path.count("/") == pattern.count("/")


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".env",
        "models/default/vectors.npy",
        "data/build/corpus.txt",
        "test-artifacts/web/page.png",
        "secrets/api_key",
        "app/__pycache__/main.cpython-311.pyc",
        "training/_native.cpython-311-x86_64-linux-gnu.so",
        ".mypy_cache/3.11/app/main.data.json",
    ],
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert not included(path, dockerignore_patterns())


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "app/main.py",
        "app/web/app.js",
        "training/native/word2vec_kernel.cpp",
        "data/corpus/austen.txt.xz",
    ],
)
def test_dockerignore_lets_in(path: str) -> None:
    assert included(path, dockerignore_patterns())


def test_web_page_files_are_installed_with_the_package() -> None:
    # The image installs wordvec as a wheel, not from the checkout.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"].get("app", [])
    for path in (ROOT / "app" / "web").iterdir():
        name = f"web/{path.name}"
        assert any(fnmatch.fnmatchcase(name, glob) for glob in globs), name


def test_api_key_is_read_from_the_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "api_key"
    secret.write_text("from-the-file\n")
    monkeypatch.delenv("WORDVEC_API_KEY", raising=False)
    monkeypatch.setenv("WORDVEC_API_KEY_FILE", str(secret))
    key = Settings().api_key
    assert key is not None and key.get_secret_value() == "from-the-file"
    monkeypatch.setenv("WORDVEC_API_KEY", "from-the-environment")
    key = Settings().api_key
    assert key is not None and key.get_secret_value() == "from-the-environment"
    monkeypatch.delenv("WORDVEC_API_KEY")
    monkeypatch.setenv("WORDVEC_API_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="missing"):
        Settings()


# ---- the containers' commands, run here ---------------------------------


@pytest.fixture(scope="module")
def stack_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What the container paths and address stand for outside Docker."""
    root = tmp_path_factory.mktemp("stack")
    corpus = root / "corpus"
    corpus.mkdir()
    write_tiny_corpus(corpus / "tiny.txt", num_sentences=600)
    return {
        "/data": str(root / "data"),
        "/app/data/corpus": str(corpus),
        "0.0.0.0": "127.0.0.1",
        ALIVE_FILE: str(root / "worker.alive"),
    }


def local(command: list[str], paths: dict[str, str]) -> list[str]:
    """The container's `command` with its paths swapped for local ones."""
    assert command[0] in ("wordvec", "python")
    head = wordvec_command() if command[0] == "wordvec" else [sys.executable]
    return head + [paths.get(arg, arg) for arg in command[1:]]


def stack_env(port: int | None = None) -> dict[str, str]:
    """This environment without WORDVEC_* settings, as compose leaves it when
    the shell sets none; with `port`, the server's port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORDVEC_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if port is not None:
        env["WORDVEC_PORT"] = str(port)
    return env


@pytest.fixture(scope="module")
def initialised(compose: dict[str, Any], stack_paths: dict[str, str]) -> str:
    """Run the init service's command; return its log (stderr)."""
    command = local(compose["services"]["init"]["command"], stack_paths)
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=stack_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_init_command_trains_and_activates_the_default_model(
    initialised: str, stack_paths: dict[str, str]
) -> None:
    registry = ModelRegistry(stack_paths["/data"])
    assert registry.active_version() == "default"
    assert [v.version for v in registry.versions()] == ["default"]
    assert "training 'default'" in initialised


def test_init_command_on_a_second_start_does_nothing(
    compose: dict[str, Any], stack_paths: dict[str, str], initialised: str
) -> None:
    before = ModelRegistry(stack_paths["/data"]).versions()
    command = local(compose["services"]["init"]["command"], stack_paths)
    result = subprocess.run(
        command, capture_output=True, text=True, env=stack_env(), check=True
    )
    assert "nothing to do" in result.stderr
    after = ModelRegistry(stack_paths["/data"]).versions()
    assert [v.path for v in after] == [v.path for v in before]


@pytest.fixture(scope="module")
def api_process(
    compose: dict[str, Any],
    stack_paths: dict[str, str],
    initialised: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, int]]:
    """The api service's command running; yields its URL and port."""
    port = free_port()
    log = tmp_path_factory.mktemp("stack-logs") / "api.log"
    command = local(compose["services"]["api"]["command"], stack_paths)
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=log_file, env=stack_env(port)
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, process, log)
        yield url, port
    finally:
        process.terminate()
        process.wait(timeout=15)


def run_health_check(compose: dict[str, Any], port: int) -> int:
    test = compose["services"]["api"]["healthcheck"]["test"]
    result = subprocess.run(
        [sys.executable, *test[2:]],
        env=stack_env(port),
        capture_output=True,
        check=False,
    )
    return result.returncode


def test_api_command_serves_the_model_and_passes_its_health_check(
    compose: dict[str, Any], api_process: tuple[str, int]
) -> None:
    url, port = api_process
    answer = httpx.get(f"{url}/similar", params={"word": "king"}, timeout=10).json()
    assert answer["model_version"] == "default"
    assert answer["neighbours"]
    assert run_health_check(compose, port) == 0
    assert httpx.get(f"{url}/", timeout=10).status_code == 200


def test_health_check_fails_when_nothing_answers(compose: dict[str, Any]) -> None:
    assert run_health_check(compose, free_port()) != 0


def test_worker_command_runs_against_the_data_directory(
    compose: dict[str, Any], stack_paths: dict[str, str], tmp_path: Path
) -> None:
    command = local(compose["services"]["worker"]["command"], stack_paths)
    log = tmp_path / "worker.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=log_file, env=stack_env()
        )
    alive = Path(stack_paths[ALIVE_FILE])
    try:
        deadline = time.monotonic() + 20
        while "taking jobs from" not in log.read_text() or not alive.exists():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert stack_paths["/data"] in log.read_text()
        assert run_worker_health_check(compose, stack_paths) == 0
    finally:
        # The service's stop signal: finish the current job, then exit.
        assert compose["services"]["worker"]["stop_signal"] == "SIGINT"
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    assert "Consumer exiting" in log.read_text()
    # A worker that stopped touching the file for over a minute is unhealthy.
    stale = time.time() - 120
    os.utime(alive, (stale, stale))
    assert run_worker_health_check(compose, stack_paths) != 0
    alive.unlink()
    assert run_worker_health_check(compose, stack_paths) != 0


def run_worker_health_check(compose: dict[str, Any], paths: dict[str, str]) -> int:
    test = compose["services"]["worker"]["healthcheck"]["test"]
    code = test[-1].replace(ALIVE_FILE, paths[ALIVE_FILE])
    result = subprocess.run(
        [sys.executable, *test[2:-1], code], capture_output=True, check=False
    )
    return result.returncode
