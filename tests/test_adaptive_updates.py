"""Adaptive updates: waiters far back hear less often, yet what any page shows stays within the
stated bound of the true position (2 %, or one second's admissions near the front, where a
frame still comes every second)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from tests.conftest import Spawn
from waitingroom.keys import ConcertKeys
from waitingroom.records import TokenRecord

ADMIN = {"Authorization": "Bearer k"}
RATE = 5.0
NEAR_ETA = 120  # sockets.NEAR_ETA: frames every second when the ETA is at most this


def bound(exact: int) -> float:
    """The README's bound, plus two for the moment between a Redis read and a frame's arrival."""
    return max(0.02 * exact, RATE * 1.0) + 2


@pytest.mark.timeout(120)  # about 30 s; more on a busy machine
async def test_far_waiters_hear_less_often_and_every_display_stays_within_the_bound(
        spawn: Spawn, add_concert: Any, redis: Redis) -> None:
    await add_concert()
    web = await spawn("web", WAIT_GRACE="600")
    k = ConcertKeys(1)
    # No connection limit: the sockets must not take every connection the admin calls need.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        async with s.patch(web.url + "/admin/concerts/1/queue", headers=ADMIN,
                           json={"admit_rate": RATE, "paused": True}) as r:
            assert r.status == 200

        async def one(user: int) -> str:
            async with s.post(web.url + "/api/v1/concerts/1/queue", json={"user_id": user}) as r:
                return str((await r.json())["token"])

        tokens: list[str] = []
        for start in range(1, 1501, 100):
            tokens += await asyncio.gather(*(one(u) for u in range(start, start + 100)))
        watched = tokens[::15]  # 100 sockets, from the front to 1,500 deep
        tickets = [TokenRecord.parse(raw or "").ticket for raw in await redis.hmget(k.tokens, watched)]
        shown: dict[int, int] = {}  # socket -> last position shown
        frames: dict[int, list[tuple[float, int]]] = {i: [] for i in range(len(watched))}
        loop = asyncio.get_running_loop()
        sockets = [await s.ws_connect(f"{web.url}/ws/queue?token={t}") for t in watched]
        for i, ws in enumerate(sockets):
            first = await ws.receive_json(timeout=10)
            shown[i] = first["position"]

        async def read(i: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            async for msg in ws:
                frame = msg.json()
                if frame["type"] == "position":
                    shown[i] = frame["position"]
                    frames[i].append((loop.time(), frame["position"]))

        readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(sockets)]
        await spawn("admitter", WAIT_GRACE="600")
        async with s.patch(web.url + "/admin/concerts/1/queue", headers=ADMIN,
                           json={"paused": False}) as r:
            assert r.status == 200
        started = loop.time()
        worst: list[tuple[float, int, int, int]] = []
        checks = 0
        try:
            while loop.time() - started < 10:
                async with redis.pipeline(transaction=False) as pipe:
                    for ticket in tickets:
                        pipe.zcount(k.queue, "-inf", ticket)
                    exact = await pipe.execute()
                for i, true in enumerate(exact):
                    if true == 0:
                        continue  # admitted
                    checks += 1
                    if abs(shown[i] - true) > bound(true):
                        worst.append((loop.time() - started, i, shown[i], true))
                await asyncio.sleep(0.1)
        finally:
            for task in readers:
                task.cancel()
            for ws in sockets:
                await ws.close()
    assert checks > 5000 and worst == [], worst[:10]
    # Near the front, a frame every second; far back, much fewer.
    near = [i for i, t in enumerate(tickets) if 15 * RATE < t <= (NEAR_ETA - 15) * RATE]
    far = [i for i, t in enumerate(tickets) if t / RATE >= NEAR_ETA + 60]
    assert near and far
    for i in near:
        times = [at for at, _ in frames[i] if at - started > 1]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps and max(gaps) <= 1.5, (i, gaps)
    per_near = sum(len(frames[i]) for i in near) / len(near)
    per_far = sum(len(frames[i]) for i in far) / len(far)
    assert per_far <= 0.6 * per_near, (per_far, per_near)
