"""The operators' console: its page, its live socket and the what-if of a proposed setting.

The socket (/admin/ws) takes the admin key as its first frame, never in the URL; its upgrade
counts against the admin rate limit like any admin call. A wrong key closes it with 4401.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import msgspec
from aiohttp import WSMsgType, web
from redis.exceptions import RedisError

from booking.wire import path_id, read_json, reply

from . import admission, inventory
from .appkeys import CONCERTS, MEASURES, PG, QUEUES, SETTINGS
from .headers import secure
from .logs import describe
from .schemas import ConsoleAuth, ConsoleConcert, ConsoleFrame, WhatIfRequest
from .views import STATIC, _admin, admin_answer, admin_key_matches, admin_on

log = logging.getLogger(__name__)

# Close codes of the console socket (4000-4999: the application's own).
CLOSE_UNAUTHORIZED = 4401  # the first frame was not {"type": "auth", "key": <the admin key>}
CLOSE_AUTH_TIMEOUT = 4408  # no first frame within AUTH_TIMEOUT seconds
AUTH_TIMEOUT = 10.0
# The console is updated this often (or at every admitter tick, when ticks are quicker).
UPDATE_INTERVAL = 1.0

_encode = msgspec.json.Encoder().encode
_decode_auth = msgspec.json.Decoder(ConsoleAuth).decode


async def console_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "admin.html", headers={"Cache-Control": "no-cache"})


async def what_if(request: web.Request) -> web.Response:
    """What a proposed admit_rate / max_active would do: nothing is changed."""
    _admin(request)
    concert_id = path_id(request, "concert_id")
    body = await read_json(request, WhatIfRequest)
    await request.app[CONCERTS].require(concert_id)
    queues, s = request.app[QUEUES], request.app[SETTINGS]
    figures = (await queues.figures([concert_id]))[concert_id]
    measured = await admission.demand(request.app[PG], [concert_id], request.app[MEASURES])
    p95 = await queues.booking_p95(int(2 * s.booking_latency_window * 1000))
    return reply(inventory.what_if(
        figures, None if measured is None else measured.get(concert_id),
        None if body.admit_rate is msgspec.UNSET else body.admit_rate,
        None if body.max_active is msgspec.UNSET else body.max_active,
        p95, s.booking_p95_bound, s.max_seats_per_user))


async def frame(app: web.Application) -> ConsoleFrame:
    """Every concert's figures, as the console shows them."""
    rows = await app[CONCERTS].all()
    ids = [r["id"] for r in rows]
    queues = app[QUEUES]
    answers = await asyncio.gather(*(admin_answer(app, cid) for cid in ids))
    figures = await queues.figures(ids)
    measured = await admission.demand(app[PG], ids, app[MEASURES]) if ids else {}
    default_seats = app[SETTINGS].max_seats_per_user
    out = []
    for row, answer in zip(rows, answers, strict=True):
        f = figures[row["id"]]
        d = None if measured is None else measured.get(row["id"])
        per_buyer, known = d.seats_per_buyer(default_seats) if d else (None, False)
        out.append(ConsoleConcert(
            id=row["id"], name=row["name"], queue=answer, measured_rate=f.measured_rate,
            sold_out=f.sold_out, on_sale=f.on_sale,
            seats_left=d.seats_left if d else None, holds=d.holds if d else None,
            sold=d.sold if d else None, orders=d.orders if d else None,
            completed=d.completed if d else None, timed_out=d.timed_out if d else None,
            left=d.left_early if d else None,
            seats_per_buyer=round(per_buyer, 4) if per_buyer is not None else None,
            seats_per_buyer_measured=known))
    return ConsoleFrame(at_ms=await queues.clock_ms(), concerts=out)


async def _authenticated(ws: web.WebSocketResponse, key: str) -> bool:
    try:
        msg = await ws.receive(timeout=AUTH_TIMEOUT)
    except TimeoutError:
        await ws.close(code=CLOSE_AUTH_TIMEOUT, message=b"no auth frame")
        return False
    if msg.type == WSMsgType.TEXT:
        try:
            auth = _decode_auth(msg.data)
        except msgspec.DecodeError:
            auth = None
        if auth is not None and admin_key_matches(key, auth.key):
            return True
    if not ws.closed:
        await ws.close(code=CLOSE_UNAUTHORIZED, message=b"admin_unauthorized")
    return False


async def admin_socket(request: web.Request) -> web.WebSocketResponse:
    """Live figures of every concert, once a second, after the admin key."""
    key = admin_on(request)
    settings = request.app[SETTINGS]
    ws = web.WebSocketResponse(heartbeat=settings.ws_heartbeat, compress=False,
                               max_msg_size=settings.ws_max_message)
    secure(ws)
    await ws.prepare(request)
    if not await _authenticated(ws, key):
        return ws
    interval = min(UPDATE_INTERVAL, settings.tick_interval)

    async def drain() -> None:
        async for _ in ws:  # the console says nothing more; reading notices a close
            pass

    reader = asyncio.create_task(drain())
    try:
        while not ws.closed and not reader.done():
            try:
                await ws.send_str(_encode(await frame(request.app)).decode())
            except (OSError, asyncpg.PostgresError, RedisError) as e:
                log.warning("console figures failed: %s", describe(e))
            await asyncio.wait([reader], timeout=interval)
    finally:
        reader.cancel()
    return ws


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin", console_page)
    app.router.add_get("/admin/ws", admin_socket)
    app.router.add_post("/admin/concerts/{concert_id}/what-if", what_if)
