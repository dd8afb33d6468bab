"""Hostile input at the edges of a real web process: every answer a problem, safe headers."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import TEST_SECRET, eventually
from waitingroom.servers import free_port

PROBLEM = "application/problem+json"


class Web:
    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log = port, log

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def web(redis_url: str, database_url: str, pg: Any, redis: Any,
              tmp_path: Path) -> AsyncIterator[Web]:
    """One real web process whose log is kept in a file."""
    port, log = free_port(), tmp_path / "web.log"
    env = dict(os.environ, REDIS_URL=redis_url, DATABASE_URL=database_url,
               IDENTITY_SECRET=TEST_SECRET, LOG_LEVEL="INFO")
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "waitingroom", "web", "--port", str(port), "--host", "127.0.0.1",
            env=env, stdout=out, stderr=out)
    site = Web(port, log)

    async def up() -> bool:
        try:
            async with aiohttp.ClientSession() as s, s.get(site.url + "/healthz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    try:
        await eventually(up, timeout=20, interval=0.1)
        yield site
    finally:
        proc.terminate()
        await proc.wait()


async def raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; (status, headers, body) of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    b"POST /api/v1/concerts/1/queue HTTP/1.1\r\nHost: x\r\n\x00bad: 1\r\n\r\n",
], ids=["not-http", "bad-length", "smuggling", "nul-header"])
async def test_malformed_http_is_a_problem_not_a_traceback(web: Web, request_bytes: bytes) -> None:
    status, headers, body = await raw(web.port, request_bytes)
    assert status == 400
    assert headers["content-type"].startswith(PROBLEM)
    assert b'"code":"bad_request"' in body
    assert headers["server"] == "waitingroom"
    await asyncio.sleep(0.2)  # the log line is written as the answer goes out
    assert "Traceback" not in web.log.read_text()


async def test_static_files_and_their_absence(web: Web) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(web.url + "/static/js/common.js") as r:
            assert r.status == 200 and "javascript" in r.content_type
        for path in ("/static/nope.js", "/static/../views.py", "/static/%2e%2e/views.py",
                     "/static/js"):
            async with s.get(web.url + path) as r:
                assert r.status == 404 and r.content_type == PROBLEM, path
                assert (await r.json())["code"] == "not_found"


def _safe(h: Any, what: str) -> None:
    assert "frame-ancestors 'none'" in h["Content-Security-Policy"], what
    assert "script-src 'self'" in h["Content-Security-Policy"], what
    assert h["X-Content-Type-Options"] == "nosniff", what
    assert h["Referrer-Policy"] == "no-referrer", what
    assert h["X-Frame-Options"] == "DENY", what
    assert h["Server"] == "waitingroom", what


async def test_every_answer_carries_the_safety_headers(web: Web) -> None:
    async with aiohttp.ClientSession() as s:
        for path in ("/", "/queue/1", "/book/1", "/api/v1/docs", "/static/app.css",
                     "/static/nope.js", "/api/v1/concerts", "/api/v1/queue", "/nope",
                     "/ws/queue"):
            async with s.get(web.url + path) as r:
                _safe(r.headers, path)
        async with s.post(web.url + "/api/v1/concerts", data=b"{}") as r:  # 405
            assert r.status == 405
            _safe(r.headers, "405")
        async with s.post(web.url + "/api/v1/concerts/1/queue", json={"user_id": 5}) as r:
            assert len(r.headers["X-Request-Id"]) == 16  # refused here: joins must be signed
            _safe(r.headers, "join")
        # A socket's upgrade, sent by its handler.
        async with s.ws_connect(web.url + "/ws/queue?token=nope") as ws:
            _safe(ws._response.headers, "upgrade")


def test_pages_have_no_inline_script_or_style() -> None:
    static = Path(__file__).resolve().parent.parent / "waitingroom" / "static"
    for page in static.glob("*.html"):
        text = page.read_text()
        assert "<script>" not in text and "<style" not in text and "style=" not in text, page.name
        assert not re.search(r"\son[a-z]+=", text), page.name


@pytest.mark.parametrize("body", [b'{"\xff": 1}', b'{"user_id": 1, "\xfe\xff": 2}',
                                  b'{"identity": "\xff"}'])
async def test_undecodable_bodies_are_400(web: Web, body: bytes) -> None:
    async with aiohttp.ClientSession() as s, s.post(
            web.url + "/api/v1/concerts/1/queue", data=body,
            headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400 and r.content_type == PROBLEM
        assert (await r.json())["code"] == "validation_error"


async def test_no_full_token_reaches_the_log(spawn: Any, add_concert: Any, tmp_path: Path) -> None:
    await add_concert()
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        web = await spawn("web", ACCESS_LOG="true", LOG_LEVEL="INFO", output=out)
    async with aiohttp.ClientSession() as s:
        async with s.post(web.url + "/api/v1/concerts/1/queue", json={"user_id": 5}) as r:
            token = (await r.json())["token"]
        async with s.get(web.url + "/api/v1/queue", headers={"Authorization": f"Bearer {token}"}):
            pass
        async with s.ws_connect(f"{web.url}/ws/queue?token={token}") as ws:
            assert (await ws.receive_json(timeout=10))["type"] == "position"
        async with s.get(f"{web.url}/ws/queue?token={token}&x=1"):
            pass

    async def logged() -> bool:
        return log.read_text().count("/ws/queue?token=") >= 2

    await eventually(logged)
    text = log.read_text()
    assert token not in text and token.replace("-", "") not in text
    # Its random end is kept, which tells tokens apart (its start names the concert).
    assert f"token=…{token[-8:]}" in text and f"token={token[:8]}" not in text
    assert "/api/v1/queue" in text  # the log does have the requests


async def test_websocket_origin_is_checked_when_configured(spawn: Any, add_concert: Any) -> None:
    await add_concert()
    web = await spawn("web", ALLOWED_ORIGINS="https://shop.example, https://m.shop.example/")
    async with aiohttp.ClientSession() as s:
        async with s.post(web.url + "/api/v1/concerts/1/queue", json={"user_id": 5}) as r:
            token = (await r.json())["token"]
        url = f"{web.url}/ws/queue?token={token}"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await s.ws_connect(url, origin="https://evil.example")
        assert refused.value.status == 403
        for origin in ("https://shop.example", "https://m.shop.example", None):
            async with s.ws_connect(url, origin=origin) as ws:
                assert (await ws.receive_json(timeout=10))["type"] == "position"
