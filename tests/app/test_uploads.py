"""Receiving and checking fine-tune uploads, on real files."""

import asyncio
import gzip
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.jobs.store import JobStore
from app.jobs.uploads import (
    InvalidUpload,
    ReceivedUpload,
    UnsupportedUpload,
    UploadTooLarge,
    check_upload,
    receive_upload,
    remove_expired_uploads,
    remove_orphan_uploads,
    remove_stale_temporaries,
    store_upload,
)

TEXT = ("the king and the queen of the land " * 200).encode()


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def multipart(fields: dict[str, str], text: bytes) -> tuple[bytes, str]:
    """Return a multipart body and its Content-Type, built by httpx."""
    request = httpx.Request(
        "POST", "http://x/", data=fields, files={"file": ("a.txt", text)}
    )
    return request.read(), request.headers["content-type"]


def receive(
    body: bytes, content_type: str, directory: Path, limit: int = 1 << 20, size: int = 7
) -> ReceivedUpload:
    headers = {"content-type": content_type}
    return asyncio.run(receive_upload(chunks(body, size), headers, directory, limit))


@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
def test_multipart_file_and_fields_survive_any_chunking(
    tmp_path: Path, chunk_size: int
) -> None:
    body, content_type = multipart({"epochs": "3", "activate": "false"}, TEXT)
    upload = receive(body, content_type, tmp_path, size=chunk_size)
    assert upload.path.read_bytes() == TEXT
    assert upload.fields == {"epochs": "3", "activate": "false"}
    assert upload.size == len(TEXT) and not upload.compressed


def test_plain_body_is_stored_and_gzip_is_recognised_by_its_bytes(
    tmp_path: Path,
) -> None:
    plain = receive(TEXT, "text/plain", tmp_path)
    assert plain.path.read_bytes() == TEXT and not plain.compressed
    packed = receive(gzip.compress(TEXT), "application/octet-stream", tmp_path)
    assert packed.compressed
    assert check_upload(packed, min_tokens=10, max_text_bytes=1 << 20) == (
        len(TEXT),
        1600,
    )


def test_body_past_the_limit_is_refused_and_removed(tmp_path: Path) -> None:
    with pytest.raises(UploadTooLarge):
        receive(TEXT, "text/plain", tmp_path, limit=1000)
    assert list(tmp_path.iterdir()) == []


def test_declared_length_past_the_limit_is_refused_before_reading(
    tmp_path: Path,
) -> None:
    async def never() -> AsyncIterator[bytes]:
        raise AssertionError("the body was read")
        yield b""

    headers = {"content-type": "text/plain", "content-length": "5000"}
    with pytest.raises(UploadTooLarge):
        asyncio.run(receive_upload(never(), headers, tmp_path, 1000))


def test_other_media_types_and_missing_file_field_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedUpload):
        receive(b"{}", "application/json", tmp_path)
    request = httpx.Request(
        "POST", "http://x/", data={"epochs": "3"}, files={"other": ("a", b"x")}
    )
    with pytest.raises(InvalidUpload, match="no field named 'file'"):
        receive(request.read(), request.headers["content-type"], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_malformed_multipart_is_refused_and_leaves_no_file(tmp_path: Path) -> None:
    # Found by schemathesis: a carriage return inside a part's header line.
    boundary = "c7314c0abe4d64c94e141c4bd2819f18"
    body = f"--{boundary}\r\n-3.30e+73--{boundary}--\r\n".encode()
    with pytest.raises(InvalidUpload, match="malformed"):
        receive(body, f"multipart/form-data; boundary={boundary}", tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"caf\xe9 au lait " * 10, "not UTF-8"),
        (b"text\x00with nul", "NUL"),
        (b"few words", "tokens"),
    ],
)
def test_check_refuses_what_is_not_enough_text(
    tmp_path: Path, data: bytes, message: str
) -> None:
    upload = receive(data, "text/plain", tmp_path)
    with pytest.raises(InvalidUpload, match=message):
        check_upload(upload, min_tokens=5, max_text_bytes=1 << 20)


def test_check_refuses_a_gzip_bomb(tmp_path: Path) -> None:
    upload = receive(gzip.compress(b" " * 5_000_000), "application/gzip", tmp_path)
    assert upload.size < 10_000
    with pytest.raises(InvalidUpload, match="decompresses to more than"):
        check_upload(upload, min_tokens=1, max_text_bytes=1_000_000)


def test_a_multibyte_character_split_across_blocks_is_fine(tmp_path: Path) -> None:
    text = ("ä" * 700_000 + " word").encode()  # 1.4 MB: crosses the 1 MiB read block
    upload = receive(text, "text/plain", tmp_path, limit=2 << 20, size=65536)
    assert check_upload(upload, min_tokens=1, max_text_bytes=4 << 20)[1] == 2


def test_store_renames_durably_and_keeps_the_lock_until_discarded(
    tmp_path: Path,
) -> None:
    upload = receive(TEXT, "text/plain", tmp_path)
    stored = store_upload(upload, "job1", len(TEXT), 1600)
    assert stored.path == tmp_path / "job1.txt" and stored.path.read_bytes() == TEXT
    assert upload.lock_fd >= 0
    upload.discard()
    assert upload.lock_fd == -1
    assert [p.name for p in tmp_path.iterdir()] == ["job1.txt"]


def test_orphan_cleanup_keeps_uploads_of_jobs_and_of_live_requests(
    tmp_path: Path,
) -> None:
    uploads = tmp_path / "uploads"
    store = JobStore(tmp_path / "jobs.db")
    job, _ = store.create(
        kind="finetune",
        params={},
        upload={"file": "a" * 32 + ".txt"},
        max_attempts=1,
        job_id="a" * 32,
    )
    uploads.mkdir()
    (uploads / f"{job.id}.txt").write_bytes(TEXT)
    # A crash between the rename and the commit left this one.
    (uploads / f"{'b' * 32}.txt.gz").write_bytes(TEXT)
    # Not named like an upload, so not the cleanup's to judge.
    (uploads / "notes.md").write_bytes(TEXT)
    # A live request has renamed its upload and not committed yet.
    live = receive(TEXT, "text/plain", uploads)
    in_flight = store_upload(live, "c" * 32, len(TEXT), 1600)
    assert remove_orphan_uploads(uploads, store) == 1
    assert sorted(p.name for p in uploads.iterdir()) == sorted(
        [f"{job.id}.txt", in_flight.path.name, "notes.md"]
    )
    live.discard()
    assert remove_orphan_uploads(uploads, store) == 1
    assert sorted(p.name for p in uploads.iterdir()) == [f"{job.id}.txt", "notes.md"]


def test_cleanup_spares_live_uploads_and_removes_dead_ones(tmp_path: Path) -> None:
    live = receive(TEXT, "text/plain", tmp_path)
    # A temporary file whose writer died: created and locked by a process
    # that has exited, so its lock is gone.
    script = (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR); "
        "fcntl.flock(fd, fcntl.LOCK_EX)"
    )
    dead = tmp_path / ".upload-dead.tmp"
    subprocess.run([sys.executable, "-c", script, str(dead)], check=True)
    assert remove_stale_temporaries(tmp_path) == 1
    assert live.path.exists() and not dead.exists()
    live.discard()
    assert os.listdir(tmp_path) == []


DAY = 86_400.0


def job_with_upload(store: JobStore, uploads: Path, name: str) -> str:
    """Create a queued job named `name` x 32 with its upload file; return its id."""
    job_id = name * 32
    upload = {"file": f"{job_id}.txt", "bytes": len(TEXT), "sha256": "0" * 64}
    store.create(
        kind="finetune", params={}, upload=upload, max_attempts=1, job_id=job_id
    )
    (uploads / f"{job_id}.txt").write_bytes(TEXT)
    return job_id


def set_finished_at(store: JobStore, job_id: str, finished_at: float) -> None:
    # Test only: the store has no call that moves a job's end into the past.
    with sqlite3.connect(store.path) as db:
        db.execute(
            "UPDATE jobs SET finished_at = ? WHERE id = ?", (finished_at, job_id)
        )


@pytest.fixture
def aged_jobs(tmp_path: Path) -> tuple[JobStore, Path, dict[str, str]]:
    """A job table and uploads/ with one job per case, the finished ones
    (and, by SQL, the running one) ending 8 days ago unless named recent."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    store = JobStore(tmp_path / "jobs.db")
    jobs = {
        case: job_with_upload(store, uploads, c)
        for case, c in zip(
            ["succeeded", "failed", "cancelled", "recent", "running", "queued"],
            "abcdef",
            strict=True,
        )
    }
    for case in ("succeeded", "failed", "recent", "running"):
        claimed = store.claim(jobs[case], "test-worker")
        assert claimed is not None and claimed.lease is not None
        if case in ("succeeded", "recent"):
            result = {"activated": False}
            with store.fenced_success(claimed.id, claimed.lease, "v1", result):
                pass
        elif case == "failed":
            store.fail(claimed.id, claimed.lease, "broken", retry=False)
    store.cancel(jobs["cancelled"])
    eight_days_ago = time.time() - 8 * DAY
    for case in ("succeeded", "failed", "cancelled", "running", "queued"):
        set_finished_at(store, jobs[case], eight_days_ago)
    set_finished_at(store, jobs["recent"], time.time() - 6 * DAY)
    return store, uploads, jobs


def test_expired_uploads_of_finished_jobs_are_deleted_and_noted(
    aged_jobs: tuple[JobStore, Path, dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, uploads, jobs = aged_jobs
    (uploads / "notes.md").write_bytes(TEXT)
    with caplog.at_level(logging.INFO, logger="app.jobs.uploads"):
        removed = remove_expired_uploads(uploads, store, retention_days=7)
    expired = {jobs[case] for case in ("succeeded", "failed", "cancelled")}
    assert set(removed) == expired
    kept = {f"{jobs[case]}.txt" for case in ("recent", "running", "queued")}
    assert {p.name for p in uploads.iterdir()} == kept | {"notes.md"}
    for job_id in expired:
        job = store.get(job_id)
        assert job.upload["bytes"] == len(TEXT)
        assert job.result["upload_deleted_at"] > job.finished_at
        assert f"deleted upload {job_id}.txt of job {job_id}" in caplog.text
    # What succeeded keeps its result beside the note.
    assert store.get(jobs["succeeded"]).result["activated"] is False
    assert "upload_deleted_at" not in store.get(jobs["recent"]).result
    assert remove_expired_uploads(uploads, store, retention_days=7) == []


def test_running_and_queued_jobs_keep_their_uploads_at_any_age(
    aged_jobs: tuple[JobStore, Path, dict[str, str]],
) -> None:
    store, uploads, jobs = aged_jobs
    later = time.time() + 365 * DAY
    removed = remove_expired_uploads(uploads, store, retention_days=1, now=later)
    assert jobs["running"] not in removed and jobs["queued"] not in removed
    assert {p.name for p in uploads.iterdir()} == {
        f"{jobs['running']}.txt",
        f"{jobs['queued']}.txt",
    }


def test_zero_retention_keeps_every_upload(
    aged_jobs: tuple[JobStore, Path, dict[str, str]],
) -> None:
    store, uploads, _ = aged_jobs
    before = sorted(uploads.iterdir())
    later = time.time() + 365 * DAY
    assert remove_expired_uploads(uploads, store, retention_days=0, now=later) == []
    assert sorted(uploads.iterdir()) == before
