"""The `wordvec` command line: bad input is one error line and exit status 2,
never a traceback; each subcommand loads only its own modules yet lists every
flag; WORDVEC_LOG_LEVEL sets the log level when --log-level is not given."""

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from app.cli import COMMANDS, build_parser
from tests.app.conftest import stop_process, wordvec_command
from tests.conftest import write_tiny_corpus
from training.bundle import write_bundle
from training.vocabulary import Vocabulary

# A subprocess that has not finished by then has hung.
DEADLINE_SECONDS = 60


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of good and bad inputs: corpora, a bundle, a vector file."""
    root = tmp_path_factory.mktemp("cli")
    write_tiny_corpus(root / "tiny.txt")
    (root / "empty.txt").write_bytes(b"")
    (root / "binary.dat").write_bytes(bytes(range(256)) * 64)
    (root / "few.txt").write_text("a b c a b c\n", encoding="utf-8")
    (root / "vectors.txt").write_text("2 3\nking 1 2 3\nqueen 3 2 1\n")
    (root / "existing").mkdir()
    words = ["the", "king", "queen"]
    write_bundle(
        root / "bundle",
        vocabulary=Vocabulary(words, np.array([9, 5, 4], dtype=np.int64)),
        vectors=np.eye(3, 4, dtype=np.float32),
        manifest={"source": "trained"},
    )
    return root


def run_wordvec(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WORDVEC_")}
    return subprocess.run(
        [*wordvec_command(), *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=DEADLINE_SECONDS,
    )


TRAIN = ["train", "--no-progress", "--output", "{d}/out"]
EXPORT = ["export", "{d}/bundle", "--format", "word2vec-text", "--output"]
IMPORT = ["import", "{d}/vectors.txt", "--format", "word2vec-text", "--output"]
BAD_INPUTS = {
    "empty corpus": ([*TRAIN, "{d}/empty.txt"], "holds no words"),
    "binary corpus": ([*TRAIN, "{d}/binary.dat"], "looks binary"),
    "missing corpus": ([*TRAIN, "{d}/nowhere.txt"], "does not exist"),
    "device as corpus": ([*TRAIN, "/dev/null"], "not a regular file"),
    "dim 0": ([*TRAIN, "{d}/tiny.txt", "--dim", "0"], "--dim must be at least 1"),
    "window 0": (
        [*TRAIN, "{d}/tiny.txt", "--window", "0"],
        "--window must be at least 1",
    ),
    "negative above vocabulary": (
        [*TRAIN, "{d}/tiny.txt", "--negative", "500", "--min-count", "1"],
        "smaller than the vocabulary",
    ),
    "fewer distinct words than min_count": (
        [*TRAIN, "{d}/few.txt"],
        "lower --min-count",
    ),
    "dim beyond memory": (
        [*TRAIN, "{d}/tiny.txt", "--dim", "100000000000"],
        "of memory but",
    ),
    "train output under a file": (
        ["train", "{d}/tiny.txt", "--output", "{d}/tiny.txt/model"],
        "is a file, not a directory",
    ),
    "train output exists": (
        ["train", "{d}/tiny.txt", "--output", "{d}/existing"],
        "already exists; choose another path",
    ),
    "import output under a file": (
        [*IMPORT, "{d}/tiny.txt/model"],
        "is a file, not a directory",
    ),
    "export to a missing directory": (
        [*EXPORT, "{d}/nodir/v.txt"],
        "does not exist",
    ),
    "export onto a directory": (
        [*EXPORT, "{d}/existing"],
        "is a directory",
    ),
    "evaluate a file": (["evaluate", "{d}/tiny.txt"], "not a bundle directory"),
    "restrict vocabulary 0": (
        ["evaluate", "{d}/bundle", "--restrict-vocab", "0"],
        "--restrict-vocab must be at least 1",
    ),
}


@pytest.mark.parametrize(
    ("arguments", "message"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys()
)
def test_bad_input_is_one_error_line_and_exit_status_2(
    inputs: Path, arguments: list[str], message: str
) -> None:
    args = [a.replace("{d}", str(inputs)) for a in arguments]
    done = run_wordvec("--log-level", "WARNING", *args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("wordvec: error: ") and message in line
    assert not (inputs / "out").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_each_subcommand_alone_lists_every_flag_of_the_full_parser(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    helps = []
    for parser in (build_parser(only=command), build_parser()):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        helps.append(capsys.readouterr().out)
    assert helps[0] == helps[1]
    assert f"usage: wordvec {command}" in helps[0]


@pytest.mark.parametrize(
    ("env_level", "flag", "logs_info"),
    [("ERROR", [], False), ("ERROR", ["--log-level", "INFO"], True)],
    ids=["variable", "flag-over-variable"],
)
def test_log_level_variable_applies_unless_the_flag_is_given(
    inputs: Path, tmp_path: Path, env_level: str, flag: list[str], logs_info: bool
) -> None:
    done = run_wordvec(
        *flag,
        "train",
        str(inputs / "tiny.txt"),
        "--output",
        str(tmp_path / "m"),
        "--min-count",
        "2",
        "--epochs",
        "1",
        "--no-progress",
        "--no-evaluate",
        env={"WORDVEC_LOG_LEVEL": env_level},
    )
    assert done.returncode == 0, done.stderr
    assert (" INFO training." in done.stderr) is logs_info
    if not logs_info:
        assert done.stderr == ""


def test_an_invalid_log_level_variable_is_one_error_line(inputs: Path) -> None:
    done = run_wordvec(
        "evaluate", str(inputs / "bundle"), env={"WORDVEC_LOG_LEVEL": "loud"}
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "wordvec: error: invalid setting: WORDVEC_LOG_LEVEL='loud'; use one of "
        "DEBUG, INFO, WARNING, ERROR (upper case)"
    ]


def test_worker_is_quiet_with_log_level_error_in_the_environment(
    tmp_path: Path,
) -> None:
    alive = tmp_path / "alive"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORDVEC_")}
    env["WORDVEC_LOG_LEVEL"] = "ERROR"
    command = [*wordvec_command(), "worker", "--data-dir", str(tmp_path / "data")]
    process = subprocess.Popen(
        [*command, "--alive-file", str(alive)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        # The alive file appears after the worker's first sweep, once it
        # has logged (or not) that it is taking jobs.
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not alive.exists() and process.poll() is None:
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.1)
    finally:
        # SIGTERM, not SIGINT: before the consumer takes over the signals,
        # SIGINT would end the command with a (correct) "interrupted" line.
        stop_process(process, signal.SIGTERM)
    _, stderr = process.communicate()
    assert alive.exists(), stderr.decode()
    assert stderr.decode() == ""
