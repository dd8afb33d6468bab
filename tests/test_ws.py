"""The live queue over WebSockets, against a real web process."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import asyncpg
import pytest
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from tests.conftest import AddConcert, AppClient, MakeSettings, admin_headers, eventually
from waitingroom import admission
from waitingroom.appkeys import SETTINGS
from waitingroom.keys import ConcertKeys
from waitingroom.queue import Queues
from waitingroom.records import TokenRecord
from waitingroom.settings import Settings
from waitingroom.sockets import Sockets

TIMEOUT = 5


async def join(client: AppClient, concert_id: int, user_id: int) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/concerts/{concert_id}/queue", json={"user_id": user_id})
    assert resp.status in (200, 201), await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def next_frame(ws: aiohttp.ClientWebSocketResponse, type_: str | None = None) -> dict[str, Any]:
    """The next frame (of this type, skipping others), failing after TIMEOUT seconds."""
    while True:
        msg = await ws.receive(timeout=TIMEOUT)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        frame: dict[str, Any] = msg.json()
        if type_ is None or frame["type"] == type_:
            return frame


async def position_reaching(ws: aiohttp.ClientWebSocketResponse, expected: int) -> list[int]:
    """Position frames until `expected` arrives; returns all positions seen."""
    seen: list[int] = []
    while not seen or seen[-1] != expected:
        seen.append((await next_frame(ws, "position"))["position"])
        assert seen[-1] >= expected, seen
    return seen


async def closed(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """The close code the server sent (ws.close_code turns into 1006 when the client's reply
    to the close frame finds the connection gone, which depends on when the test reads)."""
    while True:
        msg = await ws.receive(timeout=TIMEOUT)
        if msg.type == aiohttp.WSMsgType.CLOSE:
            return int(msg.data)
        if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return ws.close_code


async def record(redis: Redis, concert_id: int, token: str) -> TokenRecord:
    """A token's record read straight from Redis: unlike a poll, no sign of life."""
    raw = await redis.hget(ConcertKeys(concert_id).tokens, token)
    assert raw is not None, f"no record of token {token}"
    return TokenRecord.parse(raw)


@pytest.fixture
async def concert(add_concert: AddConcert, queues: Queues) -> int:
    cid = await add_concert()
    await queues.configure(cid, paused=True, admit_rate=20.0)
    return cid


@pytest.mark.parametrize("token", ["", "nope", "8e0b7a2c-6a5d-4c1e-9d0f-3f1b2a4c5d6e"])
async def test_unknown_or_malformed_token_closes_4401(client: AppClient, token: str) -> None:
    ws = await client.ws_connect(f"/ws/queue?token={token}")
    assert await closed(ws) == 4401


async def test_position_admitted_expired_flow(client: AppClient, queues: Queues, concert: int) -> None:
    ticket = await join(client, concert, 1)
    ws = await client.ws_connect(f"/ws/queue?token={ticket['token']}")
    first = await next_frame(ws)
    assert first == {"type": "position", "position": 1, "eta_seconds": None, "admit_rate": 20.0,
                     "eta_range": None}
    await queues.configure(concert, paused=False)
    assert (await next_frame(ws, "position"))["eta_seconds"] == 1  # unpaused: an ETA again
    await admission.tick(queues, None)
    await queues.redis.hset(f"wr:{{c:{concert}}}:state", "last_ms", 0)
    await admission.tick(queues, None)
    admitted = await next_frame(ws, "admitted")
    assert admitted["concert_id"] == concert and admitted["expires_at"].endswith("Z")
    await queues.end(ticket["token"], "completed")
    assert await next_frame(ws) == {"type": "expired", "reason": "completed"}
    assert await closed(ws) == 4410
    # Connecting again with the expired token: the reason, then 4410.
    again = await client.ws_connect(f"/ws/queue?token={ticket['token']}")
    assert await next_frame(again) == {"type": "expired", "reason": "completed"}
    assert await closed(again) == 4410


async def test_admitted_token_gets_admitted_frame_on_connect(client: AppClient, queues: Queues,
                                                             concert: int) -> None:
    ticket = await join(client, concert, 1)
    await queues.configure(concert, paused=False)
    await admission.tick(queues, None)
    await queues.redis.hset(f"wr:{{c:{concert}}}:state", "last_ms", 0)
    await admission.tick(queues, None)
    ws = await client.ws_connect(f"/ws/queue?token={ticket['token']}")
    assert (await next_frame(ws))["type"] == "admitted"


async def test_positions_exact_and_never_increase(client: AppClient, queues: Queues, concert: int) -> None:
    tickets = [await join(client, concert, u) for u in range(1, 13)]
    last = tickets[-1]
    ws = await client.ws_connect(f"/ws/queue?token={last['token']}")
    assert (await next_frame(ws))["position"] == 12
    # Waiters in the middle leave: the last one moves up by exactly as many.
    for t in tickets[2:6]:
        resp = await client.delete("/api/v1/queue", headers={"Authorization": f"Bearer {t['token']}"})
        assert resp.status == 204
    seen = await position_reaching(ws, 8)
    assert seen == sorted(seen, reverse=True)
    # Three are admitted from the head: 5 ahead of us are left, so we are 5th... plus us.
    await queues.configure(concert, paused=False, admit_rate=3.0)
    await admission.tick(queues, None)
    await queues.redis.hset(f"wr:{{c:{concert}}}:state", "last_ms", 0)
    assert len((await admission.tick(queues, None))[concert].admitted_tokens) == 4  # one second's worth + 1
    await queues.configure(concert, paused=True)
    seen = await position_reaching(ws, 4)
    assert seen == sorted(seen, reverse=True)
    assert (await queues.status(last["token"])).position == 4


async def test_reconnect_keeps_place(client: AppClient, concert: int) -> None:
    for u in range(1, 4):
        await join(client, concert, u)
    mine = await join(client, concert, 4)
    ws = await client.ws_connect(f"/ws/queue?token={mine['token']}")
    assert (await next_frame(ws))["position"] == 4
    await ws.close()
    again = await join(client, concert, 4)
    assert again["token"] == mine["token"] and again["position"] == 4
    ws = await client.ws_connect(f"/ws/queue?token={mine['token']}")
    assert (await next_frame(ws))["position"] == 4


async def test_ping_gets_pong_and_other_frames_are_ignored(client: AppClient, concert: int) -> None:
    ticket = await join(client, concert, 1)
    ws = await client.ws_connect(f"/ws/queue?token={ticket['token']}")
    await next_frame(ws)
    await ws.send_str("garbage")
    await ws.send_json({"type": "hello"})
    await ws.send_json({"type": "ping"})
    assert await next_frame(ws) == {"type": "pong"}


async def test_a_frame_past_the_size_limit_closes_the_socket(client: AppClient, concert: int) -> None:
    ticket = await join(client, concert, 1)
    ws = await client.ws_connect(f"/ws/queue?token={ticket['token']}")
    await next_frame(ws)
    await ws.send_str("x" * (client.app[SETTINGS].ws_max_message + 1))
    msg = await ws.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    # The place is kept: a new socket with the same token is served.
    again = await client.ws_connect(f"/ws/queue?token={ticket['token']}")
    assert (await next_frame(again))["type"] == "position"
    await again.close()


async def test_abandoned_waiters_dropped_polling_and_connected_kept(aiohttp_client: AiohttpClient,
                                                                    make_settings: MakeSettings,
                                                                    queues: Queues, redis: Redis,
                                                                    pg: asyncpg.Pool,
                                                                    add_concert: AddConcert) -> None:
    from waitingroom.app import create_app
    from waitingroom.queue import Queues

    settings = make_settings(wait_grace=1)
    client = await aiohttp_client(create_app(settings))
    q = Queues(redis, settings)
    cid = await add_concert()
    await q.configure(cid, paused=True)
    gone, polling, connected = [await join(client, cid, u) for u in (1, 2, 3)]
    ws = await client.ws_connect(f"/ws/queue?token={connected['token']}")
    await next_frame(ws)
    auth = {"Authorization": f"Bearer {polling['token']}"}

    async def dropped() -> bool:
        await admission.tick(q, None)
        resp = await client.get("/api/v1/queue", headers=auth)  # the polling waiter's sign of life
        assert (await resp.json())["state"] == "WAITING"
        return (await record(redis, cid, gone["token"])).state == "EXPIRED"

    await eventually(dropped, timeout=5, interval=0.2)
    assert (await record(redis, cid, gone["token"])).reason == "dropped"
    assert (await q.status(connected["token"])).position == 2
    # The connected waiter was told its new place; once it closes its socket, its grace starts.
    assert (await next_frame(ws, "position"))["position"] == 2
    await ws.close()

    async def connected_dropped() -> bool:
        await admission.tick(q, None)
        await client.get("/api/v1/queue", headers=auth)
        return (await record(redis, cid, connected["token"])).state == "EXPIRED"

    await eventually(connected_dropped, timeout=5, interval=0.2)
    assert (await q.figures([cid]))[cid].dropped_total == 2


async def test_admin_patch_reaches_a_second_web_process(aiohttp_client: AiohttpClient, settings: Settings,
                                                        pg: asyncpg.Pool, redis: Redis,
                                                        add_concert: AddConcert, queues: Queues) -> None:
    from waitingroom.app import create_app

    one = await aiohttp_client(create_app(settings))
    two = await aiohttp_client(create_app(settings))
    cid = await add_concert()
    await queues.configure(cid, paused=True, admit_rate=20.0)
    ticket = await join(one, cid, 1)
    ws = await two.ws_connect(f"/ws/queue?token={ticket['token']}")
    assert (await next_frame(ws))["admit_rate"] == 20.0
    resp = await one.patch(f"/admin/concerts/{cid}/queue", json={"admit_rate": 5.5},
                           headers=admin_headers(settings))
    assert resp.status == 200 and (await resp.json())["admit_rate"] == 5.5
    frame = await asyncio.wait_for(next_frame(ws, "position"), 1.5)
    assert frame["admit_rate"] == 5.5


async def test_slow_client_is_skipped_then_closed_without_holding_up_others(client: AppClient,
                                                                            concert: int) -> None:
    from waitingroom.appkeys import SETTINGS, SOCKETS
    from waitingroom.schemas import PositionFrame

    slow_t, fast_t = [(await join(client, concert, u))["token"] for u in (1, 2)]
    slow = await client.ws_connect(f"/ws/queue?token={slow_t}")  # never read from again
    fast = await client.ws_connect(f"/ws/queue?token={fast_t}")
    await next_frame(fast)
    hub = client.app[SOCKETS]
    await eventually(lambda: _has(hub, slow_t))
    waiter = hub.by_token[slow_t][0]
    frame = PositionFrame(position=1, eta_seconds=1, admit_rate=1.0, eta_range=[0, 2])
    # Stuff the slow client's pipes until the hub refuses to queue more for it.
    for _ in range(200_000):
        if not await asyncio.wait_for(hub.send(waiter, frame), 1):
            break
    else:
        raise AssertionError("the hub never noticed the slow client")
    # Everyone else is served at once.
    fast_waiter = hub.by_token[fast_t][0]
    assert await asyncio.wait_for(hub.send(fast_waiter, frame), 1)
    assert (await next_frame(fast))["position"] == 1
    # A client that stays behind is cut off (it would never read a close frame).
    for _ in range(client.app[SETTINGS].slow_client_ticks):
        await hub.send(waiter, frame)
    await eventually(lambda: _gone(hub, slow_t), timeout=15)
    await slow.close()


async def _has(hub: Sockets, token: str) -> bool:
    return token in hub.by_token


async def _gone(hub: Sockets, token: str) -> bool:
    return token not in hub.by_token
