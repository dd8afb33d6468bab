"""The admitter's booking sweeps: run-out holds end, their seats go back on sale, once."""

from __future__ import annotations

import asyncio

from booking import queries
from booking.context import BookingSettings
from booking.sweeper import sweep
from tests.booking_support import Shop, make_shop, shop  # noqa: F401
from waitingroom import admission


async def _run_out(shop: Shop, *reservation_ids: int) -> None:
    async with shop.pg.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE reservations SET hold_expires_at = now() - interval '1 s'"
                           " WHERE id = ANY($1::bigint[])", list(reservation_ids))
        await conn.execute("UPDATE concert_seats SET hold_expires_at = now() - interval '1 s'"
                           " WHERE reservation_id = ANY($1::bigint[])", list(reservation_ids))


async def test_admitter_tick_expires_run_out_holds(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=30)
    tokens = await shop.buyers(concert_id, range(1, 11))
    held = [(await shop.hold(t, s1, quantity=3)).body["id"] for t in tokens]
    await _run_out(shop, *held[:7])
    await admission.tick(shop.queues, shop.pg)
    states = [await shop.pg.fetchval("SELECT status FROM reservations WHERE id = $1", r)
              for r in held]
    assert states == ["EXPIRED"] * 7 + ["WAITING"] * 3
    assert await shop.pg.fetchval(
        "SELECT count(*) FROM concert_seats WHERE status = 'AVAILABLE'") == 21
    await shop.audit()


async def test_many_sweepers_at_once(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=200)
    tokens = await shop.buyers(concert_id, range(1, 51))
    held = [(await shop.hold(t, s1, quantity=4)).body["id"] for t in tokens]
    await _run_out(shop, *held)
    outcomes = await asyncio.gather(*(sweep(None, shop.pg, BookingSettings(sweep_batch=7)) for _ in range(8)))
    while (more := await sweep(None, shop.pg, BookingSettings(sweep_batch=7))).expired_holds:
        outcomes.append(more)
    assert sum(o.expired_holds for o in outcomes) == 50
    assert sum(o.released_seats for o in outcomes) == 200
    assert await shop.pg.fetchval("SELECT count(*) FROM reservations WHERE status = 'EXPIRED'") == 50
    await shop.audit()


async def test_stray_pending_seats_are_released(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=3)
    token = await shop.buyer(concert_id, 1)
    rid = (await shop.hold(token, s1, seats=[1, 2])).body["id"]
    await _run_out(shop, rid)
    # The reservation ended while its seats stayed PENDING (as when a hold took one of them
    # and could not lock the other at that moment).
    await shop.pg.execute("UPDATE reservations SET status = 'EXPIRED' WHERE id = $1", rid)
    assert await queries.release_orphans(shop.pg, 100) == 2
    assert await shop.pg.fetchval(
        "SELECT count(*) FROM concert_seats WHERE status = 'AVAILABLE'") == 3
    await shop.audit()
