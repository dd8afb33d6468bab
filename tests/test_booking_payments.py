"""Paying over HTTP: money taken once, idempotency, expiry races and other users' reservations."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any, cast

import asyncpg

from booking import payments
from tests.booking_support import Shop, ShopFactory, gather_all, make_shop, shop, table_counts  # noqa: F401
from tests.conftest import eventually


async def _nothing_to_end(shop: Shop) -> bool:
    return bool(await shop.pg.fetchval("SELECT count(*) FROM payment_tokens_to_end") == 0)


async def _queue_state(shop: Shop, token: str) -> tuple[str, str | None]:
    answer = await shop.call("GET", "/api/v1/queue", token)
    return answer.body["state"], answer.body["reason"]


async def _sold_state(shop: Shop, rid: int) -> tuple[str, list[str]]:
    """A reservation's status and its seats' statuses, in seat order."""
    row = await shop.pg.fetchrow(
        "SELECT r.status, (SELECT array_agg(s.status ORDER BY s.seat_number) FROM concert_seats s"
        " WHERE s.reservation_id = r.id) AS seats FROM reservations r WHERE r.id = $1", rid)
    return row["status"], list(row["seats"])


async def test_pay_a_hold(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=4, price=20_000)
    token = await shop.buyer(concert_id, 7)
    assert (await shop.charge(token, 50_000)).status == 201
    hold = (await shop.hold(token, s1, quantity=2)).body
    paid = await shop.pay(token, hold["id"], key="k-1")
    assert paid.status == 201, paid.body
    assert paid.body == {"id": paid.body["id"], "reservation_id": hold["id"], "amount": 40_000,
                         "state": "COMPLETED", "balance": 10_000}
    # The token is spent: expired with reason completed, its socket told.
    assert await _queue_state(shop, token) == ("EXPIRED", "completed")
    assert await shop.pg.fetchrow(
        "SELECT state, reason FROM waiting_token WHERE token = $1::uuid", token) == (
        "EXPIRED", "completed")
    # Nothing left for the sweeper: the row of the token to end goes once the queue ended it.
    await eventually(lambda: _nothing_to_end(shop))
    assert await shop.pg.fetchval(
        "SELECT array_agg(status ORDER BY seat_number) FROM concert_seats WHERE schedule_id = $1",
        s1) == ["RESERVED", "RESERVED", "AVAILABLE", "AVAILABLE"]
    # The same key and body answer the same again, even with the expired token.
    again = await shop.pay(token, hold["id"], key="k-1")
    assert (again.status, again.body) == (201, paid.body)
    other_body = await shop.pay(token, hold["id"] + 1, key="k-1")
    assert (other_body.status, other_body.body["code"]) == (422, "idempotency_key_reused")
    # Anything new with the spent token is refused.
    new_key = await shop.pay(token, hold["id"], key="k-2")
    assert (new_key.status, new_key.body["code"]) == (410, "token_expired")
    assert await shop.pg.fetchval("SELECT count(*) FROM payments") == 1
    assert await shop.pg.fetchval("SELECT balance FROM balances WHERE user_id = 7") == 10_000
    await shop.audit()


async def test_paid_seats_stay_sold(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=2)
    a = await shop.buyer(concert_id, 1)
    await shop.charge(a, 100_000)
    rid = (await shop.hold(a, s1, seats=[1])).body["id"]
    assert (await shop.pay(a, rid)).status == 201
    # Even with its hold time long past, a paid seat is never released.
    await shop.pg.execute("UPDATE reservations SET hold_expires_at = now() - interval '1 h'")
    await shop.sweep()
    b = await shop.buyer(concert_id, 2)
    refused = await shop.hold(b, s1, seats=[1])
    assert (refused.status, refused.body["code"]) == (409, "seat_unavailable")
    assert await shop.pg.fetchval("SELECT status FROM reservations WHERE id = $1", rid) == "RESERVED"


async def test_insufficient_balance_changes_nothing(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(price=30_000)
    token = await shop.buyer(concert_id, 1)
    await shop.charge(token, 29_999)
    rid = (await shop.hold(token, s1, seats=[1])).body["id"]
    before = await table_counts(shop.pg)
    answer = await shop.pay(token, rid, key="poor")
    assert (answer.status, answer.body["code"]) == (402, "insufficient_balance")
    assert await table_counts(shop.pg) == before
    # The hold and its seats were sold before the debit failed: undone with it.
    assert await _sold_state(shop, rid) == ("WAITING", ["PENDING"])
    assert await _queue_state(shop, token) == ("AVAILABLE", None)
    # The key was not spent on the failure: after a charge, the same key pays.
    await shop.charge(token, 1)
    assert (await shop.pay(token, rid, key="poor")).status == 201


async def test_a_token_of_another_concert_pays_nothing(shop: Shop) -> None:
    concert_a, (sa,) = await shop.concert(seats=2, price=10_000)
    concert_b, _ = await shop.concert(seats=2, price=10_000)
    token_a = await shop.buyer(concert_a, 5)
    token_b = await shop.buyer(concert_b, 5)
    await shop.charge(token_a, 50_000)
    rid = (await shop.hold(token_a, sa, quantity=2)).body["id"]
    before = await table_counts(shop.pg)
    wrong = await shop.pay(token_b, rid, key="wrong")
    assert (wrong.status, wrong.body["code"]) == (403, "token_wrong_concert")
    assert str(concert_a) in wrong.body["detail"]
    assert await table_counts(shop.pg) == before
    assert await _sold_state(shop, rid) == ("WAITING", ["PENDING", "PENDING"])
    assert await shop.pg.fetchval("SELECT balance FROM balances WHERE user_id = 5") == 50_000
    # Both tokens still live; the right one pays, with the same key.
    assert await _queue_state(shop, token_b) == ("AVAILABLE", None)
    assert (await shop.pay(token_a, rid, key="wrong")).status == 201
    assert await _sold_state(shop, rid) == ("RESERVED", ["RESERVED", "RESERVED"])
    await shop.audit()


async def test_ten_payments_against_five_payments_worth(shop: Shop) -> None:
    # One user, ten concerts (a live token each), ten 10,000 holds, 50,000 on the balance.
    user = 42
    holds = []
    tokens = []
    for _ in range(10):
        concert_id, (sid,) = await shop.concert(seats=1, price=10_000)
        token = await shop.buyer(concert_id, user)
        tokens.append(token)
        holds.append((await shop.hold(token, sid, seats=[1])).body["id"])
    await shop.charge(tokens[0], 50_000)
    answers = await gather_all([shop.pay(t, rid) for t, rid in zip(tokens, holds, strict=True)])
    assert sorted(a.status for a in answers) == [201] * 5 + [402] * 5
    assert await shop.pg.fetchval("SELECT balance FROM balances WHERE user_id = $1", user) == 0
    assert await shop.pg.fetchval(
        "SELECT sum(amount) FROM balance_ledger WHERE user_id = $1", user) == 0
    assert await shop.pg.fetchval("SELECT count(*) FROM payments") == 5
    await shop.audit()


async def test_one_reservation_paid_three_times_at_once(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(price=10_000)
    token = await shop.buyer(concert_id, 1)
    await shop.charge(token, 100_000)
    rid = (await shop.hold(token, s1, seats=[1])).body["id"]
    answers = await gather_all([shop.pay(token, rid, key=f"key-{i}") for i in range(3)])
    assert [a.status for a in answers].count(201) == 1
    assert {a.body["code"] for a in answers if a.status != 201} <= {"already_paid", "token_expired"}
    assert await shop.pg.fetchval("SELECT balance FROM balances WHERE user_id = 1") == 90_000
    await shop.audit()


async def test_same_key_ten_times_at_once(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(price=10_000)
    token = await shop.buyer(concert_id, 1)
    await shop.charge(token, 100_000)
    rid = (await shop.hold(token, s1, seats=[1])).body["id"]
    answers = await gather_all([shop.pay(token, rid, key="same") for _ in range(10)])
    # While the first runs, the others may be told it is in progress; asked again, they all
    # get the first answer.
    assert {a.status for a in answers} <= {201, 409}
    assert all(a.body["code"] == "idempotency_in_progress" for a in answers if a.status == 409)
    retried = [a if a.status == 201 else await shop.pay(token, rid, key="same") for a in answers]
    assert {a.status for a in retried} == {201}
    assert len({tuple(sorted(a.body.items())) for a in retried}) == 1
    assert retried[0].body["balance"] == 90_000
    assert await shop.pg.fetchval("SELECT count(*) FROM payments") == 1
    assert await shop.pg.fetchval("SELECT count(*) FROM balance_ledger WHERE kind = 'PAYMENT'") == 1
    assert await shop.pg.fetchval("SELECT balance FROM balances WHERE user_id = 1") == 90_000


async def test_idempotency_in_progress_is_reported(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(price=10_000)
    token = await shop.buyer(concert_id, 1)
    await shop.charge(token, 100_000)
    rid = (await shop.hold(token, s1, seats=[1])).body["id"]
    async with shop.pg.acquire() as blocker:
        # Hold the balance row so that the first payment stays in flight.
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT 1 FROM balances WHERE user_id = 1 FOR UPDATE")
        first = asyncio.create_task(shop.pay(token, rid, key="slow"))

        async def waiting_on_lock() -> bool:
            return bool(await shop.pg.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%pay_reservation%'"))

        from tests.conftest import eventually
        await eventually(waiting_on_lock)
        second = await shop.pay(token, rid, key="slow")
        assert (second.status, second.body["code"]) == (409, "idempotency_in_progress")
        await tx.rollback()
    assert (await first).status == 201


async def test_another_users_reservation_is_not_found(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert()
    owner, stranger = await shop.buyers(concert_id, [1, 2])
    await shop.charge(stranger, 100_000)
    rid = (await shop.hold(owner, s1, seats=[1])).body["id"]
    before = await table_counts(shop.pg)
    answers = [await shop.call("GET", f"/api/v1/reservations/{rid}", stranger),
               await shop.call("DELETE", f"/api/v1/reservations/{rid}", stranger),
               await shop.pay(stranger, rid)]
    assert [(a.status, a.body["code"]) for a in answers] == [(404, "not_found")] * 3
    assert await table_counts(shop.pg) == before
    assert (await shop.call("GET", f"/api/v1/reservations/{rid}", owner)).status == 200


async def test_expiry_races_payment_and_sweeper(make_shop: ShopFactory) -> None:
    shop: Shop = await make_shop()
    rng = random.Random(7)
    outcomes = []
    for round_ in range(4):
        n = 25
        concert_id, (sid,) = await shop.concert(seats=n, price=10_000)
        buyers = list(range(1000 * (round_ + 1), 1000 * (round_ + 1) + n))
        rivals = [u + 500 for u in buyers]
        tokens = await shop.buyers(concert_id, buyers)
        rival_tokens = await shop.buyers(concert_id, rivals)
        holds = []
        for i, token in enumerate(tokens):
            await shop.charge(token, 10_000)
            holds.append((await shop.hold(token, sid, seats=[i + 1])).body["id"])
        # The holds run out a few milliseconds apart, while the requests below are in flight.
        offsets = [rng.uniform(0.0, 0.2) for _ in holds]
        await shop.pg.execute("""
            WITH o AS (SELECT unnest($1::bigint[]) AS id, unnest($2::float8[]) AS secs),
            r AS (UPDATE reservations SET hold_expires_at = clock_timestamp()
                    + make_interval(secs => o.secs) FROM o WHERE reservations.id = o.id
                  RETURNING reservations.id, hold_expires_at)
            UPDATE concert_seats s SET hold_expires_at = r.hold_expires_at
            FROM r WHERE s.reservation_id = r.id""", holds, offsets)

        async def sweeper() -> None:
            for _ in range(10):
                await shop.sweep()
                await asyncio.sleep(0.01)

        pays = [shop.pay(t, rid, key=uuid.uuid4().hex) for t, rid in zip(tokens, holds, strict=True)]
        grabs = [shop.hold(t, sid, seats=[i + 1]) for i, t in enumerate(rival_tokens)]
        results = await asyncio.gather(gather_all(pays), gather_all(grabs), sweeper(), sweeper())
        paid, grabbed = results[0], results[1]
        await shop.sweep()
        states = {r["id"]: r["status"] for r in await shop.pg.fetch(
            "SELECT id, status FROM reservations WHERE id = ANY($1::bigint[])", holds)}
        for rid, pay, grab in zip(holds, paid, grabbed, strict=True):
            assert pay.status in (201, 409), pay.body
            if pay.status == 201:
                assert states[rid] == "RESERVED"
                assert (grab.status, grab.body["code"]) == (409, "seat_unavailable")
            else:
                assert pay.body["code"] == "hold_expired"
                # Ended for good, by the sweeper or by the rival's hold.
                assert states[rid] == "EXPIRED"
            if grab.status == 201:
                assert pay.status == 409
        outcomes.append(([p.status for p in paid].count(201), [g.status for g in grabbed].count(201)))
        await shop.audit()
    # Both endings happened: the race was run, not just one side of it.
    assert sum(p for p, _ in outcomes) > 0 and sum(g for _, g in outcomes) > 0, outcomes


async def test_rows_of_ended_tokens_go_in_one_statement(shop: Shop) -> None:
    await shop.pg.executemany("INSERT INTO payment_tokens_to_end VALUES ($1, $2::uuid)",
                              [(i, str(uuid.uuid4())) for i in (1, 2, 3)])
    sent: list[tuple[Any, ...]] = []

    class Counting:  # the pool, with the statements sent through it counted
        async def execute(self, sql: str, *args: Any) -> str:
            sent.append(args)
            return str(await shop.pg.execute(sql, *args))

    ended = payments.EndedTokens(cast(asyncpg.Pool, Counting()), interval=0.05)
    ended.add(1)
    ended.add(2)
    await ended.close(5)
    assert sent == [([1, 2],)]
    assert await shop.pg.fetchval("SELECT array_agg(payment_id) FROM payment_tokens_to_end") == [3]
