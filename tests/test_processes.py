"""Real processes: web processes stopped and killed while clients wait, and the admitter."""

from __future__ import annotations

import contextlib
import signal
from typing import Any

import aiohttp
from redis.asyncio import Redis

from tests.conftest import AddConcert, Spawn, eventually
from waitingroom.keys import ConcertKeys
from waitingroom.queue import Queues
from waitingroom.records import TokenRecord


async def frame(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    body: dict[str, Any] = msg.json()
    return body


async def test_stopped_process_says_going_away_and_place_is_kept_elsewhere(spawn: Spawn,
                                                                           add_concert: AddConcert,
                                                                           queues: Queues) -> None:
    cid = await add_concert()
    await queues.configure(cid, paused=True)
    one, two = await spawn("web"), await spawn("web")
    async with aiohttp.ClientSession() as http:
        for user in (1, 2):
            await http.post(f"{one.url}/api/v1/concerts/{cid}/queue", json={"user_id": user})
        r = await http.post(f"{one.url}/api/v1/concerts/{cid}/queue", json={"user_id": 3})
        token = (await r.json())["token"]
        ws = await http.ws_connect(f"{one.url}/ws/queue?token={token}")
        assert (await frame(ws))["position"] == 3
        one.proc.send_signal(signal.SIGTERM)
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1001
        assert await one.proc.wait() == 0
        ws = await http.ws_connect(f"{two.url}/ws/queue?token={token}")
        assert (await frame(ws))["position"] == 3
        await ws.close()


async def test_admitter_process_admits_and_killed_web_process_releases_its_waiters(
        spawn: Spawn, add_concert: AddConcert, queues: Queues, redis: Redis) -> None:
    cid = await add_concert()
    await queues.configure(cid, paused=True, admit_rate=100.0)
    web = await spawn("web")
    await spawn("admitter")
    async with aiohttp.ClientSession() as http:
        tokens = []
        for user in (1, 2):
            r = await http.post(f"{web.url}/api/v1/concerts/{cid}/queue", json={"user_id": user})
            tokens.append((await r.json())["token"])
        sockets = [await http.ws_connect(f"{web.url}/ws/queue?token={t}") for t in tokens]
        for ws in sockets:
            await frame(ws)

        async def record(token: str) -> TokenRecord:
            raw = await redis.hget(ConcertKeys(cid).tokens, token)
            assert raw is not None, f"no record of token {token}"
            return TokenRecord.parse(raw)

        async def state(token: str) -> str:
            return (await record(token)).state

        # Held by open sockets, both outlive the 1 s grace period while the web process lives.
        start = await redis_seconds(redis)

        async def grace_passed() -> bool:
            return await redis_seconds(redis) - start >= 1.5

        await eventually(grace_passed, timeout=5)
        assert [await state(t) for t in tokens] == ["WAITING", "WAITING"]
        # The web process dies without a word: its lease runs out, the admitter releases its
        # tokens, and after the grace period they are dropped.
        web.proc.kill()
        await web.proc.wait()
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()

        async def both_dropped() -> bool:
            return [await state(t) for t in tokens] == ["EXPIRED", "EXPIRED"]

        await eventually(both_dropped, timeout=15, interval=0.2)
        reasons = [(await record(t)).reason for t in tokens]
        assert reasons == ["dropped", "dropped"]


async def redis_seconds(redis: Redis) -> float:
    sec, usec = await redis.time()
    return sec + usec / 1e6
