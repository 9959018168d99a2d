"""Load shedding past the concurrency limit, and CORS (off unless configured)."""

import asyncio
import logging
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from app.api.auth import RedactQueryKeys
from app.core.config import Settings
from app.core.overload import LoadShedding
from app.main import create_app


def test_requests_past_the_limit_get_a_fast_503_and_health_stays_up() -> None:
    release = asyncio.Event()

    async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    async def scenario() -> tuple[list[int], httpx.Response, int, int]:
        shedding = LoadShedding(slow_app, limit=2)
        transport = httpx.ASGITransport(app=shedding)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            running = [asyncio.create_task(c.get("/similar")) for _ in range(2)]
            await asyncio.sleep(0.05)
            refused = await c.get("/similar")
            health = asyncio.create_task(c.get("/health"))
            await asyncio.sleep(0.05)
            release.set()
            done = [(await task).status_code for task in running]
            after = await c.get("/similar")
            return done, refused, (await health).status_code, after.status_code

    done, refused, health, after = asyncio.run(scenario())
    assert done == [200, 200] and health == 200 and after == 200
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["status"] == 503 and "WORDVEC_MAX_CONCURRENT" in body["detail"]
    assert body["instance"] == "/similar"


def test_cors_is_off_by_default(bundle_path: Path) -> None:
    app = create_app(Settings(bundle_path=bundle_path))
    with TestClient(app) as client:
        response = client.get(
            "/health/live", headers={"Origin": "https://evil.example"}
        )
    assert "access-control-allow-origin" not in response.headers


def test_cors_allows_only_the_configured_origins(bundle_path: Path) -> None:
    settings = Settings(bundle_path=bundle_path, cors_origins=["https://app.example"])
    with TestClient(create_app(settings)) as client:
        allowed = client.options(
            "/similar",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "GET",
            },
        )
        other = client.get("/health/live", headers={"Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other.headers


def test_access_log_lines_never_carry_a_query_key() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "POST", "/finetune?epochs=2&api_key=s3cret&x=1", "1.1", 400),
        None,
    )  # fmt: skip
    assert RedactQueryKeys().filter(record)
    line = record.getMessage()
    assert "s3cret" not in line and "api_key=[redacted]&x=1" in line
