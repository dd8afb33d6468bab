"""Sold out, told at once: waiters learn it the moment the last seat goes, nobody more is
admitted, and when a seat comes back the first in line gets its chance."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from aiohttp import ClientWebSocketResponse

from tests.booking_support import Shop, make_shop, shop  # noqa: F401
from waitingroom import admission


async def frame(ws: ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while True:
        got: dict[str, Any] = await ws.receive_json(timeout=5)
        if got["type"] == kind:
            return got


async def state_of(shop: Shop, token: str) -> dict[str, Any]:
    answer = await shop.call("GET", "/api/v1/queue", token)
    assert answer.status == 200
    body: dict[str, Any] = answer.body
    return body


async def test_sold_out_by_holds_then_a_release_lets_the_next_in(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=2)
    buyer = await shop.buyer(concert_id, 1)
    rid = (await shop.hold(buyer, s1, quantity=2)).body["id"]
    await admission.tick(shop.queues, shop.pg)  # counts the seats on sale: none
    listed = (await shop.call("GET", "/api/v1/concerts")).body
    assert [c["queue"]["sold_out"] for c in listed if c["id"] == concert_id] == [True]

    first, second = await shop.join(concert_id, 2), await shop.join(concert_id, 3)
    async with shop.client.ws_connect(f"/ws/queue?token={first}") as ws:
        assert await frame(ws, "sold_out") == {"type": "sold_out", "concert_id": concert_id}
        polled = await state_of(shop, second)
        assert polled["sold_out"] is True and polled["eta_seconds"] is None
        for _ in range(3):  # nobody is admitted, however fast the rate
            await admission.tick(shop.queues, shop.pg)
        assert (await state_of(shop, first))["state"] == "WAITING"
        assert (await state_of(shop, second))["state"] == "WAITING"

        # One seat comes back: room for exactly one more buyer at a time.
        await shop.queues.configure(concert_id, max_active=2)
        assert (await shop.call("DELETE", f"/api/v1/reservations/{rid}", buyer)).status == 204
        await shop.hold(buyer, s1, seats=[1])
        await admission.tick(shop.queues, shop.pg)  # counts: one on sale again
        assert (await frame(ws, "position"))["position"] == 1  # positions resume
        assert (await state_of(shop, second))["sold_out"] is False
        await admission.tick(shop.queues, shop.pg)
        admitted = await frame(ws, "admitted")
        assert admitted["concert_id"] == concert_id
    assert (await state_of(shop, second))["state"] == "WAITING"  # in order: the first one first


async def test_a_skewed_counter_is_repaired(shop: Shop) -> None:
    concert_id, (s1, s2) = await shop.concert(dates=2, seats=5)
    buyer = await shop.buyer(concert_id, 1)
    await shop.hold(buyer, s1, quantity=3)

    async def counted() -> dict[int, int]:
        rows = await shop.pg.fetch("SELECT schedule_id, sum(available)::int AS n FROM schedule_stock"
                                   " GROUP BY schedule_id")
        return {r["schedule_id"]: r["n"] for r in rows}

    assert await counted() == {s1: 2, s2: 5}
    await shop.pg.execute("UPDATE schedule_stock SET available = available + 7 WHERE schedule_id = $1", s2)
    await shop.pg.execute("DELETE FROM schedule_stock WHERE schedule_id = $1", s1)
    await admission.tick(shop.queues, shop.pg, check_stock=True)
    assert await counted() == {s1: 2, s2: 5}
    figures = (await shop.queues.figures([concert_id]))[concert_id]
    assert figures.on_sale == 7 and not figures.sold_out


async def test_counters_equal_a_full_count_after_a_random_workload(shop: Shop) -> None:
    concert_id, schedules = await shop.concert(dates=2, seats=12, price=1_000)
    tokens = await shop.buyers(concert_id, range(1, 21))
    rng = random.Random(11)
    for token in tokens:
        await shop.charge(token, 100_000)

    async def person(token: str) -> None:
        for _ in range(6):
            sid = rng.choice(schedules)
            held = await shop.hold(token, sid, quantity=rng.randint(1, 2))
            if held.status != 201:
                continue
            roll = rng.random()
            if roll < 0.3:
                await shop.call("DELETE", f"/api/v1/reservations/{held.body['id']}", token)
            elif roll < 0.5:
                await shop.pg.execute("UPDATE reservations SET hold_expires_at = now() - interval '1 s'"
                                      " WHERE id = $1", held.body["id"])
            elif roll < 0.6:
                await shop.pay(token, held.body["id"])
                return  # the payment ended this token

    await asyncio.gather(*(person(t) for t in tokens))
    await shop.sweep()
    full = await shop.pg.fetch("SELECT schedule_id, count(*) FILTER (WHERE status = 'AVAILABLE')::int"
                               " AS n FROM concert_seats GROUP BY schedule_id ORDER BY schedule_id")
    counted = await shop.pg.fetch("SELECT schedule_id, sum(available)::int AS n FROM schedule_stock"
                                  " GROUP BY schedule_id ORDER BY schedule_id")
    assert [tuple(r) for r in counted] == [tuple(r) for r in full]
    assert sum(r["n"] for r in full) < 24  # the workload did sell and hold seats
    await shop.audit()
