"""Refunds and my bookings: the money back once, the seats on sale at once, only one's own."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from tests.booking_support import Shop, make_shop, shop  # noqa: F401


async def _paid(shop: Shop, concert_id: int, schedule_id: int, user: int,
                seats: list[int]) -> tuple[int, int]:
    """(reservation id, payment id) of a purchase by user, who then holds a live token again."""
    token = await shop.buyer(concert_id, user)
    await shop.charge(token, 100_000)
    rid = (await shop.hold(token, schedule_id, seats=seats)).body["id"]
    paid = await shop.pay(token, rid)
    assert paid.status == 201, paid.body
    return rid, paid.body["id"]


async def _refund(shop: Shop, token: str, payment_id: int, key: str = "r1") -> tuple[int, Any]:
    answer = await shop.call("POST", f"/api/v1/payments/{payment_id}/refund", token,
                             headers={"Idempotency-Key": key})
    return answer.status, answer.body


async def test_a_refund_gives_the_money_back_and_the_seats_to_sale(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=4, price=10_000)
    rid, pid = await _paid(shop, concert_id, s1, 1, [1, 2])
    token = await shop.join(concert_id, 1)  # a live token again (the payment expired the first)
    status, body = await _refund(shop, token, pid)
    assert status == 200, body
    assert body == {"id": pid, "reservation_id": rid, "amount": 20_000, "state": "CANCELED",
                    "balance": 100_000}
    assert await shop.pg.fetchval("SELECT status FROM reservations WHERE id = $1", rid) == "CANCELED"
    assert await shop.pg.fetchval(
        "SELECT count(*) FROM concert_seats WHERE status = 'AVAILABLE'") == 4
    assert await shop.pg.fetchval(
        "SELECT sum(available) FROM schedule_stock WHERE schedule_id = $1", s1) == 4
    # Replayed under the same key: the same answer, no second credit.
    assert await _refund(shop, token, pid) == (200, body)
    status, again = await _refund(shop, token, pid, key="r2")
    assert (status, again["code"]) == (409, "already_refunded")
    mine = await shop.call("GET", "/api/v1/reservations", token)
    assert [(r["id"], r["status"], r["payment_id"]) for r in mine.body] == [(rid, "CANCELED", pid)]
    # The seats are on sale at once: someone else holds them.
    other = await shop.buyer(concert_id, 2)
    assert (await shop.hold(other, s1, seats=[1, 2])).status == 201
    await shop.audit()


async def test_only_ones_own_payment_and_only_before_the_date(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=4)
    _, pid = await _paid(shop, concert_id, s1, 1, [1])
    stranger = await shop.join(concert_id, 2)
    status, body = await _refund(shop, stranger, pid)
    assert (status, body["code"]) == (404, "payment_not_found")
    assert (await shop.call("GET", "/api/v1/reservations", stranger)).body == []
    owner = await shop.join(concert_id, 1)
    await shop.pg.execute("UPDATE concert_schedules SET concert_date = current_date - 1")
    status, body = await _refund(shop, owner, pid)
    assert (status, body["code"]) == (409, "refund_closed")
    missing = await shop.call("POST", f"/api/v1/payments/{pid}/refund", owner)
    assert (missing.status, missing.body["code"]) == (400, "validation_error")
    assert await shop.pg.fetchval("SELECT state FROM payments WHERE id = $1", pid) == "COMPLETED"
    await shop.audit()


async def test_fifty_replays_at_once_credit_once(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=4, price=10_000)
    _, pid = await _paid(shop, concert_id, s1, 1, [1, 2, 3])
    token = await shop.join(concert_id, 1)
    answers = await asyncio.gather(*(_refund(shop, token, pid, key="same") for _ in range(50)))
    statuses = [s for s, _ in answers]
    assert set(statuses) <= {200, 409}, statuses
    assert statuses.count(200) >= 1
    assert {b["balance"] for s, b in answers if s == 200} == {100_000}
    assert {b["code"] for s, b in answers if s == 409} <= {"idempotency_in_progress"}
    assert await shop.pg.fetchval("SELECT count(*) FROM balance_ledger WHERE kind = 'REFUND'") == 1
    assert await shop.pg.fetchval("SELECT balance FROM balances WHERE user_id = 1") == 100_000
    await shop.audit()


async def test_refunds_racing_holds_leave_every_seat_in_one_live_reservation(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=8, price=1_000)
    payments = [await _paid(shop, concert_id, s1, u, [u]) for u in range(1, 9)]
    owners = [await shop.join(concert_id, u) for u in range(1, 9)]
    hunters = await shop.buyers(concert_id, range(101, 109))
    random.seed(7)

    async def hunt(token: str) -> None:
        for _ in range(15):
            await shop.hold(token, s1, seats=random.sample(range(1, 9), 2))

    refunding = [_refund(shop, t, p[1]) for t, p in zip(owners, payments, strict=True)]
    await asyncio.gather(*refunding, *(hunt(t) for t in hunters))
    await shop.audit()
    live = await shop.pg.fetchval("""
        SELECT count(*) FROM concert_seats s WHERE s.status <> 'AVAILABLE' AND NOT EXISTS (
            SELECT 1 FROM reservations r WHERE r.schedule_id = s.schedule_id
              AND s.seat_number = ANY (r.seat_numbers) AND r.status IN ('WAITING', 'RESERVED'))""")
    assert live == 0
    assert await shop.pg.fetchval("SELECT count(*) FROM payments WHERE state = 'CANCELED'") == 8


async def test_my_bookings_newest_first_and_only_mine(shop: Shop) -> None:
    concert_id, (s1, s2) = await shop.concert(dates=2, seats=6)
    token = await shop.buyer(concert_id, 1)
    await shop.charge(token, 1_000_000)
    first = (await shop.hold(token, s1, seats=[1])).body["id"]
    second = (await shop.hold(token, s2, quantity=2)).body["id"]
    paid = (await shop.pay(token, second)).body["id"]
    other = await shop.buyer(concert_id, 2)
    await shop.hold(other, s1, seats=[5])
    again = await shop.join(concert_id, 1)
    mine = await shop.call("GET", "/api/v1/reservations", again)
    assert mine.status == 200
    assert [(r["id"], r["status"], r["payment_id"], r["concert_id"]) for r in mine.body] == [
        (second, "RESERVED", paid, concert_id), (first, "WAITING", None, concert_id)]
    assert [s["seat_number"] for s in mine.body[0]["seats"]] == [1, 2]
