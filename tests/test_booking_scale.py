"""Stadium scale: seat maps in ranges, compressed, versioned (304 until any seat changes), and
best-available holds that stay correct on a nearly sold-out 50,000-seat date."""

from __future__ import annotations

import asyncio

from booking.audit import audit
from tests.booking_support import Shop, make_shop, shop  # noqa: F401


async def _seats(shop: Shop, token: str, schedule_id: int, query: str = "",
                 etag: str | None = None) -> tuple[int, str | None, list[dict[str, object]] | None, str]:
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}
    if etag:
        headers["If-None-Match"] = etag
    async with shop.client.get(f"/api/v1/schedules/{schedule_id}/seats{query}", headers=headers) as r:
        body = await r.json() if r.status == 200 else None
        return r.status, r.headers.get("ETag"), body, r.headers.get("Content-Encoding", "")


# The house buys these seats of the date in one reservation, as a sale long before would.
SELL_TO_HOUSE = """
WITH house AS (
    INSERT INTO reservations (user_id, schedule_id, status, seat_count, total_price,
                              hold_expires_at, seat_numbers, seat_prices)
    SELECT 999999, $1, 'RESERVED', count(*), sum(price), now(),
           array_agg(seat_number ORDER BY seat_number), array_agg(price ORDER BY seat_number)
    FROM concert_seats WHERE schedule_id = $1 AND seat_number = ANY ($2::int[])
    RETURNING id
)
UPDATE concert_seats SET status = 'RESERVED', reservation_id = (SELECT id FROM house)
WHERE schedule_id = $1 AND seat_number = ANY ($2::int[])
"""


async def _sell_to_house(shop: Shop, schedule_id: int, numbers: list[int]) -> None:
    async with shop.pg.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO users (id) VALUES (999999) ON CONFLICT DO NOTHING")
        await conn.execute(SELL_TO_HOUSE, schedule_id, numbers)


async def test_seat_maps_in_ranges_with_etags_that_change_with_any_seat(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=300)
    token = await shop.buyer(concert_id, 1)
    status, etag, body, encoding = await _seats(shop, token, s1)
    assert status == 200 and etag and body is not None and len(body) == 300
    assert encoding == "gzip"
    assert (await _seats(shop, token, s1, etag=etag))[0] == 304
    status, ranged_etag, ranged, _ = await _seats(shop, token, s1, "?from=101&to=150")
    assert status == 200 and ranged is not None
    assert [s["seat_number"] for s in ranged] == list(range(101, 151)) and ranged_etag != etag
    # Any change of any seat of the date: a new answer.
    other = await shop.buyer(concert_id, 2)
    rid = (await shop.hold(other, s1, seats=[250])).body["id"]
    status, etag2, body, _ = await _seats(shop, token, s1, etag=etag)
    assert status == 200 and etag2 != etag and body is not None
    assert next(s for s in body if s["seat_number"] == 250)["status"] == "PENDING"
    assert (await _seats(shop, token, s1, etag=etag2))[0] == 304
    # A hold running out changes no row, but does change the map.
    await shop.pg.execute("UPDATE reservations SET hold_expires_at = now() - interval '1 s' WHERE id = $1",
                          rid)
    await shop.pg.execute("UPDATE concert_seats SET hold_expires_at = now() - interval '1 s'"
                          " WHERE reservation_id = $1", rid)
    status, etag3, body, _ = await _seats(shop, token, s1, etag=etag2)
    assert status == 200 and etag3 != etag2 and body is not None
    assert next(s for s in body if s["seat_number"] == 250)["status"] == "AVAILABLE"
    for bad in ("?from=0", "?to=x", "?from=9&to=3", "?from=99999999999"):
        status, *_ = await _seats(shop, token, s1, bad)
        assert status == 400, bad


async def test_best_available_on_a_nearly_sold_out_stadium(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=50_000, price=1_000)
    # Sell all but the last 300 seats (and a few scattered ones) in one go.
    await _sell_to_house(shop, s1, [n for n in range(1, 49_701) if n % 997 != 0])
    free = await shop.pg.fetchval("SELECT count(*) FROM concert_seats WHERE status = 'AVAILABLE'")
    tokens = await shop.buyers(concert_id, range(1, 501))
    answers = await asyncio.gather(*(shop.hold(t, s1, quantity=1 + i % 2)
                                     for i, t in enumerate(tokens)))
    held = [a.body for a in answers if a.status == 201]
    assert {a.status for a in answers} <= {201, 409}
    seats = [s["seat_number"] for h in held for s in h["seats"]]
    assert len(seats) == len(set(seats))  # each seat handed out once
    assert len(seats) >= free - 1  # nearly everything on sale was sold (a pair may not fit)
    figures = await audit(shop.pg)
    assert figures.seats_in_two_live_reservations == 0


async def test_best_available_takes_the_lowest_run_past_sold_seats(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=50_000)
    # Free: 45005, 45007-45008, 45010-45012 and everything from 49990 on.
    gaps = {45005, 45007, 45008, 45010, 45011, 45012}
    await _sell_to_house(shop, s1, [n for n in range(1, 49_990) if n not in gaps])
    buyer = await shop.buyer(concert_id, 1)
    taken = []
    for quantity in (3, 2, 1, 4):
        answer = await shop.hold(buyer, s1, quantity=quantity)
        assert answer.status == 201, answer.body
        taken.append([s["seat_number"] for s in answer.body["seats"]])
        await shop.call("DELETE", f"/api/v1/reservations/{answer.body['id']}", buyer)
    assert taken == [[45010, 45011, 45012], [45007, 45008], [45005], [49990, 49991, 49992, 49993]]
