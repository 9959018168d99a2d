"""Writing files that must survive a crash: a temporary sibling name, fsync,
then a rename, so readers see either the old file or the whole new one."""

import ctypes
import errno
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


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# What renameat2 answers where the call or the flag is not supported.
_NO_EXCHANGE = frozenset({errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP})


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap the directory entries `a` and `b` in one atomic step and return
    True, or return False (changing nothing) where the C library, kernel or
    filesystem cannot (renameat2 with RENAME_EXCHANGE: Linux 3.15+, glibc
    2.28+). Raises OSError for any other failure."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint
    ]  # fmt: skip
    renameat2.restype = ctypes.c_int
    if (
        renameat2(
            _AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE
        )
        == 0
    ):
        return True
    code = ctypes.get_errno()
    if code in _NO_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def replace_directory(new: Path, target: Path) -> Path | None:
    """Put directory `new` at `target` and return where the old `target` now
    is (for the caller to delete), or None when there was none.

    Where the system can (see `exchange_paths`), the two trade places in one
    step, so a reader always finds a whole `target`. Elsewhere the old one is
    renamed aside first (to `.<name>.old-<hex>`, put back if the second
    rename fails): between the two renames `target` does not exist, and a
    crash there leaves the old one under that name. Fsyncing the parent is
    left to the caller.
    """
    if target.exists() and exchange_paths(new, target):
        return new
    old = None
    if target.exists():
        old = temporary_sibling(target, "old")
        os.rename(target, old)
    try:
        os.rename(new, target)
    except OSError:
        if old is not None:
            os.rename(old, target)
        raise
    return old
