"""Logs: one JSON object per line when asked, and a request id on every line of a request and in
every problem answer."""

from __future__ import annotations

import io
import json
import logging

from tests.conftest import AppClient
from waitingroom import logs


def test_json_lines_carry_the_request_id() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure("INFO", "json")
    stream = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    token = logs.request_id.set("abc123")
    try:
        logging.getLogger("waitingroom.test").warning("a thing happened: %s", 42)
    finally:
        logs.request_id.reset(token)
    logging.getLogger("waitingroom.test").info("outside a request")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["message"] == "a thing happened: 42" and lines[0]["request_id"] == "abc123"
    assert lines[0]["level"] == "WARNING" and lines[0]["logger"] == "waitingroom.test"
    assert lines[1]["request_id"] is None
    root.handlers[:], level = saved
    root.setLevel(level)


async def test_every_problem_names_its_request(client: AppClient) -> None:
    for method, path in (("GET", "/api/v1/queue"), ("GET", "/nope"), ("POST", "/api/v1/concerts/1/queue")):
        resp = await client.request(method, path)
        body = await resp.json()
        assert resp.status >= 400 and body["request_id"] == resp.headers["X-Request-Id"], path
    ok = await client.get("/healthz")
    assert ok.status == 200 and len(ok.headers["X-Request-Id"]) == 16
