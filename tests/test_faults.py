"""Parts fail and come back: a Redis restart (with AOF) loses no token and no place, every call
that needs Redis answers 503 with Retry-After while it is down, and the processes reconnect on
their own."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Spawn, eventually
from waitingroom.servers import free_port, redis_binary

ADMIN = {"Authorization": "Bearer k"}


class RedisServer:
    """A redis-server of this test's own, with AOF, that the test may stop and start again."""

    def __init__(self, folder: Path, appendonly: bool = True) -> None:
        self.port, self.folder, self.appendonly = free_port(), folder, appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
             "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while subprocess.run([redis_binary().replace("redis-server", "redis-cli"), "-p",
                              str(self.port), "ping"], capture_output=True).stdout.strip() != b"PONG":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.stop()


async def _poll(s: aiohttp.ClientSession, url: str, token: str) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    async with s.get(url + "/api/v1/queue", headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, dict(r.headers) | {"_body": await r.json()}, time.monotonic() - started


async def _store_figures(s: aiohttp.ClientSession, url: str) -> dict[tuple[str, str], float]:
    async with s.get(url + "/metrics") as r:
        return parse_store_figures(await r.text())


def parse_store_figures(text: str) -> dict[tuple[str, str], float]:
    """A process's store counters from its /metrics: (errors|opened, redis|postgres) → value."""
    names = {"waitingroom_store_errors_total": "errors",
             "waitingroom_store_connections_opened_total": "opened"}
    out = {}
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        if name in names:
            store = rest.split('"')[1]
            out[names[name], store] = float(rest.rsplit(" ", 1)[1])
    return out


async def test_a_redis_restart_loses_no_place(spawn: Spawn, add_concert: Any,
                                              own_redis: RedisServer) -> None:
    await add_concert()
    env = {"REDIS_URL": own_redis.url, "WAIT_GRACE": "60"}
    web = await spawn("web", **env)
    await spawn("admitter", **env)
    async with aiohttp.ClientSession() as s:
        async with s.patch(web.url + "/admin/concerts/1/queue", headers=ADMIN,
                           json={"paused": True}) as r:
            assert r.status == 200
        tokens = []
        for user in range(1, 21):
            async with s.post(web.url + "/api/v1/concerts/1/queue", json={"user_id": user}) as r:
                tokens.append((await r.json())["token"])
        ws = await s.ws_connect(f"{web.url}/ws/queue?token={tokens[9]}")
        assert (await ws.receive_json(timeout=5))["position"] == 10
        before = await _store_figures(s, web.url)
        assert before["errors", "redis"] == 0 and before["opened", "redis"] >= 1

        own_redis.stop()
        status, headers, took = await _poll(s, web.url, tokens[0])
        assert status == 503 and headers["Retry-After"] == "1" and took < 5
        assert headers["_body"]["code"] == "service_unavailable"
        async with s.get(web.url + "/readyz") as r:
            assert r.status == 503
        own_redis.start()

        async def ready() -> bool:
            async with s.get(web.url + "/readyz") as r:
                return r.status == 200

        await eventually(ready, timeout=15)
        # At once, from every pooled connection: no stale connection fails a request.
        polls = await asyncio.gather(*(_poll(s, web.url, t) for t in tokens * 3))
        assert [p[0] for p in polls] == [200] * 60
        positions = [p[1]["_body"]["position"] for p in polls[:20]]
        assert positions == list(range(1, 21))  # every token and place kept, in order
        # The settings survived too: the queue is still paused, nobody was admitted.
        async with s.get(web.url + "/admin/concerts/1/queue", headers=ADMIN) as r:
            figures = await r.json()
        assert figures["paused"] is True and figures["admitted_total"] == 0
        # The operator sees it: the failures, and the connections made again.
        after = await _store_figures(s, web.url)
        assert after["errors", "redis"] >= 1, after
        assert after["opened", "redis"] > before["opened", "redis"], (before, after)
        assert after["errors", "postgres"] == before["errors", "postgres"]
        # The open socket is served again once positions move.
        async with s.delete(web.url + "/api/v1/queue",
                            headers={"Authorization": f"Bearer {tokens[0]}"}) as r:
            assert r.status == 204
        frame = await ws.receive_json(timeout=10)
        assert frame == {"type": "position", "position": 9, "eta_seconds": None, "admit_rate": 10.0,
                         "eta_range": None}
        await ws.close()


async def test_redis_back_empty_restores_settings_and_tells_sockets(spawn: Spawn, add_concert: Any,
                                                                    tmp_path: Path) -> None:
    amnesiac = RedisServer(tmp_path, appendonly=False)
    amnesiac.start()
    try:
        await add_concert()
        env = {"REDIS_URL": amnesiac.url, "WAIT_GRACE": "60"}
        web = await spawn("web", **env)
        await spawn("admitter", **env)
        async with aiohttp.ClientSession() as s:
            async with s.patch(web.url + "/admin/concerts/1/queue", headers=ADMIN,
                               json={"paused": True, "admit_rate": 2.5}) as r:
                assert r.status == 200
            await _admitter_ticked(amnesiac)  # on a busy machine it may take a while to start
            tokens = []
            for user in range(1, 6):
                async with s.post(web.url + "/api/v1/concerts/1/queue", json={"user_id": user}) as r:
                    tokens.append((await r.json())["token"])
            ws = await s.ws_connect(f"{web.url}/ws/queue?token={tokens[2]}")
            assert (await ws.receive_json(timeout=5))["position"] == 3
            amnesiac.stop()
            amnesiac.start()  # no AOF: it comes back empty
            # The socket is told its token is gone, never shown another queue's positions.
            while True:
                msg = await ws.receive(timeout=10)
                if msg.type == aiohttp.WSMsgType.TEXT:
                    assert msg.json()["type"] != "position", msg.data
                    continue
                break
            assert ws.close_code == 4401
            status, headers, _ = await _poll(s, web.url, tokens[0])
            assert (status, headers["_body"]["code"]) == (401, "token_invalid")

            async def restored() -> bool:
                async with s.get(web.url + "/admin/concerts/1/queue", headers=ADMIN) as r:
                    figures = await r.json()
                    return bool(figures["paused"]) and figures["admit_rate"] == 2.5

            await eventually(restored, timeout=10)
            # Joining again works, and nobody is admitted on a concert the operator paused.
            async with s.post(web.url + "/api/v1/concerts/1/queue", json={"user_id": 1}) as r:
                assert r.status == 201
            await asyncio.sleep(0.5)  # several admitter ticks (0.1 s each)
            async with s.get(web.url + "/admin/concerts/1/queue", headers=ADMIN) as r:
                assert (await r.json())["admitted_total"] == 0
    finally:
        if amnesiac.proc is not None and amnesiac.proc.poll() is None:
            amnesiac.stop()


async def _admitter_ticked(server: RedisServer) -> None:
    """Wait until an admitter has run a tick on concert 1 (its state records the tick)."""
    from redis.asyncio import Redis

    from waitingroom.keys import ConcertKeys

    direct = Redis.from_url(server.url)
    try:
        async def ticked() -> bool:
            return bool(await direct.hexists(ConcertKeys(1).state, "last_ms"))

        await eventually(ticked, timeout=30, interval=0.1)
    finally:
        await direct.aclose()


async def _first_frame(s: aiohttp.ClientSession, url: str, token: str) -> tuple[int | None, Any]:
    """Open a socket: (close code, None) if it is closed first, else (None, its first frame)."""
    async with s.ws_connect(f"{url}/ws/queue?token={token}") as ws:
        msg = await ws.receive(timeout=10)
        if msg.type == aiohttp.WSMsgType.TEXT:
            return None, msg.json()
        return ws.close_code, None


async def test_sockets_are_told_1013_while_redis_is_away_and_come_back_to_their_place(
        spawn: Spawn, add_concert: Any, own_redis: RedisServer) -> None:
    from redis.asyncio import Redis

    from waitingroom.keys import ConcertKeys

    await add_concert()
    env = {"REDIS_URL": own_redis.url, "WAIT_GRACE": "60"}
    web = await spawn("web", **env)
    async with aiohttp.ClientSession() as s:
        async with s.patch(web.url + "/admin/concerts/1/queue", headers=ADMIN,
                           json={"paused": True}) as r:
            assert r.status == 200
        tokens = []
        for user in range(1, 5):
            async with s.post(web.url + "/api/v1/concerts/1/queue", json={"user_id": user}) as r:
                tokens.append((await r.json())["token"])
        leaving = await s.ws_connect(f"{web.url}/ws/queue?token={tokens[1]}")
        staying = await s.ws_connect(f"{web.url}/ws/queue?token={tokens[2]}")
        assert [(await w.receive_json(timeout=5))["position"] for w in (leaving, staying)] == [2, 3]

        own_redis.stop()
        lost = time.monotonic()
        # An upgrade while Redis is away: accepted, then closed 1013 (try again later) at once.
        assert await _first_frame(s, web.url, tokens[3]) == (1013, None)
        # Open sockets are not left silent: after a few seconds they are told the same.
        for ws in (leaving, staying):
            msg = await ws.receive(timeout=10)
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1013), msg
        told = time.monotonic() - lost
        assert told < 8
        await leaving.close()
        await staying.close()

        own_redis.start()
        back = time.monotonic()

        async def in_place() -> bool:  # a client reconnecting: its same token, its same place
            code, frame = await _first_frame(s, web.url, tokens[2])
            assert code in (None, 1013)
            return frame is not None and {k: frame.get(k) for k in (
                "type", "position", "eta_seconds", "eta_range", "admit_rate")} == {
                "type": "position", "position": 3, "eta_seconds": None, "eta_range": None,
                "admit_rate": 10.0}

        await eventually(in_place, timeout=15, interval=0.1)
        recovered = time.monotonic() - back
        async with s.ws_connect(f"{web.url}/ws/queue?token={tokens[2]}") as ws:
            assert (await ws.receive_json(timeout=5))["position"] == 3
            # The socket that closed while Redis was away and never came back is not held for
            # ever: its grace period runs (its last sign of life is a time, not +inf), while
            # the one open again is held.
            direct = Redis.from_url(own_redis.url)
            try:
                seen = ConcertKeys(1).seen

                async def released() -> bool:
                    score = await direct.zscore(seen, tokens[1])
                    return score is not None and score != float("inf")

                await eventually(released, timeout=10)
                assert await direct.zscore(seen, tokens[2]) == float("inf")
            finally:
                await direct.aclose()
        print(f"\nredis away: sockets closed 1013 after {told:.1f} s; "
              f"redis back -> position frame in {recovered:.2f} s")
