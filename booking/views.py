"""HTTP handlers of booking and balance. Thin: gate, validation, one booking call, one answer."""

from __future__ import annotations

from datetime import datetime

import msgspec
from aiohttp import web

from . import errors, holds, payments, queries, refunds
from .context import BOOKING
from .gate import Holder
from .schemas import (
    BalanceOut,
    BookingOut,
    ChargeRequest,
    HeldSeat,
    HoldRequest,
    PaymentOut,
    PaymentRequest,
    PreviewScheduleOut,
    RefundOut,
    ReservationOut,
    ScheduleOut,
    SeatOut,
)
from .wire import bearer, path_id, read_json, reply

IDEMPOTENCY_KEY = "Idempotency-Key"
# Seat numbers are PostgreSQL integers.
MAX_SEAT = 2**31 - 1
# Seat maps this long are worth compressing (when the client accepts it).
COMPRESS_FROM_SEATS = 50
# "My bookings" lists this many of the newest reservations.
MY_BOOKINGS_LIMIT = 200
MAX_KEY_LENGTH = 64


async def holder(request: web.Request) -> Holder:
    """The request's bearer token as the queue keeps it (reading it is not a queue poll)."""
    return await request.app[BOOKING].gate.holder(bearer(request))


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- reads --------------------------------------------------------------------------------
async def list_schedules(request: web.Request) -> web.Response:
    concert_id = path_id(request, "concert_id")
    (await holder(request)).admitted_to(concert_id)
    rows = await queries.list_schedules(request.app[BOOKING].pool, concert_id)
    return reply([ScheduleOut(id=r["id"], concert_date=r["concert_date"].isoformat(),
                              available_seats=r["available_seats"]) for r in rows])


async def seat_map(request: web.Request) -> web.Response:
    schedule_id = path_id(request, "schedule_id")
    who = await holder(request)
    who.admitted()
    shop = request.app[BOOKING]
    who.check_concert(await shop.schedules.concert_of(shop.pool, schedule_id))
    first, last = _seat_range(request)
    # The version first: the seats read after it are at least that new, so an ETag never claims
    # more than its answer shows.
    version = await queries.seat_map_version(shop.pool, schedule_id)
    etag = f"{schedule_id}.{version}.{first}-{last}"
    if etag in _if_none_match(request):
        return web.Response(status=304, headers={"ETag": f'"{etag}"', "Cache-Control": "no-cache"})
    rows = await queries.seat_map(shop.pool, schedule_id, first, last)
    response = reply([SeatOut(seat_number=r["seat_number"], price=r["price"], status=r["status"])
                      for r in rows])
    response.headers["ETag"] = f'"{etag}"'
    response.headers["Cache-Control"] = "no-cache"
    if len(rows) >= COMPRESS_FROM_SEATS:
        response.enable_compression()
    return response


def _seat_range(request: web.Request) -> tuple[int, int]:
    """?from=&to= (seat numbers, both optional, inclusive)."""
    bounds = []
    for name, default in (("from", 1), ("to", MAX_SEAT)):
        raw = request.query.get(name)
        if raw is None:
            bounds.append(default)
        elif raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_SEAT:
            bounds.append(int(raw))
        else:
            raise errors.ValidationFailed(f"{name} must be a seat number, 1 .. {MAX_SEAT}",
                                          field=name)
    if bounds[0] > bounds[1]:
        raise errors.ValidationFailed("from must not be above to", field="from")
    return bounds[0], bounds[1]


def _if_none_match(request: web.Request) -> set[str]:
    raw = request.headers.get("If-None-Match", "")
    return {tag.strip().removeprefix("W/").strip('"') for tag in raw.split(",") if tag.strip()}


# -- previews, while waiting ---------------------------------------------------------------
async def preview_schedules(request: web.Request) -> web.Response:
    concert_id = path_id(request, "concert_id")
    who = await holder(request)
    who.live()
    who.check_concert(concert_id)
    rows = await request.app[BOOKING].preview_dates.get(concert_id)
    return reply([PreviewScheduleOut(id=r["id"], concert_date=r["concert_date"].isoformat(),
                                     available_seats=r["available_seats"], price_min=r["price_min"],
                                     price_max=r["price_max"]) for r in rows])


async def preview_seats(request: web.Request) -> web.Response:
    schedule_id = path_id(request, "schedule_id")
    who = await holder(request)
    who.live()
    shop = request.app[BOOKING]
    who.check_concert(await shop.schedules.concert_of(shop.pool, schedule_id))
    rows = await shop.preview_maps.get(schedule_id)
    return reply([SeatOut(seat_number=r["seat_number"], price=r["price"], status=r["status"])
                  for r in rows])


# -- holds --------------------------------------------------------------------------------
def _check_hold(body: HoldRequest) -> None:
    if (body.seat_numbers is msgspec.UNSET) == (body.quantity is msgspec.UNSET):
        raise errors.ValidationFailed("Send exactly one of seat_numbers and quantity",
                                      field="seat_numbers")
    if isinstance(body.seat_numbers, list) and len(set(body.seat_numbers)) != len(body.seat_numbers):
        raise errors.ValidationFailed("A seat number appears twice", field="seat_numbers")


async def create_reservation(request: web.Request) -> web.Response:
    who = await holder(request)
    body = await read_json(request, HoldRequest)
    _check_hold(body)
    user_id = who.admitted()
    shop = request.app[BOOKING]
    who.check_concert(await shop.schedules.concert_of(shop.pool, body.schedule_id))
    settings = shop.settings
    async with shop.pool.acquire() as conn:
        held = await holds.hold(
            conn, user_id=user_id, schedule_id=body.schedule_id,
            seat_numbers=body.seat_numbers if isinstance(body.seat_numbers, list) else None,
            quantity=body.quantity if isinstance(body.quantity, int) else None,
            ttl_seconds=settings.hold_ttl, max_seats=settings.max_seats_per_user)
    return reply(ReservationOut(
        id=held.id, schedule_id=held.schedule_id,
        seats=[HeldSeat(seat_number=n, price=p) for n, p in held.seats],
        total_price=held.total_price, status="WAITING",
        hold_expires_at=_time(held.hold_expires_at)), status=201)


async def get_reservation(request: web.Request) -> web.Response:
    reservation_id = path_id(request, "reservation_id")
    who = await holder(request)
    user_id = who.admitted()
    row = await queries.get_reservation(request.app[BOOKING].pool, reservation_id, user_id)
    if row is None:
        raise errors.ReservationNotFound(f"You have no reservation {reservation_id}")
    who.check_concert(row["concert_id"])
    return reply(ReservationOut(
        id=row["id"], schedule_id=row["schedule_id"],
        seats=[HeldSeat(seat_number=n, price=p)
               for n, p in zip(row["seat_numbers"], row["prices"], strict=True)],
        total_price=row["total_price"], status="EXPIRED" if row["ran_out"] else row["status"],
        hold_expires_at=_time(row["hold_expires_at"])))


async def delete_reservation(request: web.Request) -> web.Response:
    reservation_id = path_id(request, "reservation_id")
    who = await holder(request)
    user_id = who.admitted()
    async with request.app[BOOKING].pool.acquire() as conn:
        await holds.release(conn, reservation_id=reservation_id, user_id=user_id,
                            check_concert=who.check_concert)
    return web.Response(status=204)


# -- payments -----------------------------------------------------------------------------
def _idempotency_key(request: web.Request) -> str:
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is None:
        raise errors.ValidationFailed("The Idempotency-Key header is required",
                                      field=IDEMPOTENCY_KEY)
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise errors.ValidationFailed(
            f"The Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
            field=IDEMPOTENCY_KEY)
    return key


async def create_payment(request: web.Request) -> web.Response:
    who = await holder(request)
    body = await read_json(request, PaymentRequest)
    key = _idempotency_key(request)
    shop = request.app[BOOKING]
    async with shop.pool.acquire() as conn:
        paid = await payments.pay(conn, holder=who, reservation_id=body.reservation_id, key=key,
                                  fingerprint=payments.request_hash(body))
    if paid.token_to_expire and await payments.expire_token(
            shop.gate, paid.id, who.token, shop.settings.token_expiry_timeout,
            logged=paid.token_logged):
        shop.ended_tokens.add(paid.id)
    return reply(PaymentOut(id=paid.id, reservation_id=paid.reservation_id, amount=paid.amount,
                            state="COMPLETED", balance=paid.balance), status=201)


async def refund_payment(request: web.Request) -> web.Response:
    payment_id = path_id(request, "payment_id")
    user_id = (await holder(request)).live()
    key = _idempotency_key(request)
    async with request.app[BOOKING].pool.acquire() as conn:
        done = await refunds.refund(conn, user_id=user_id, payment_id=payment_id, key=key)
    return reply(RefundOut(id=done.payment_id, reservation_id=done.reservation_id,
                           amount=done.amount, state="CANCELED", balance=done.balance))


# -- my bookings --------------------------------------------------------------------------
async def my_bookings(request: web.Request) -> web.Response:
    user_id = (await holder(request)).live()
    rows = await queries.my_reservations(request.app[BOOKING].pool, user_id, MY_BOOKINGS_LIMIT)
    return reply([BookingOut(
        id=r["id"], schedule_id=r["schedule_id"], concert_id=r["concert_id"],
        seats=[HeldSeat(seat_number=n, price=p)
               for n, p in zip(r["seat_numbers"], r["prices"], strict=True)],
        total_price=r["total_price"], status="EXPIRED" if r["ran_out"] else r["status"],
        hold_expires_at=_time(r["hold_expires_at"]), payment_id=r["payment_id"]) for r in rows])


# -- balance ------------------------------------------------------------------------------
async def get_balance(request: web.Request) -> web.Response:
    user_id = (await holder(request)).live()
    return reply(BalanceOut(balance=await queries.get_balance(request.app[BOOKING].pool, user_id)))


async def charge_balance(request: web.Request) -> web.Response:
    user_id = (await holder(request)).live()
    body = await read_json(request, ChargeRequest)
    return reply(BalanceOut(balance=await queries.charge(request.app[BOOKING].pool, user_id,
                                                         body.amount)), status=201)


def add_routes(app: web.Application) -> None:
    """Booking and balance routes; the app must hold a Booking under BOOKING once started."""
    app.router.add_get("/api/v1/concerts/{concert_id}/schedules", list_schedules)
    app.router.add_get("/api/v1/schedules/{schedule_id}/seats", seat_map)
    app.router.add_get("/api/v1/concerts/{concert_id}/preview", preview_schedules)
    app.router.add_get("/api/v1/schedules/{schedule_id}/preview", preview_seats)
    app.router.add_post("/api/v1/reservations", create_reservation)
    app.router.add_get("/api/v1/reservations/{reservation_id}", get_reservation)
    app.router.add_delete("/api/v1/reservations/{reservation_id}", delete_reservation)
    app.router.add_post("/api/v1/payments", create_payment)
    app.router.add_post("/api/v1/payments/{payment_id}/refund", refund_payment)
    app.router.add_get("/api/v1/reservations", my_bookings)
    app.router.add_get("/api/v1/balance", get_balance)
    app.router.add_post("/api/v1/balance/charges", charge_balance)
