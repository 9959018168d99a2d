"""A throwaway PostgreSQL server for the tests: Debian's binaries, a cluster
in a temporary directory, listening on a free port of 127.0.0.1."""

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.app.conftest import free_port

USER = "wordvec"


def postgres_bin_dir() -> Path | None:
    """Return the newest installed PostgreSQL's bin directory, or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]),
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextmanager
def running_postgres(bin_dir: Path) -> Iterator[str]:
    """Start a fresh cluster and yield the URL of its `postgres` database;
    stop it and delete it when the block ends.

    initdb refuses to run as root, so as root the cluster belongs to the
    `postgres` system user (which Debian's package creates), or to `nobody`.
    """
    as_root = os.geteuid() == 0
    owner = _system_user("postgres") or "nobody"
    run_as = ["runuser", "-u", owner, "--"] if as_root else []
    root = Path(tempfile.mkdtemp(prefix="wordvec-pg-"))
    password = secrets.token_hex(8)
    (root / "password").write_text(password + "\n")
    if as_root:
        shutil.chown(root, owner)
        shutil.chown(root / "password", owner)
    data, port = root / "data", free_port()
    try:
        _run(
            *run_as,
            str(bin_dir / "initdb"),
            "-D", str(data),
            "-U", USER,
            f"--pwfile={root / 'password'}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "--encoding=UTF8",
            "--no-instructions",
        )  # fmt: skip
        # A test cluster: durability off for speed (the job store's own
        # settings are what the tests check, not the disk's).
        options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off"
        )
        pg_ctl = [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data)]
        _run(*pg_ctl, "-o", options, "-l", str(root / "server.log"), "-w", "start")
        try:
            yield f"postgresql://{USER}:{password}@127.0.0.1:{port}/postgres"
        finally:
            _run(*pg_ctl, "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def create_database(server_url: str) -> str:
    """Create an empty database on the server and return its URL."""
    name = f"test_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def _system_user(name: str) -> str | None:
    try:
        return pwd.getpwnam(name).pw_name
    except KeyError:
        return None


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")
