"""The live queue over a WebSocket: positions, then admission, then expiry."""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import WSMsgType, web

from booking.errors import TokenInvalid
from booking.wire import valid_token

from .appkeys import LEASE, QUEUES, SETTINGS, SOCKETS
from .errors import OriginNotAllowed
from .headers import secure
from .metrics import store_failed
from .problems import unavailable
from .records import rfc3339
from .schemas import ExpiredFrame, PingFrame, PongFrame, PreQueueFrame
from .sockets import CLOSE_EXPIRED, CLOSE_STORE_DOWN, CLOSE_UNKNOWN, Waiter

_encode = msgspec.json.Encoder().encode
_decode_ping = msgspec.json.Decoder(PingFrame).decode


async def queue_socket(request: web.Request) -> web.WebSocketResponse:
    """The upgrade always succeeds; a bad token is then closed with its code, and so is any
    socket while Redis cannot be reached (1013: reconnect later, the place is kept)."""
    settings = request.app[SETTINGS]
    origin = request.headers.get("Origin")
    if origin is not None and settings.origins and origin.rstrip("/") not in settings.origins:
        raise OriginNotAllowed(f"{origin[:100]} is not in ALLOWED_ORIGINS")
    # permessage-deflate off: it costs ~89 KB per socket and makes sends several times slower.
    ws = web.WebSocketResponse(heartbeat=settings.ws_heartbeat, compress=False,
                               max_msg_size=settings.ws_max_message)
    secure(ws)
    await ws.prepare(request)
    sockets, lease = request.app[SOCKETS], request.app[LEASE]
    try:
        token = valid_token(request.query.get("token"))
    except TokenInvalid:
        await ws.close(code=CLOSE_UNKNOWN, message=b"unknown or malformed token")
        return ws
    # One token's sockets open and close here one at a time (see Lease.one_at_a_time).
    ticket, waiter, store_down = None, None, False
    async with lease.one_at_a_time(token):
        try:
            ticket = await request.app[QUEUES].attach(token, lease.proc_id)
        except TokenInvalid:
            pass
        except Exception as e:
            if not unavailable(e):
                raise
            store_failed(e)
            store_down = True
        if ticket is not None and ticket.record.state != "EXPIRED":
            rec = ticket.record
            waiter = Waiter(ws=ws, transport=request.transport, protocol=request.protocol,
                            token=ticket.token, concert_id=ticket.concert_id, ticket=rec.ticket,
                            waiting=rec.state == "WAITING", expires_ms=rec.expires_ms,
                            opens_ms=ticket.opens_ms)
            view = sockets.add(waiter)
    if store_down:
        await ws.close(code=CLOSE_STORE_DOWN, message=b"queue store unreachable; reconnect later")
        return ws
    if ticket is None:
        await ws.close(code=CLOSE_UNKNOWN, message=b"unknown or malformed token")
        return ws
    if waiter is None:  # expired
        await ws.send_str(_encode(ExpiredFrame(reason=ticket.record.reason or "timeout")).decode())
        await ws.close(code=CLOSE_EXPIRED, message=b"token expired")
        return ws
    try:
        if waiter.waiting:
            if view.rate is None:
                view.rate = ticket.rate
            if ticket.opens_ms is not None:
                # In the pre-queue: the position comes after the draw (positions.py).
                await sockets.send(waiter, PreQueueFrame(opens_at=rfc3339(ticket.opens_ms)))
            elif ticket.rate.sold_out:
                await sockets.tell_sold_out(waiter, True)
            else:
                await sockets.position(waiter, view, ticket.position or 1)
        else:
            await sockets.admitted(waiter, waiter.expires_ms)
        loop = asyncio.get_running_loop()
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            if not waiter.may_speak(settings.ws_client_rate, loop.time()):
                if waiter.refused > settings.ws_flood_limit:
                    sockets.abort(waiter)  # a flood: whoever sends it is not listening either
                    break
                continue
            try:
                _decode_ping(msg.data)
            except msgspec.DecodeError:
                continue  # anything but a ping is ignored
            await sockets.send(waiter, PongFrame())
    finally:
        await lease.closed(waiter)
    return ws
