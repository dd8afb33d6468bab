"""A WebSocket load client, run as its own process so that the server is what gets measured.

It opens many waiting sockets (joining the queue first for the gateway), then follows commands on
stdin, one per line: `stats` prints the frame counts so far, `stop` (or end of input) closes the
sockets and prints the final figures, including when each `admitted` frame arrived.

The sockets are a minimal WebSocket protocol on asyncio transports, not aiohttp's client: a frame
costs a few microseconds here, so thousands of frames a second do not starve the server under
test of CPU or delay the arrival times this client records.

    python -m loadtest.wsclient '{"url": "http://127.0.0.1:8080", "gateway": true, ...}'
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import uvloop

from .procstat import raise_nofile

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA
_ZERO_MASK = b"\x00\x00\x00\x00"  # a client frame must be masked; any key will do


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + _ZERO_MASK + payload


class Socket(asyncio.Protocol):
    def __init__(self, owner: Client, token: str, request: bytes) -> None:
        self.owner = owner
        self.token = token
        self.request = request
        self.buf = bytearray()
        self.upgraded = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed during the upgrade"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:12])
            del buf[:end + 4]
            if not status.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            self.upgraded.set_result(None)
        frames = self.owner.frames
        while len(buf) >= 2:
            opcode, n, head = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, head = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, head = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < head + n:
                return
            payload = bytes(buf[head:head + n])
            del buf[:head + n]
            if opcode == OP_TEXT:
                if payload.startswith(b'{"type":"position"'):
                    frames["position"] = frames.get("position", 0) + 1
                elif payload.startswith(b'{"type":"admitted"'):
                    frames["admitted"] = frames.get("admitted", 0) + 1
                    self.owner.admitted[self.token] = time.time()
                else:
                    frames["other"] = frames.get("other", 0) + 1
            elif opcode == OP_PING and self.transport is not None:
                self.transport.write(client_frame(OP_PONG, payload[:125]))
            elif opcode == OP_CLOSE:
                code = str(int.from_bytes(payload[:2], "big")) if len(payload) >= 2 else "none"
                self.owner.closes[code] = self.owner.closes.get(code, 0) + 1
                self.close()
                return

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.write(client_frame(OP_CLOSE, (1000).to_bytes(2, "big")))
            self.transport.close()


class Client:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.url: str = cfg["url"].rstrip("/")
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.sockets: list[Socket] = []
        self.frames: dict[str, int] = {}
        self.admitted: dict[str, float] = {}
        self.closes: dict[str, int] = {}
        self.failed = 0
        self.errors: dict[str, int] = {}

    def emit(self, **fields: Any) -> None:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()

    async def connect(self, path: str, token: str) -> None:
        request = (f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n").encode()
        loop = asyncio.get_running_loop()
        _, sock = await loop.create_connection(lambda: Socket(self, token, request), self.host,
                                               self.port, local_addr=(self.cfg["local_ip"], 0))
        await asyncio.wait_for(sock.upgraded, 30)
        self.sockets.append(sock)

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
                    await self.connect(f"/ws/queue?token={token}", token)
                else:
                    await self.connect("/ws/queue", str(user_id))
            except Exception as e:  # counted and reported; one failed socket is not fatal
                self.failed += 1
                key = type(e).__name__
                self.errors[key] = self.errors.get(key, 0) + 1

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, local_addr=(self.cfg["local_ip"], 0))
        timeout = aiohttp.ClientTimeout(total=30)
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
            if line.decode().strip() == "stats":
                open_ = sum(1 for s in self.sockets if not s.closed)
                self.emit(event="stats", t=time.time(), frames=self.frames, open=open_)
                continue
            break  # "stop" or end of input
        for sock in self.sockets:
            sock.close()
        await asyncio.sleep(0.5)
        self.emit(event="done", frames=self.frames, admitted=self.admitted, closes=self.closes)


def main() -> None:
    raise_nofile()
    uvloop.run(Client(json.loads(sys.argv[1])).run())


if __name__ == "__main__":
    main()
