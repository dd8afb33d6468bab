"""Hostile sockets against a real web process: ping floods from clients that never read are cut
off, while well-behaved clients keep getting their frames and the process's memory stays bounded."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import eventually

FLOODERS = 100
GOOD = 1000
PING = b'{"type":"ping"}'


def _masked_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + body


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def flood(port: int, token: str, deadline: float) -> bool:
    """Ping as fast as possible and never read; True once the server cuts the connection."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(f"GET /ws/queue?token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 f"Sec-WebSocket-Version: 13\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")  # the upgrade answer; nothing is read after it
    burst = _masked_frame(PING) * 500
    try:
        while loop.time() < deadline:
            writer.write(burst)
            await asyncio.wait_for(writer.drain(), max(0.01, deadline - loop.time()))
    except (ConnectionError, OSError, RuntimeError):  # RuntimeError: uvloop, transport gone
        return True
    except TimeoutError:
        return False
    finally:
        writer.transport.abort()
    return False


async def test_ping_floods_are_cut_off_and_others_are_served(spawn: Callable[..., Any],
                                                             add_concert: Any) -> None:
    await add_concert()
    web = await spawn("web", ADMIT_RATE="0", WAIT_GRACE="600")
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as s:
        async def join(user: int) -> str:
            async with s.post(web.url + "/api/v1/concerts/1/queue", json={"user_id": user}) as r:
                return str((await r.json())["token"])

        tokens = await asyncio.gather(*(join(u) for u in range(1, GOOD + FLOODERS + 1)))
        good = [await s.ws_connect(f"{web.url}/ws/queue?token={t}") for t in tokens[:GOOD]]
        for ws in good:
            assert (await ws.receive_json(timeout=10))["type"] == "position"
        before = rss_kb(web.proc.pid)

        loop = asyncio.get_running_loop()
        flooding = [asyncio.create_task(flood(web.port, t, loop.time() + 20)) for t in tokens[GOOD:]]
        await asyncio.sleep(0.5)  # the flood is on

        async def ping_pong(ws: aiohttp.ClientWebSocketResponse) -> float:
            started = time.perf_counter()
            await ws.send_json({"type": "ping"})
            while (await ws.receive_json(timeout=10))["type"] != "pong":
                pass
            return time.perf_counter() - started

        # Every well-behaved client is answered while the flood goes on (10 s is a bound on
        # a hang, not a performance target).
        waits = await asyncio.gather(*(ping_pong(ws) for ws in good))
        assert len(waits) == GOOD
        cut = await asyncio.gather(*flooding)
        assert all(cut), f"{cut.count(False)} flooders were never cut off"
        after = rss_kb(web.proc.pid)
        # Bounded: far less than the 64 KB of unsent output a socket may hold, times the floods.
        assert after - before < FLOODERS * 1024, (before, after)
        # The process still answers as before.
        assert await ping_pong(good[0]) < 10
        for ws in good:
            await ws.close()


STORM = 3000  # upgrades with tokens that name nobody
AT_ONCE = 200


async def test_a_storm_of_upgrades_with_garbage_tokens_does_not_stop_legitimate_clients(
        spawn: Callable[..., Any], add_concert: Any) -> None:
    concert = await add_concert()
    web = await spawn("web", ADMIT_RATE="0", WAIT_GRACE="600")
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as s:
        async def join(user: int) -> str:
            async with s.post(f"{web.url}/api/v1/concerts/{concert}/queue",
                              json={"user_id": user}) as r:
                assert r.status == 201
                return str((await r.json())["token"])

        async def ping_pong(ws: aiohttp.ClientWebSocketResponse) -> None:
            await ws.send_json({"type": "ping"})
            while (await ws.receive_json(timeout=10))["type"] != "pong":
                pass

        tokens = await asyncio.gather(*(join(u) for u in range(1, 101)))
        good = [await s.ws_connect(f"{web.url}/ws/queue?token={t}") for t in tokens]
        for ws in good:
            assert (await ws.receive_json(timeout=10))["type"] == "position"
        before = rss_kb(web.proc.pid)

        # Half of them well formed (each costs the server a Redis lookup), half not.
        garbage = [str(uuid.uuid4()) if i % 2 else f"x{i}-{'%' * (i % 40)}"
                   for i in range(STORM)]
        codes: list[int] = []
        gate = asyncio.Semaphore(AT_ONCE)

        async def upgrade(token: str) -> None:
            async with gate:
                async with s.ws_connect(f"{web.url}/ws/queue", params={"token": token}) as ws:
                    msg = await ws.receive(timeout=10)
                    assert msg.type == aiohttp.WSMsgType.CLOSE, msg
                    codes.append(int(msg.data))

        async def meanwhile() -> None:
            """Legitimate clients in the thick of the storm: answered, and a newcomer gets a
            place (one ping each: a socket may speak 5 times a second)."""
            async def under_way() -> bool:
                return len(codes) >= STORM // 4

            await eventually(under_way, timeout=60)
            await asyncio.gather(*(ping_pong(ws) for ws in good))
            assert len(codes) < STORM, "the storm was over before the clients were served"
            token = await join(10_000)
            async with s.ws_connect(f"{web.url}/ws/queue?token={token}") as ws:
                frame = await ws.receive_json(timeout=10)
                assert (frame["type"], frame["position"]) == ("position", 101)

        storm = asyncio.gather(*(upgrade(t) for t in garbage))
        await asyncio.gather(storm, meanwhile())
        assert codes == [4401] * STORM
        await asyncio.gather(*(ping_pong(ws) for ws in good))
        # Nothing of the refused sockets is kept: far less than a socket's worth of memory each.
        after = rss_kb(web.proc.pid)
        assert after - before < STORM * 16, (before, after)
        async with s.get(f"{web.url}/metrics") as r:
            text = await r.text()
        sockets = [line for line in text.splitlines() if line.startswith("waitingroom_sockets ")]
        assert sockets == ["waitingroom_sockets 100.0"], sockets
        for ws in good:
            await ws.close()
