"""The operators' console socket, the what-if of a proposed setting and the admission mode."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from tests.conftest import AddConcert, MakeSettings, admin_headers, eventually
from tests.test_browser import add_show
from waitingroom.appkeys import PG
from waitingroom.console import CLOSE_UNAUTHORIZED
from waitingroom.settings import Settings

AppClient = TestClient[Any, Any]


async def _frame(ws: Any) -> dict[str, Any]:
    msg = await ws.receive(timeout=5)
    assert msg.type == WSMsgType.TEXT, msg
    frame: dict[str, Any] = json.loads(msg.data)
    assert frame["type"] == "figures"
    return frame


async def test_console_socket_sends_live_figures_after_the_key(
        client: AppClient, settings: Settings, pg: asyncpg.Pool) -> None:
    cid, _ = await add_show(pg, seats=6)
    async with client.ws_connect("/admin/ws") as ws:
        # The upgrade carries the safety headers, as every answer does.
        assert ws._response.headers["X-Frame-Options"] == "DENY"
        await ws.send_json({"type": "auth", "key": settings.admin_token})
        first = await _frame(ws)
        (mine,) = [c for c in first["concerts"] if c["id"] == cid]
        assert mine["queue"]["waiting"] == 0 and mine["seats_left"] == 6
        assert mine["queue"]["admission_mode"] == "fixed"
        await client.patch(f"/admin/concerts/{cid}/queue", json={"paused": True},
                           headers=admin_headers(settings))
        for user in (1, 2, 3):
            r = await client.post(f"/api/v1/concerts/{cid}/queue", json={"user_id": user})
            assert r.status == 201

        async def three_waiting() -> bool:
            frame = await _frame(ws)
            (c,) = [c for c in frame["concerts"] if c["id"] == cid]
            return bool(c["queue"]["waiting"] == 3 and c["queue"]["paused"])

        await eventually(three_waiting, timeout=10)


async def test_console_socket_refuses_a_wrong_key_with_4401(client: AppClient) -> None:
    for first in ({"type": "auth", "key": "guess"}, {"key": "guess"}, "not json"):
        async with client.ws_connect("/admin/ws") as ws:
            if isinstance(first, str):
                await ws.send_str(first)
            else:
                await ws.send_json(first)
            msg = await ws.receive(timeout=5)
            assert msg.type == WSMsgType.CLOSE
            assert ws.close_code == CLOSE_UNAUTHORIZED


async def test_console_socket_is_rate_limited_like_admin_calls(
        aiohttp_client: Any, make_settings: MakeSettings, pg: asyncpg.Pool, redis: Any) -> None:
    from waitingroom.app import create_app

    client = await aiohttp_client(create_app(make_settings(rate_limit_admin=2)))
    statuses = []
    for _ in range(3):
        r = await client.get("/admin/ws", headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                                   "Sec-WebSocket-Version": "13",
                                                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        statuses.append(r.status)
        r.close()
    assert statuses == [101, 101, 429]


async def test_what_if_says_when_the_queue_drains_and_whether_seats_run_out(
        client: AppClient, settings: Settings, pg: asyncpg.Pool) -> None:
    cid, _ = await add_show(pg, seats=8)
    h = admin_headers(settings)
    await client.patch(f"/admin/concerts/{cid}/queue", json={"paused": False, "admit_rate": 0.001},
                       headers=h)
    for user in range(1, 11):
        assert (await client.post(f"/api/v1/concerts/{cid}/queue", json={"user_id": user})).status == 201
    r = await client.post(f"/admin/concerts/{cid}/what-if", json={"admit_rate": 2}, headers=h)
    assert r.status == 200, await r.text()
    out = await r.json()
    assert out["waiting"] == 10
    assert out["proposed"]["rate"] == 2 and out["proposed"]["drain_seconds"] == 5
    assert out["proposed"]["median_eta_seconds"] == 3 and out["proposed"]["last_eta_seconds"] == 5
    assert out["now"]["drain_seconds"] == 10_000
    # 8 seats at 4 per buyer until measured (MAX_SEATS_PER_USER): 2 buyers for 10 waiting.
    assert out["seats_left"] == 8 and out["seats_per_buyer"] == 4
    assert out["seats_per_buyer_measured"] is False
    assert out["buyers_left"] == 2 and out["seats_run_out_first"] is True
    assert out["runs_out_at_position"] == 3 and out["runs_out_in_seconds"] == 1
    # Nothing changed.
    figures = await (await client.get(f"/admin/concerts/{cid}/queue", headers=h)).json()
    assert figures["admit_rate"] == 0.001


async def test_what_if_with_max_active_reached_says_nobody_moves(
        client: AppClient, settings: Settings, pg: asyncpg.Pool) -> None:
    cid, _ = await add_show(pg, seats=8)
    h = admin_headers(settings)
    await client.post(f"/api/v1/concerts/{cid}/queue", json={"user_id": 1})
    r = await client.post(f"/admin/concerts/{cid}/what-if", json={"max_active": 0}, headers=h)
    out = await r.json()
    assert out["proposed"]["max_active_full"] is True and out["proposed"]["rate"] == 0
    assert out["proposed"]["drain_seconds"] is None
    assert out["now"]["max_active_full"] is False


async def test_bad_settings_are_refused_and_change_nothing(
        client: AppClient, settings: Settings, add_concert: AddConcert, pg: asyncpg.Pool) -> None:
    cid = await add_concert()
    h = admin_headers(settings)
    before = await (await client.get(f"/admin/concerts/{cid}/queue", headers=h)).json()
    bodies: list[dict[str, Any]] = [
        {"admission_mode": "greedy"}, {"admission_mode": None}, {"admission_mode": 1},
        {"admit_rate": 5, "admission_mode": "Inventory"}, {"admit_rate": -1}, {"max_active": 1.5}]
    for body in bodies:
        r = await client.patch(f"/admin/concerts/{cid}/queue", json=body, headers=h)
        assert r.status == 400, body
        assert r.content_type == "application/problem+json"
    bodies = [{"admit_rate": "fast"}, {"max_active": -1}, {"paused": True}]
    for body in bodies:
        r = await client.post(f"/admin/concerts/{cid}/what-if", json=body, headers=h)
        assert r.status == 400, body
        assert r.content_type == "application/problem+json"
    r = await client.post(f"/admin/concerts/{cid}/what-if", json={}, headers={})
    assert r.status == 401
    after = await (await client.get(f"/admin/concerts/{cid}/queue", headers=h)).json()
    assert after == before
    assert await pg.fetchval("SELECT count(*) FROM queue_settings") == 0


async def test_admission_mode_persists_and_comes_back_after_redis_is_emptied(
        client: AppClient, settings: Settings, add_concert: AddConcert, pg: asyncpg.Pool,
        redis: Any) -> None:
    from waitingroom import admission
    from waitingroom.queue import Queues

    cid = await add_concert()
    h = admin_headers(settings)
    r = await client.patch(f"/admin/concerts/{cid}/queue", json={"admission_mode": "inventory"},
                           headers=h)
    assert (await r.json())["admission_mode"] == "inventory"
    assert await pg.fetchval("SELECT admission_mode FROM queue_settings WHERE concert_id = $1",
                             cid) == "inventory"
    await redis.flushdb()
    await admission.restore_settings(Queues(redis, settings), client.app[PG])
    r = await client.get(f"/admin/concerts/{cid}/queue", headers=h)
    assert (await r.json())["admission_mode"] == "inventory"


async def test_a_page_calling_the_booking_api_reports_its_latency(
        client: AppClient, settings: Settings, pg: asyncpg.Pool, redis: Any) -> None:
    from waitingroom.queue import Queues

    for _ in range(3):
        await client.get("/api/v1/balance")  # 401 without a token: still a booking call timed
    queues = Queues(redis, settings)
    latest: list[float | None] = []

    async def reported() -> bool:
        latest.append(await queues.booking_p95(10_000))
        return latest[-1] is not None

    await eventually(reported, timeout=5)
    assert latest[-1] is not None and latest[-1] >= 0
