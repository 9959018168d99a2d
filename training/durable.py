"""Writing files that must survive a crash: a temporary sibling name, fsync,
then a rename, so readers see either the old file or the whole new one."""

import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def temporary_sibling(path: Path, kind: str = "tmp") -> Path:
    """Return an unused-looking hidden name next to `path`: `.<name>.<kind>-<hex>`."""
    return path.parent / f".{path.name}.{kind}-{secrets.token_hex(4)}"


@contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """Yield a binary file that replaces `path` only when the block succeeds.

    The data goes to a temporary sibling, is fsynced and renamed over
    `path`; if the block raises, the temporary file is removed and `path`
    is left as it was.
    """
    temporary = temporary_sibling(path)
    try:
        with open(temporary, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(path: Path) -> None:
    """Flush the directory entry of `path` so a rename in it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, value: dict[str, Any]) -> None:
    """Write `value` as indented UTF-8 JSON to `path` and fsync it.

    Raises TypeError or ValueError for values JSON cannot hold, NaN and
    infinity included (they are not JSON, and one in a score is a bug).
    """
    text = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of the file at `path`, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
