"""Dockerfile, .dockerignore, docker-compose.yml with its Redis override, and
the Makefile's torch install, checked without a Docker engine: parsed and
compared with the project, and the exact commands the containers run, run
here as processes against a temporary data directory."""

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
REDIS_OVERRIDE = ROOT / "compose.redis.yaml"
REDIS_QUEUE_URL = "redis://redis:6379/0"
SUBCOMMANDS = {"init": "init", "api": "serve", "worker": "worker"}
WORDVEC_SERVICES = ("init", "api", "worker")
# Where the worker service notes that it is alive, inside its container.
ALIVE_FILE = "/tmp/wordvec-worker.alive"
DATA_VOLUME = "wordvec-data:/data"
SECRET_PATH = "/run/secrets/api_key"
STACK_API_KEY = "stack-test-key"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def redis_override() -> dict[str, Any]:
    return yaml.safe_load(REDIS_OVERRIDE.read_text())


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
    assert set(compose["volumes"]) == {"wordvec-data"}


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


# Settings a service's command fixes, so compose must not pass them: the
# data directory, and the API's listening address and port (the port is the
# one published and health-checked; WORDVEC_PUBLISHED_PORT moves it).
FIXED_BY_COMMAND = {
    "api": {"bundle_path", "data_dir", "host", "port"},
    "worker": {"data_dir"},
}
# Read by the job worker's processes only.
WORKER_MODULES = ("app/jobs/worker.py", "app/jobs/runner.py")
WORKER_ONLY = {
    "job_time_limit",
    "job_heartbeat_interval",
    "job_lease",
    "upload_retention_days",
}


def settings_in(service: dict[str, Any]) -> set[str]:
    """The Settings fields a compose service's environment passes."""
    prefix = "WORDVEC_"
    return {key[len(prefix) :].lower() for key in service["environment"]}


def settings_read_by(paths: list[Path]) -> set[str]:
    """Settings fields that the source files at `paths` read as `settings.X`."""
    found: set[str] = set()
    for path in paths:
        found |= set(re.findall(r"\bsettings\.([a-z_]+)\b", path.read_text()))
    return found & set(Settings.model_fields)


def test_every_setting_is_passed_to_the_services_that_read_it(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    fields = set(Settings.model_fields)
    worker_modules = [ROOT / name for name in WORKER_MODULES]
    api_modules = [p for p in (ROOT / "app").rglob("*.py") if p not in worker_modules]
    # A new setting fails here until the compose file passes it (or this
    # test says why it does not).
    assert fields - settings_in(services["api"]) == (
        FIXED_BY_COMMAND["api"] | WORKER_ONLY
    )
    assert not settings_read_by(api_modules) & WORKER_ONLY
    worker_reads = settings_read_by(worker_modules) - FIXED_BY_COMMAND["worker"]
    assert worker_reads | WORKER_ONLY <= settings_in(services["worker"])
    assert "queue_url" in settings_in(services["worker"])
    # The worker never gets the API key.
    assert not {"api_key", "api_key_file"} & settings_in(services["worker"])


def test_redis_override_adds_redis_and_switches_the_queue_to_it(
    compose: dict[str, Any], redis_override: dict[str, Any]
) -> None:
    services = redis_override["services"]
    redis = services["redis"]
    # Always on with the file: a service that api and worker depend on
    # cannot sit behind a profile that is off.
    assert "profiles" not in redis
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert redis["volumes"] == ["redis-data:/data"]
    assert "redis-data" in redis_override["volumes"]
    for name in ("api", "worker"):
        assert services[name]["environment"] == {"WORDVEC_QUEUE_URL": REDIS_QUEUE_URL}
        condition = services[name]["depends_on"]["redis"]["condition"]
        assert condition == "service_healthy"
        # Passed through in the base file, so the override's value lands.
        assert "WORDVEC_QUEUE_URL" in compose["services"][name]["environment"]
    assert set(services) == {"api", "worker", "redis"}


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


def compose_config(
    tmp_path: Path, files: list[Path], use_compose_file_variable: bool = False
) -> dict[str, Any]:
    """The merged configuration `compose config` prints for `files`, named
    with -f flags or, as a .env line would, with COMPOSE_FILE."""
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    secret = tmp_path / "api_key"
    secret.write_text("a-test-key\n")
    env = {**os.environ, "WORDVEC_API_KEY_SECRET": str(secret)}
    for name in ("COMPOSE_PROFILES", "COMPOSE_FILE", "WORDVEC_QUEUE_URL"):
        env.pop(name, None)
    if use_compose_file_variable:
        env["COMPOSE_FILE"] = ":".join(str(f) for f in files)
        file_flags = []
    else:
        file_flags = [arg for f in files for arg in ("-f", str(f))]
    # An empty .env, so that a developer's own .env cannot change the result.
    env_file = tmp_path / "empty.env"
    env_file.touch()
    result = subprocess.run(
        [*command, *file_flags, "--env-file", str(env_file), "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = yaml.safe_load(result.stdout)
    assert resolved["secrets"]["api_key"]["file"] == str(secret)
    return resolved


def test_compose_config_validates_and_keeps_the_sqlite_queue(tmp_path: Path) -> None:
    services = compose_config(tmp_path, [COMPOSE_FILE])["services"]
    assert set(services) == set(WORDVEC_SERVICES)
    for name in ("api", "worker"):
        # Unset in the shell: left out of the container, so SQLite is used.
        assert services[name]["environment"].get("WORDVEC_QUEUE_URL") is None
        assert set(services[name]["depends_on"]) == {"init"}


@pytest.mark.parametrize("use_compose_file_variable", [False, True])
def test_compose_config_with_the_redis_override_uses_redis(
    tmp_path: Path, use_compose_file_variable: bool
) -> None:
    files = [COMPOSE_FILE, REDIS_OVERRIDE]
    resolved = compose_config(tmp_path, files, use_compose_file_variable)
    services = resolved["services"]
    assert set(services) == {*WORDVEC_SERVICES, "redis"}
    for name in ("api", "worker"):
        service = services[name]
        assert service["environment"]["WORDVEC_QUEUE_URL"] == REDIS_QUEUE_URL
        # (Compose v2 adds keys of its own, such as `required`.)
        conditions = {k: v["condition"] for k, v in service["depends_on"].items()}
        assert conditions == {
            "init": "service_completed_successfully",
            "redis": "service_healthy",
        }
        # The rest of the service is the base file's.
        assert service["command"][:2] == ["wordvec", SUBCOMMANDS[name]]
    assert "WORDVEC_API_KEY_FILE" in services["api"]["environment"]
    assert set(resolved["volumes"]) == {"wordvec-data", "redis-data"}


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


def build_stage(dockerfile: list[str]) -> list[str]:
    starts = [i for i, line in enumerate(dockerfile) if line.upper().startswith("FROM")]
    return dockerfile[starts[0] : starts[1]]


def run_kernel_check(
    script: str, env_vars: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run the image's kernel check with this environment's Python as `python`."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        ["sh", "-c", script],
        env={**os.environ, "PATH": path, **env_vars},
        capture_output=True,
        text=True,
        check=False,
    )


def test_image_build_fails_without_the_native_kernel_unless_allowed(
    dockerfile: list[str], tmp_path: Path
) -> None:
    from training.kernels import native_available

    build = build_stage(dockerfile)
    (check,) = [line for line in build if "native_available()" in line]
    install = next(i for i, line in enumerate(build) if '".[redis,postgres]"' in line)
    assert install < build.index("ARG ALLOW_TORCH_FALLBACK=0") < build.index(check)
    script = check.removeprefix("RUN ")
    # Docker passes the ARG to RUN as an environment variable.
    built = run_kernel_check(script, {"ALLOW_TORCH_FALLBACK": "0"})
    assert (built.returncode == 0) == native_available(), built.stderr
    # A copy of the package whose kernel cannot be imported, as after a
    # compile that failed. (A module that raises, since the editable install
    # here would otherwise find the checkout's compiled one.)
    shutil.copytree(
        ROOT / "training",
        tmp_path / "training",
        ignore=shutil.ignore_patterns("*.so", "__pycache__"),
    )
    (tmp_path / "training" / "_native.py").write_text("raise ImportError\n")
    without = {"PYTHONPATH": str(tmp_path), "ALLOW_TORCH_FALLBACK": "0"}
    failed = run_kernel_check(script, without)
    assert failed.returncode != 0
    assert "NOT built" in failed.stdout
    assert "--build-arg ALLOW_TORCH_FALLBACK=1" in " ".join(failed.stderr.split())
    allowed = run_kernel_check(script, {**without, "ALLOW_TORCH_FALLBACK": "1"})
    assert allowed.returncode == 0, allowed.stderr
    assert "NOT built" in allowed.stdout


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


# ---- Makefile ------------------------------------------------------------


def make_dry_run(*variables: str) -> list[str]:
    """The commands `make install` would run (-n: none is run), one per line."""
    result = subprocess.run(
        ["make", "-n", "-B", "install", *variables],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.splitlines()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_takes_torch_from_torch_index_when_given() -> None:
    index = "https://download.pytorch.org/whl/cpu"
    (line,) = [c for c in make_dry_run(f"TORCH_INDEX={index}") if "torch==" in c]
    assert line.split()[-3:] == ["torch==2.13.0", "--index-url", index]
    # Empty by default: pip's own configuration decides, as before.
    (line,) = [c for c in make_dry_run() if "torch==" in c]
    assert line.split()[-1] == "torch==2.13.0"


# ---- the containers' commands, run here ---------------------------------


@pytest.fixture(scope="module")
def stack_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What the container paths and address stand for outside Docker."""
    root = tmp_path_factory.mktemp("stack")
    corpus = root / "corpus"
    corpus.mkdir()
    write_tiny_corpus(corpus / "tiny.txt", num_sentences=600)
    # The api_key secret, as compose mounts it.
    secret = root / "api_key"
    secret.write_text(f"{STACK_API_KEY}\n")
    return {
        "/data": str(root / "data"),
        "/app/data/corpus": str(corpus),
        "0.0.0.0": "127.0.0.1",
        ALIVE_FILE: str(root / "worker.alive"),
        SECRET_PATH: str(secret),
    }


def local(command: list[str], paths: dict[str, str]) -> list[str]:
    """The container's `command` with its paths swapped for local ones."""
    assert command[0] in ("wordvec", "python")
    head = wordvec_command() if command[0] == "wordvec" else [sys.executable]
    return head + [paths.get(arg, arg) for arg in command[1:]]


def stack_env(
    port: int | None = None,
    service: dict[str, Any] | None = None,
    paths: dict[str, str] | None = None,
) -> dict[str, str]:
    """This environment without WORDVEC_* settings, as compose leaves it when
    the shell sets none, plus the values `service` fixes (paths swapped by
    `paths`); with `port`, the server's port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORDVEC_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    for key, value in (service or {}).get("environment", {}).items():
        if value is not None:
            env[key] = (paths or {}).get(value, value)
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
    # Progress while it trains: one line per epoch.
    assert re.search(r"epoch 1/\d+: loss \d", initialised), initialised


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
    api = compose["services"]["api"]
    command = local(api["command"], stack_paths)
    env = stack_env(port, api, stack_paths)
    assert env["WORDVEC_API_KEY_FILE"] == stack_paths[SECRET_PATH]
    with open(log, "wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=log_file, env=env)
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


def test_api_command_guards_changes_with_the_key_from_the_secret_file(
    api_process: tuple[str, int],
) -> None:
    url, _ = api_process
    activate = f"{url}/models/default/activate"
    refused = httpx.post(activate, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    wrong = {"Authorization": "Bearer not-the-key"}
    assert httpx.post(activate, headers=wrong, timeout=10).status_code == 401
    key = {"Authorization": f"Bearer {STACK_API_KEY}"}
    accepted = httpx.post(activate, headers=key, timeout=10)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["version"] == "default"


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
