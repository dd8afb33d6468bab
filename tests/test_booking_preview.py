"""While waiting, people preview dates, prices and seat maps; nothing more."""

from __future__ import annotations

import asyncio

from asyncpg import Record

from booking.context import BOOKING
from tests.booking_support import Shop, make_shop, shop  # noqa: F401


async def test_a_waiter_previews_dates_prices_and_the_map(shop: Shop) -> None:
    concert_id, (s1, s2) = await shop.concert(dates=2, seats=6, price=12_000)
    other_concert, (o1,) = await shop.concert(seats=2)
    waiting = await shop.join(concert_id, 7)  # not admitted
    dates = await shop.call("GET", f"/api/v1/concerts/{concert_id}/preview", waiting)
    assert dates.status == 200
    assert [(d["id"], d["available_seats"], d["price_min"], d["price_max"]) for d in dates.body] == [
        (s1, 6, 12_000, 12_000), (s2, 6, 12_000, 12_000)]
    seats = await shop.call("GET", f"/api/v1/schedules/{s1}/preview", waiting)
    assert seats.status == 200
    assert [(s["seat_number"], s["status"]) for s in seats.body] == [(n, "AVAILABLE") for n in range(1, 7)]
    # Looking is all a waiter may do: holding still needs an admission.
    held = await shop.hold(waiting, s1, quantity=1)
    assert (held.status, held.body["code"]) == (403, "token_not_admitted")
    # Another concert's previews are not this token's to see.
    for path in (f"/api/v1/concerts/{other_concert}/preview", f"/api/v1/schedules/{o1}/preview"):
        wrong = await shop.call("GET", path, waiting)
        assert (wrong.status, wrong.body["code"]) == (403, "token_wrong_concert")
    await shop.call("DELETE", "/api/v1/queue", waiting)
    gone = await shop.call("GET", f"/api/v1/concerts/{concert_id}/preview", waiting)
    assert (gone.status, gone.body["code"]) == (410, "token_expired")
    missing = await shop.call("GET", f"/api/v1/concerts/{concert_id}/preview")
    assert (missing.status, missing.body["code"]) == (401, "token_missing")


async def test_previews_are_shared_not_read_per_waiter(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=4)
    tokens = [await shop.join(concert_id, u) for u in range(1, 31)]
    previews = shop.client.app[BOOKING].preview_maps
    loads = 0
    load = previews._load

    async def counted(schedule_id: int) -> list[Record]:
        nonlocal loads
        loads += 1
        return await load(schedule_id)

    previews._load = counted
    calls = await asyncio.gather(*(shop.call("GET", f"/api/v1/schedules/{s1}/preview", t)
                                   for t in tokens))
    assert {c.status for c in calls} == {200} and all(c.body == calls[0].body for c in calls)
    assert loads == 1  # thirty waiters at once: one read of the map, shared
