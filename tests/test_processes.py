"""Real processes: web processes stopped and killed while clients wait, and the admitter."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from tests.conftest import eventually
from waitingroom.keys import ConcertKeys
from waitingroom.records import TokenRecord
from waitingroom.servers import free_port


class Proc:
    def __init__(self, proc: asyncio.subprocess.Process, port: int | None) -> None:
        self.proc, self.port = proc, port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def spawn(redis_url: str, database_url: str, pg, redis) -> AsyncIterator[Callable]:
    """Start `waitingroom <command>` processes; each is stopped (by its pid) after the test."""
    started: list[Proc] = []
    env = dict(os.environ, REDIS_URL=redis_url, DATABASE_URL=database_url, ADMIN_TOKEN="k",
               TICK_INTERVAL="0.1", WAIT_GRACE="1", LOG_LEVEL="WARNING")

    async def start(command: str) -> Proc:
        port = free_port() if command == "web" else None
        args = [command, "--port", str(port), "--host", "127.0.0.1"] if port else [command]
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "waitingroom", *args,
                                                    env=env)
        p = Proc(proc, port)
        started.append(p)
        if port:
            async def up() -> bool:
                try:
                    async with aiohttp.ClientSession() as s, s.get(p.url + "/readyz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(up, timeout=20, interval=0.1)
        return p

    yield start
    for p in started:
        if p.proc.returncode is None:
            p.proc.kill()
        await p.proc.wait()


async def frame(ws: aiohttp.ClientWebSocketResponse) -> dict:
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return msg.json()


async def test_stopped_process_says_going_away_and_place_is_kept_elsewhere(spawn, add_concert,
                                                                           queues):
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
        spawn, add_concert, queues, redis):
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

        async def state(token: str) -> str:
            return TokenRecord.parse(await redis.hget(ConcertKeys(cid).tokens, token)).state

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
        reasons = [TokenRecord.parse(await redis.hget(ConcertKeys(cid).tokens, t)).reason
                   for t in tokens]
        assert reasons == ["dropped", "dropped"]


async def redis_seconds(redis) -> float:
    sec, usec = await redis.time()
    return sec + usec / 1e6
