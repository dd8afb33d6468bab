"""The booking ceiling: a bare aiohttp + uvloop + asyncpg process that runs one plain statement per
request (loadtest/plain.py), measured with the same HTTP client as the gateway.

    POST /hold   {"schedule_id": S, "quantity": Q}  -> 201 {"ids": [...]}, 409 when none is free
    POST /pay    {"reservation_id": SEAT}           -> 201 {"id": P}, 409 when not held
    GET  /dates/{concert_id}                        -> the plain dates list
    GET  /seats                                     -> the bytes in --body as they are (with
                                                       --encoding and --etag), 304 on a match

    python -m loadtest.bare_booking --port P --dsn DSN [--body FILE --etag E --encoding gzip]
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import msgspec
import uvloop
from aiohttp import web

from . import plain
from .procstat import raise_nofile


class HoldIn(msgspec.Struct):
    schedule_id: int
    quantity: int = 1


class PayIn(msgspec.Struct):
    reservation_id: int


class Date(msgspec.Struct):
    id: int
    concert_date: str
    available_seats: int


POOL = web.AppKey("pool", asyncpg.Pool)
SEATS = web.AppKey("seats", tuple)  # (body, etag, encoding)
PRICE = 10_000
_encode = msgspec.json.Encoder().encode
_hold_in = msgspec.json.Decoder(HoldIn).decode
_pay_in = msgspec.json.Decoder(PayIn).decode


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_encode(body), content_type="application/json")


async def hold(request: web.Request) -> web.Response:
    body = _hold_in(await request.read())
    rows = await request.app[POOL].fetch(plain.HOLD, body.schedule_id, body.quantity)
    if not rows:
        return _json({"error": "sold out"}, 409)
    return _json({"ids": [r["id"] for r in rows]}, 201)


async def pay(request: web.Request) -> web.Response:
    body = _pay_in(await request.read())
    seat = body.reservation_id
    paid = await request.app[POOL].fetchval(plain.PAY, seat, seat, PRICE)
    if paid is None:
        return _json({"error": "not held"}, 409)
    return _json({"id": paid}, 201)


async def dates(request: web.Request) -> web.Response:
    rows = await request.app[POOL].fetch(plain.DATES, int(request.match_info["concert_id"]))
    return _json([Date(r["id"], r["concert_date"].isoformat(), r["available"]) for r in rows])


async def seats(request: web.Request) -> web.Response:
    body, etag, encoding = request.app[SEATS]
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    if encoding:
        headers["Content-Encoding"] = encoding
    return web.Response(body=body, headers=headers, content_type="application/json")


async def stats(request: web.Request) -> web.Response:
    return _json({})


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to reset: an open transaction is rolled back by the pool itself."""


def create_app(dsn: str, pool_size: int, body: bytes, etag: str, encoding: str) -> web.Application:
    app = web.Application()
    app[SEATS] = (body, etag, encoding)

    async def pool(app: web.Application) -> AsyncIterator[None]:
        # No reset query on release, as the gateway's pool: the ceiling never does more.
        app[POOL] = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size,
                                              reset=_keep_session)
        yield
        await app[POOL].close()

    app.cleanup_ctx.append(pool)
    app.router.add_post("/hold", hold)
    app.router.add_post("/pay", pay)
    app.router.add_get("/dates/{concert_id}", dates)
    app.router.add_get("/seats", seats)
    app.router.add_get("/stats", stats)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bare_booking")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--body", type=Path)
    parser.add_argument("--etag", default='"bare"')
    parser.add_argument("--encoding", default="")
    args = parser.parse_args()
    raise_nofile()
    body = args.body.read_bytes() if args.body else b"[]"
    web.run_app(create_app(args.dsn, args.pool_size, body, args.etag, args.encoding),
                host="127.0.0.1", port=args.port, access_log=None, backlog=4096,
                print=lambda *a: print(*a, flush=True), loop=uvloop.new_event_loop(),
                shutdown_timeout=2)


if __name__ == "__main__":
    main()
