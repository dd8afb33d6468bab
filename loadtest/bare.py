"""The ceiling: a bare aiohttp + uvloop process measured with the same clients as the gateway.

It answers the join path with a small JSON object, holds WebSockets set up exactly like the
gateway's (same heartbeat, no compression) and sends every socket one position-like frame a
second. GET /stats tells how many sockets it holds and how long its last send loop took.

    python -m loadtest.bare --port 8099 [--reuse-port]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import msgspec
import uvloop
from aiohttp import WSCloseCode, web

from .procstat import raise_nofile


class Join(msgspec.Struct):
    user_id: int


class Position(msgspec.Struct, tag_field="type", tag="position"):
    position: int
    eta_seconds: int | None
    admit_rate: float


class Stats(msgspec.Struct):
    sockets: int
    frames_sent: int
    ticks: int
    last_tick_seconds: float
    busy_seconds: float  # send-loop time summed over every tick


SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("sockets")
STATS = web.AppKey("stats", Stats)
_encode = msgspec.json.Encoder().encode
_decode_join = msgspec.json.Decoder(Join).decode


async def join(request: web.Request) -> web.Response:
    body = _decode_join(await request.read())
    out = {"token": "00000000-0000-4000-8000-000000000000", "state": "WAITING",
           "position": body.user_id, "eta_seconds": None, "expires_at": None,
           "ws_url": "ws://127.0.0.1/ws"}
    return web.Response(status=201, body=_encode(out), content_type="application/json")


async def socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30.0, compress=False, max_msg_size=4096)
    await ws.prepare(request)
    sockets = request.app[SOCKETS]
    sockets.add(ws)
    try:
        async for _ in ws:
            pass
    finally:
        sockets.discard(ws)
    return ws


async def stats(request: web.Request) -> web.Response:
    s = request.app[STATS]
    s.sockets = len(request.app[SOCKETS])
    return web.Response(body=_encode(s), content_type="application/json")


async def send_loop(app: web.Application) -> None:
    """One frame to every socket per second, sent the way the gateway's hub sends them."""
    loop = asyncio.get_running_loop()
    st = app[STATS]
    sockets = app[SOCKETS]
    next_at = loop.time()
    n = 0
    while True:
        next_at += 1.0
        n += 1
        started = time.perf_counter()
        for i, ws in enumerate(list(sockets)):
            if ws.closed:
                continue
            try:
                await ws.send_str(_encode(Position(position=n + i, eta_seconds=n + i // 100,
                                                   admit_rate=100.0)).decode())
            except (ConnectionError, RuntimeError):
                continue
            st.frames_sent += 1
        st.last_tick_seconds = time.perf_counter() - started
        st.busy_seconds += st.last_tick_seconds
        st.ticks += 1
        next_at = max(next_at, loop.time())
        await asyncio.sleep(next_at - loop.time())


async def _ticker(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(send_loop(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close(app: web.Application) -> None:
    sockets = app[SOCKETS]
    for ws in list(sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY)


def create_app() -> web.Application:
    app = web.Application()
    app[SOCKETS] = set()
    app[STATS] = Stats(0, 0, 0, 0.0, 0.0)
    app.router.add_post("/api/v1/concerts/{concert_id}/queue", join)
    app.router.add_get("/ws/queue", socket)
    app.router.add_get("/stats", stats)
    app.cleanup_ctx.append(_ticker)
    app.on_shutdown.append(_close)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bare")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--reuse-port", action="store_true")
    args = parser.parse_args()
    raise_nofile()
    web.run_app(create_app(), host="127.0.0.1", port=args.port, reuse_port=args.reuse_port,
                access_log=None, backlog=4096, print=lambda *a: print(*a, flush=True),
                loop=uvloop.new_event_loop(), shutdown_timeout=2)


if __name__ == "__main__":
    main()
