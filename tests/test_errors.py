"""Errors at the edge: constraint violations mapped by name, and a bug still answered as a problem."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from booking import errors
from booking.errors import CONSTRAINTS, from_violation
from waitingroom.app import create_app
from waitingroom.settings import Settings


async def test_every_mapped_constraint_exists(pg: asyncpg.Pool) -> None:
    names = {r["name"] for r in await pg.fetch(
        "SELECT conname AS name FROM pg_constraint UNION SELECT indexname FROM pg_indexes")}
    assert set(CONSTRAINTS) <= names


async def _violation(pg: asyncpg.Pool, sql: str, *args: Any) -> asyncpg.IntegrityConstraintViolationError:
    with pytest.raises(asyncpg.IntegrityConstraintViolationError) as caught:
        await pg.execute(sql, *args)
    return caught.value


async def test_violations_map_by_constraint_name(pg: asyncpg.Pool) -> None:
    await pg.execute("INSERT INTO users (id) VALUES (1)")
    await pg.execute("INSERT INTO balances (user_id, balance) VALUES (1, 5)")
    negative = await _violation(pg, "UPDATE balances SET balance = balance - 10 WHERE user_id = 1")
    assert isinstance(from_violation(negative), errors.InsufficientBalance)
    # A rule we have not named for clients (a duplicate user) is no domain error: it is a bug.
    duplicate = await _violation(pg, "INSERT INTO users (id) VALUES (1)")
    assert from_violation(duplicate) is None
    with pytest.raises(asyncpg.UniqueViolationError), errors.constraint_rules():
        await pg.execute("INSERT INTO users (id) VALUES (1)")
    with pytest.raises(errors.InsufficientBalance), errors.constraint_rules():
        await pg.execute("UPDATE balances SET balance = -1 WHERE user_id = 1")
    assert await pg.fetchval("SELECT balance FROM balances WHERE user_id = 1") == 5


async def test_a_bug_is_a_problem_with_a_request_id(aiohttp_client: Any, settings: Settings,
                                                    pg: asyncpg.Pool, caplog: Any) -> None:
    async def broken(request: web.Request) -> web.Response:
        raise KeyError("nobody expected this")

    async def unmapped(request: web.Request) -> web.Response:
        await pg.execute("INSERT INTO users (id) VALUES (7), (7)")
        return web.Response()

    app = create_app(settings)
    app.router.add_get("/broken", broken)
    app.router.add_get("/unmapped", unmapped)
    client = await aiohttp_client(app)
    for path in ("/broken", "/unmapped"):
        with caplog.at_level(logging.ERROR, logger="waitingroom.problems"):
            caplog.clear()
            resp = await client.get(path)
        assert resp.status == 500 and resp.content_type == "application/problem+json"
        body = await resp.json()
        assert body["code"] == "internal_error" and body["status"] == 500
        request_id = body["request_id"]
        assert request_id in body["detail"]
        logged = [r for r in caplog.records if request_id in r.getMessage()]
        assert logged and logged[0].exc_info is not None
    assert await pg.fetchval("SELECT count(*) FROM users WHERE id = 7") == 0
