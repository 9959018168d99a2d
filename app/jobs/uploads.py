"""Fine-tune uploads: stream a request body to disk under a temporary name,
size-capped, then check it and make it durable under the job's name.

A body is one of: `multipart/form-data` with the text in the field `file`
(other fields carry the job's settings), or the text itself as the body
(`text/plain`, or gzip as `application/gzip` or `Content-Encoding: gzip`).
Gzip is recognised by its first bytes, whatever the request declared, and
is stored compressed; the corpus readers decompress it when training.

Order of events, so that "202 Accepted" means the text survives a crash:
stream to `uploads/.upload-<hex>.tmp` -> fsync -> check (UTF-8, not empty,
enough tokens) -> rename to `uploads/<job id>.txt[.gz]` -> fsync the
directory -> the caller commits the job row and answers. The writer holds an
flock on the file through all of it, so the cleanups at server start
(`remove_stale_temporaries`, `remove_orphan_uploads`) can tell a file whose
writer died from one still on its way. The worker's sweep deletes the
uploads of jobs finished longer ago than the retention setting
(`remove_expired_uploads`).
"""

import codecs
import errno
import fcntl
import gzip
import hashlib
import logging
import os
import re
import secrets
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import anyio
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.core.errors import ApiError
from app.jobs.store import JOB_ID_PATTERN, JobStore
from training.durable import fsync_directory
from training.tokenizer import iter_tokens

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
FILE_FIELD = "file"
# Form fields other than the file are short settings; anything longer is a mistake.
MAX_FIELD_BYTES = 1024
MAX_FIELDS = 16
READ_BLOCK = 1 << 20
# What store_upload names a file; nothing else in uploads/ is ours to remove.
_STORED_NAME = re.compile(rf"{JOB_ID_PATTERN}\.txt(\.gz)?")
SECONDS_PER_DAY = 86_400.0
# Write errors that mean "no room for the upload", not a broken server.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class UploadTooLarge(ApiError):
    status = 413
    type = "/problems/upload-too-large"
    title = "Upload too large"


class InvalidUpload(ApiError):
    status = 422
    type = "/problems/invalid-upload"
    title = "Invalid upload"


class UploadStorageFull(ApiError):
    status = 507
    type = "/problems/insufficient-storage"
    title = "Insufficient storage"


class UnsupportedUpload(ApiError):
    status = 415
    type = "/problems/unsupported-media-type"
    title = "Unsupported media type"


@dataclass
class ReceivedUpload:
    """An upload on disk under its temporary name, not yet checked.

    `lock_fd` holds an exclusive flock on the file, under its temporary
    name and after `store_upload` renamed it, until `discard` or `release`:
    it tells `remove_stale_temporaries` and `remove_orphan_uploads` that its
    writer lives.
    """

    path: Path
    size: int
    sha256: str
    compressed: bool
    lock_fd: int
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1


@dataclass
class CheckedUpload:
    """What the job row records about an accepted upload."""

    path: Path
    size: int
    sha256: str
    compressed: bool
    text_bytes: int
    tokens: int

    def describe(self) -> dict[str, Any]:
        return {
            "file": self.path.name,
            "bytes": self.size,
            "sha256": self.sha256,
            "compressed": self.compressed,
            "text_bytes": self.text_bytes,
            "tokens": self.tokens,
        }


class _Sink:
    """Writes the upload's bytes to the temporary file, hashing and counting."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.size = 0
        self.hash = hashlib.sha256()
        self.head = b""

    def write(self, data: bytes) -> None:
        if len(self.head) < 2:
            self.head += data[: 2 - len(self.head)]
        self.f.write(data)
        self.hash.update(data)
        self.size += len(data)


async def receive_upload(
    body: AsyncIterator[bytes],
    headers: dict[str, str],
    uploads_dir: Path,
    max_bytes: int,
) -> ReceivedUpload:
    """Stream the request body to a temporary file in `uploads_dir`.

    `headers` are the request's, lower-cased names. Raises UploadTooLarge as
    soon as the body passes `max_bytes` (before reading the rest when
    Content-Length says so), UnsupportedUpload for other media types and
    InvalidUpload for a multipart body without a `file` field.
    """
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(int(declared), max_bytes)
    content_type, options = parse_options_header(headers.get("content-type", ""))
    media = content_type.decode("latin-1").lower()
    uploads_dir.mkdir(parents=True, exist_ok=True)
    path = uploads_dir / f".upload-{secrets.token_hex(8)}.tmp"
    lock_fd = _create_locked(path)
    try:
        with open(path, "r+b") as f:
            sink = _Sink(f)
            if media == "multipart/form-data":
                fields = await _receive_multipart(body, options, sink, max_bytes)
            elif media in ("", "text/plain", "application/octet-stream") or media in (
                "application/gzip",
                "application/x-gzip",
            ):
                fields = {}
                received = 0
                async for chunk in body:
                    received += len(chunk)
                    if received > max_bytes:
                        raise _too_large(received, max_bytes, partial=True)
                    sink.write(chunk)
            else:
                raise UnsupportedUpload(
                    f"a fine-tune upload is text/plain, application/gzip or "
                    f"multipart/form-data with the text in the field '{FILE_FIELD}'; "
                    f"got {media}"
                )
            f.flush()
            # A big upload can take a while to reach the disk; the event loop
            # of this server worker goes on serving queries meanwhile.
            await anyio.to_thread.run_sync(os.fsync, f.fileno())
    except BaseException as exc:
        path.unlink(missing_ok=True)
        os.close(lock_fd)
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            logger.error("no room for an upload in %s: %s", uploads_dir, exc)
            raise UploadStorageFull(
                "the server has no room to store the upload right now; nothing "
                "was kept, so retry later or send a smaller (gzip) text"
            ) from exc
        raise
    compressed = sink.head == GZIP_MAGIC or "gzip" in headers.get(
        "content-encoding", ""
    )
    return ReceivedUpload(
        path, sink.size, sink.hash.hexdigest(), compressed, lock_fd, fields
    )


def _create_locked(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


async def _receive_multipart(
    body: AsyncIterator[bytes],
    options: dict[bytes, bytes],
    sink: _Sink,
    max_bytes: int,
) -> dict[str, str]:
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidUpload(
            "the multipart body has no boundary in its Content-Type; let your HTTP "
            "client build the multipart request (e.g. curl -F file=@text.txt)"
        )
    fields: dict[str, str] = {}
    state: dict[str, Any] = {"header": b"", "value": b"", "disposition": b""}
    current: dict[str, Any] = {"name": None, "value": bytearray(), "file": False}
    seen_file = False

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        if state["header"].lower() == b"content-disposition":
            state["disposition"] = state["value"]
        state["header"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        nonlocal seen_file
        _, params = parse_options_header(state["disposition"])
        name = params.get(b"name", b"").decode("utf-8", "replace")
        current.update(name=name, value=bytearray(), file=name == FILE_FIELD)
        if current["file"]:
            if seen_file:
                raise InvalidUpload(f"send one '{FILE_FIELD}' field per upload")
            seen_file = True
        elif len(fields) >= MAX_FIELDS:
            raise InvalidUpload(f"at most {MAX_FIELDS} form fields are allowed")
        state["disposition"] = b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if current["file"]:
            sink.write(data[start:end])
            return
        current["value"] += data[start:end]
        if len(current["value"]) > MAX_FIELD_BYTES:
            raise InvalidUpload(
                f"form field '{current['name']}' is longer than {MAX_FIELD_BYTES} "
                f"bytes; only '{FILE_FIELD}' may carry the text"
            )

    def on_part_end() -> None:
        if not current["file"] and current["name"]:
            fields[current["name"]] = bytes(current["value"]).decode("utf-8", "replace")

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > max_bytes:
                raise _too_large(received, max_bytes, partial=True)
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise InvalidUpload(
            f"the multipart body is malformed ({exc}); let your HTTP client build "
            "the multipart request (e.g. curl -F file=@text.txt)"
        ) from exc
    if not seen_file:
        raise InvalidUpload(
            f"the multipart body has no field named '{FILE_FIELD}'; send the text as "
            f"-F {FILE_FIELD}=@corpus.txt"
        )
    return fields


def check_upload(
    upload: ReceivedUpload, *, min_tokens: int, max_text_bytes: int
) -> tuple[int, int]:
    """Check that the upload is UTF-8 text with at least `min_tokens` tokens
    and at most `max_text_bytes` once decompressed; return (text bytes, tokens).

    Raises InvalidUpload naming the problem. Reads the file once, in blocks.
    """
    if upload.size == 0:
        raise InvalidUpload("the upload is empty; send a UTF-8 text file")
    decoder = codecs.getincrementaldecoder("utf-8")()
    tokens = 0
    text_bytes = 0
    carry = ""
    try:
        with _open_text_bytes(upload) as stream:
            while block := stream.read(READ_BLOCK):
                text_bytes += len(block)
                if text_bytes > max_text_bytes:
                    raise InvalidUpload(
                        f"the upload decompresses to more than {max_text_bytes:,} "
                        "bytes, the server's limit; split it into several fine-tunes"
                    )
                if b"\0" in block:
                    raise InvalidUpload(
                        "the upload holds NUL bytes, so it is not text; send a UTF-8 "
                        "text file (plain or gzip)"
                    )
                text = carry + decoder.decode(block)
                # Count up to the last whitespace; the rest may be half a word.
                # (A run without whitespace is carried for a few blocks at most,
                # so memory stays bounded; past that, its count is approximate.)
                cut = max(text.rfind(" "), text.rfind("\n"))
                if cut >= 0:
                    counted, carry = text[:cut], text[cut:]
                elif len(text) < 4 * READ_BLOCK:
                    counted, carry = "", text
                else:
                    counted, carry = text, ""
                tokens += sum(1 for _ in iter_tokens(counted))
            carry += decoder.decode(b"", final=True)
            tokens += sum(1 for _ in iter_tokens(carry))
    except UnicodeDecodeError as exc:
        raise InvalidUpload(
            f"the upload is not UTF-8 text (byte {text_bytes - len(block) + exc.start} "
            "cannot be decoded); convert it, e.g. iconv -t UTF-8"
        ) from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidUpload(
            f"the gzip upload is truncated or corrupt ({exc}); compress it again"
        ) from exc
    if tokens < min_tokens:
        raise InvalidUpload(
            f"the upload holds {tokens} tokens; a fine-tune needs at least "
            f"{min_tokens} to learn anything, so send more text"
        )
    return text_bytes, tokens


def _open_text_bytes(upload: ReceivedUpload) -> IO[bytes]:
    if upload.compressed:
        return cast(IO[bytes], gzip.open(upload.path, "rb"))
    return open(upload.path, "rb")


def store_upload(
    upload: ReceivedUpload, name: str, text_bytes: int, tokens: int
) -> CheckedUpload:
    """Rename the checked upload to `uploads/<name>.txt[.gz]` and fsync the
    directory, so it outlives a crash from here on. The file stays locked
    until `upload.discard()` (or `release()`)."""
    suffix = ".txt.gz" if upload.compressed else ".txt"
    final = upload.path.parent / f"{name}{suffix}"
    os.replace(upload.path, final)
    # The lock stays until the caller discards `upload`, after the job row is
    # committed (or the file removed): see remove_orphan_uploads.
    fsync_directory(final.parent)
    return CheckedUpload(
        final, upload.size, upload.sha256, upload.compressed, text_bytes, tokens
    )


def remove_stale_temporaries(uploads_dir: Path) -> int:
    """Delete `.upload-*.tmp` files whose writer died (no process holds their
    lock) and return how many; uploads still being received are left alone."""
    removed = 0
    for path in uploads_dir.glob(".upload-*.tmp"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live request is writing it
        finally:
            os.close(fd)
        path.unlink(missing_ok=True)
        removed += 1
    if removed:
        logger.info("removed %d unfinished upload(s) from %s", removed, uploads_dir)
    return removed


def remove_orphan_uploads(uploads_dir: Path, store: JobStore) -> int:
    """Delete stored uploads that no job row refers to and return how many.

    Such a file is left by a crash between the rename of an upload and the
    commit of its job. A file whose writer still holds its lock is on its way
    to a row and is left alone; once the lock is ours, the writer has either
    committed or died, so the table tells which.
    """
    # Rows are never deleted, so a file named in this snapshot stays named;
    # only the others need a fresh look once their lock is ours.
    owners = store.upload_owners()
    removed = 0
    for path in uploads_dir.iterdir():
        if not _STORED_NAME.fullmatch(path.name) or not path.is_file():
            continue
        if path.name in owners:
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not _referenced(store, path.name):
                path.unlink(missing_ok=True)
                removed += 1
                logger.info("removed %s: no job refers to it", path)
        except BlockingIOError:
            continue  # a live request is about to commit its job
        finally:
            os.close(fd)
    return removed


def _referenced(store: JobStore, name: str) -> bool:
    job_id = name.split(".", 1)[0]
    try:
        job = store.get(job_id)
    except KeyError:
        return False
    return bool(job.upload.get("file") == name)


def remove_expired_uploads(
    uploads_dir: Path, store: JobStore, retention_days: float, now: float | None = None
) -> list[str]:
    """Delete the uploads of jobs that finished (succeeded, failed or were
    cancelled) more than `retention_days` ago and return their job ids.

    0 days keeps every upload. Queued and running jobs keep theirs whatever
    their age, and so do files no job names (`remove_orphan_uploads` judges
    those). The job row stays, with the upload's size and SHA-256, and its
    result notes `upload_deleted_at` (seconds since the epoch).
    """
    if retention_days <= 0 or not uploads_dir.is_dir():
        return []
    now = time.time() if now is None else now
    cutoff = now - retention_days * SECONDS_PER_DAY
    # A finished job stays finished, so one snapshot serves every file.
    owners = store.upload_owners()
    removed = []
    for path in uploads_dir.iterdir():
        owner = owners.get(path.name)
        if not _STORED_NAME.fullmatch(path.name) or owner is None:
            continue
        finished = owner.finished_at
        if not owner.terminal or finished is None or finished >= cutoff:
            continue
        path.unlink(missing_ok=True)
        # Read in full only now, for the result the note is added to.
        job = store.get(owner.job_id)
        store.update_result(job.id, {**job.result, "upload_deleted_at": now})
        age_days = (now - finished) / SECONDS_PER_DAY
        logger.info(
            "deleted upload %s of job %s (%s %.1f days ago; retention %g days)",
            path.name,
            job.id,
            job.status,
            age_days,
            retention_days,
        )
        removed.append(job.id)
    return removed


def _too_large(size: int, limit: int, partial: bool = False) -> UploadTooLarge:
    told = f"more than {limit:,}" if partial else f"{size:,}"
    return UploadTooLarge(
        f"the upload is {told} bytes and the limit is {limit:,} "
        "(WORDVEC_MAX_UPLOAD_BYTES); compress it with gzip or split it",
        limit=limit,
    )
