"""Inventory-aware admission: never more people admitted than the seats left can serve, slower
while the booking API is slow, the configured rate as the upper bound."""

from __future__ import annotations

import asyncio
import math

import asyncpg

from tests.test_browser import add_show
from waitingroom import admission, inventory, tokenlog
from waitingroom.app import redis_client
from waitingroom.keys import ConcertKeys
from waitingroom.queue import Admission, Queues


async def _tick_after(queues: Queues, pool: asyncpg.Pool, cid: int, seconds: float) -> Admission:
    """One admission tick as if `seconds` of Redis time had passed since the last one."""
    await queues.redis.hset(ConcertKeys(cid).state, "last_ms",
                            await queues.clock_ms() - int(seconds * 1000))
    return (await admission.tick(queues, pool))[cid]


async def _servable(pg: asyncpg.Pool, cid: int, per_order_default: int) -> int:
    """The people the seats left can serve, counted here from the tables themselves."""
    left = await pg.fetchval("SELECT count(*) FROM concert_seats s JOIN concert_schedules sc"
                             " ON sc.id = s.schedule_id WHERE sc.concert_id = $1"
                             " AND s.status <> 'RESERVED'", cid)
    ended, paid = await pg.fetchrow("SELECT count(*) FILTER (WHERE reason IS NOT NULL),"
                                    " count(*) FILTER (WHERE reason = 'completed')"
                                    " FROM waiting_token WHERE concert_id = $1", cid)
    share = max(0.05, paid / ended) if ended >= inventory.MIN_ENDED else 1.0
    servable: float = left / (share * per_order_default)
    return math.floor(servable + 1e-9)


async def test_inventory_mode_never_admits_beyond_what_the_seats_left_can_serve(
        queues: Queues, pg: asyncpg.Pool) -> None:
    cid, sid = await add_show(pg, seats=10)
    for user in range(1, 201):
        await queues.join(cid, user)
    await queues.configure(cid, admit_rate=50.0, admission_mode="inventory")
    per_order = queues.settings.max_seats_per_user  # 4: no orders measured
    await admission.tick(queues, pg)
    seen_caps = set()
    for n in range(24):
        out = await _tick_after(queues, pg, cid, 1.0)
        f = (await queues.figures([cid]))[cid]
        cap = await _servable(pg, cid, per_order)
        assert f.active <= cap, (n, f.active, cap)
        assert len(out.admitted) <= cap
        seen_caps.add(cap)
        if n == 0:
            # 10 seats at 4 per buyer: 2 people, though the rate would allow 50.
            assert len(out.admitted) == 2 and f.rate_reason == "seats_left"
        # Everyone admitted gives up at once (nobody buys): their places free up, and the
        # measured share of buyers falls, so more people per seat may come in.
        ended = [a.token for a in out.admitted]
        for token in ended:
            await queues.end(token, "left")
        await tokenlog.record(queues, pg, tokenlog.TokenChange(cid, expired=ended, reason="left"))
        if n == 14:  # seats sold elsewhere: fewer left
            await pg.execute("DELETE FROM concert_seats WHERE schedule_id = $1 AND seat_number > 3",
                             sid)
    assert len(seen_caps) >= 2  # the bound moved with what was measured and the seats left
    assert (await queues.figures([cid]))[cid].admitted_total > 2


async def test_two_admitters_at_once_stay_within_what_the_seats_left_can_serve(
        queues: Queues, pg: asyncpg.Pool, redis_url: str) -> None:
    cid, _ = await add_show(pg, seats=10)
    for user in range(1, 101):
        await queues.join(cid, user)
    await queues.configure(cid, admit_rate=100.0, admission_mode="inventory")
    other = Queues(redis_client(redis_url, 10), queues.settings)  # another admitter's client
    try:
        await admission.tick(queues, pg)
        for _ in range(6):
            await queues.redis.hset(ConcertKeys(cid).state, "last_ms",
                                    await queues.clock_ms() - 1000)
            await asyncio.gather(admission.tick(queues, pg), admission.tick(other, pg))
            assert (await queues.figures([cid]))[cid].active <= 2  # 10 seats, 4 per buyer
        assert (await queues.figures([cid]))[cid].active == 2
    finally:
        await other.redis.aclose()


async def test_inventory_mode_slows_while_the_booking_api_is_slow(
        queues: Queues, pg: asyncpg.Pool) -> None:
    cid, _ = await add_show(pg, seats=1000)
    for user in range(1, 101):
        await queues.join(cid, user)
    await queues.configure(cid, admit_rate=8.0, max_active=1000, admission_mode="inventory")
    bound = queues.settings.booking_p95_bound
    await queues.report_latency("web-a", bound / 4)
    await queues.report_latency("web-b", bound * 4)  # the worst process counts
    await admission.tick(queues, pg)
    slow = [len((await _tick_after(queues, pg, cid, 1.0)).admitted) for _ in range(4)]
    f = (await queues.figures([cid]))[cid]
    assert f.rate_reason == "booking_latency" and f.chosen_rate == 2.0
    assert sum(slow) <= 4 * 2 + 1
    await queues.report_latency("web-b", bound / 2)
    fast = [len((await _tick_after(queues, pg, cid, 1.0)).admitted) for _ in range(4)]
    f = (await queues.figures([cid]))[cid]
    assert f.rate_reason == "configured" and f.chosen_rate == 8.0
    assert sum(fast) >= 4 * 8 - 1


async def test_fixed_mode_is_untouched_by_seats_and_latency(
        queues: Queues, pg: asyncpg.Pool) -> None:
    cid, _ = await add_show(pg, seats=4)
    for user in range(1, 41):
        await queues.join(cid, user)
    await queues.configure(cid, admit_rate=10.0)
    await queues.report_latency("web-a", queues.settings.booking_p95_bound * 10)
    await admission.tick(queues, pg)
    out = await _tick_after(queues, pg, cid, 1.0)
    assert len(out.admitted) == 10  # 4 seats, but fixed mode admits at the configured rate
    f = (await queues.figures([cid]))[cid]
    assert f.admission_mode == "fixed" and f.chosen_rate is None


def test_measured_share_and_seats_per_order_take_over_from_the_defaults() -> None:
    quiet = inventory.Demand(1, seats_left=100, holds=0, sold=0, orders=0, completed=0,
                             timed_out=5, left_early=0)
    assert quiet.seats_per_buyer(4) == (4.0, False) and quiet.servable(4) == 25
    busy = inventory.Demand(1, seats_left=100, holds=3, sold=30, orders=15, completed=15,
                            timed_out=10, left_early=5)
    # Half of the 30 who ended bought, 2 seats an order: one seat per person admitted.
    assert busy.seats_per_buyer(4) == (1.0, True) and busy.servable(4) == 100
    c = inventory.choose(50.0, False, 95, busy, None, 500.0, 4)
    assert (c.rate, c.people_cap, c.reason) == (5.0, 100, "seats_left")
    c = inventory.choose(50.0, False, 0, busy, 1000.0, 500.0, 4)
    assert (c.rate, c.reason) == (25.0, "booking_latency")
    assert inventory.choose(50.0, False, 0, None, None, 500.0, 4).people_cap == 0
