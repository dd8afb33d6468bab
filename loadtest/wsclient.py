"""A WebSocket load client, run as its own process so that the server is what gets measured.

It opens many waiting sockets (joining the queue first for the gateway), then follows commands on
stdin, one per line: `stats` prints the frame counts so far, `stop` (or end of input) closes the
sockets and prints the final figures, including when each `admitted` frame arrived.

    python -m loadtest.wsclient '{"url": "http://127.0.0.1:8080", "gateway": true, ...}'
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp
import msgspec
import uvloop

from .procstat import raise_nofile

_decode = msgspec.json.Decoder(dict[str, Any]).decode


class Client:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.url: str = cfg["url"].rstrip("/")
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.frames: dict[str, int] = {}
        self.admitted: dict[str, float] = {}
        self.closes: dict[str, int] = {}
        self.failed = 0
        self.errors: dict[str, int] = {}

    def emit(self, **fields: Any) -> None:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()

    async def open_one(self, session: aiohttp.ClientSession, user_id: int,
                       gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                if self.cfg["gateway"]:
                    async with session.post(f"{self.url}/api/v1/concerts/{self.cfg['concert_id']}/queue",
                                            json={"user_id": user_id}) as r:
                        body = await r.json()
                        if r.status not in (200, 201):
                            raise RuntimeError(f"join {r.status}")
                    token = body["token"]
                    ws = await session.ws_connect(f"{self.url}/ws/queue?token={token}",
                                                  autoping=True, max_msg_size=0)
                else:
                    token = str(user_id)
                    ws = await session.ws_connect(f"{self.url}/ws/queue", autoping=True,
                                                  max_msg_size=0)
            except Exception as e:  # counted and reported; one failed socket is not fatal
                self.failed += 1
                key = type(e).__name__
                self.errors[key] = self.errors.get(key, 0) + 1
                return
            self.sockets.append(ws)
            asyncio.get_running_loop().create_task(self.read(ws, token))

    async def read(self, ws: aiohttp.ClientWebSocketResponse, token: str) -> None:
        frames = self.frames
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            kind = _decode(msg.data).get("type", "?")
            frames[kind] = frames.get(kind, 0) + 1
            if kind == "admitted":
                self.admitted[token] = time.time()
        code = str(ws.close_code)
        self.closes[code] = self.closes.get(code, 0) + 1

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, local_addr=(self.cfg["local_ip"], 0),
                                         force_close=False)
        timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_read=None)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            started = time.monotonic()
            gate = asyncio.Semaphore(self.cfg.get("concurrency", 100))
            first, count = self.cfg["first_user"], self.cfg["count"]
            await asyncio.gather(*(self.open_one(session, u, gate)
                                   for u in range(first, first + count)))
            self.emit(event="ready", connected=len(self.sockets), failed=self.failed,
                      errors=self.errors, seconds=time.monotonic() - started)
            reader = asyncio.StreamReader()
            loop = asyncio.get_running_loop()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
            deadline = time.monotonic() + self.cfg.get("max_seconds", 900)
            while time.monotonic() < deadline:
                try:
                    line = await asyncio.wait_for(reader.readline(), deadline - time.monotonic())
                except TimeoutError:
                    break
                cmd = line.decode().strip()
                if cmd == "stats":
                    open_ = sum(1 for ws in self.sockets if not ws.closed)
                    self.emit(event="stats", t=time.time(), frames=self.frames, open=open_)
                    continue
                break  # "stop" or end of input
            await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        self.emit(event="done", frames=self.frames, admitted=self.admitted, closes=self.closes)


def main() -> None:
    raise_nofile()
    uvloop.run(Client(json.loads(sys.argv[1])).run())


if __name__ == "__main__":
    main()
