"""A payment goes through while Redis does not answer, or its process stops before the queue
has ended its token; the admitter expires the token later."""

from __future__ import annotations

from redis.asyncio import Redis

from booking import payments
from booking.context import BookingSettings
from tests.booking_support import Shop, ShopFactory, make_shop, shop  # noqa: F401
from waitingroom import admission
from waitingroom.gate import QueueGate
from waitingroom.keys import ConcertKeys


async def test_payment_survives_redis_not_answering(make_shop: ShopFactory, redis: Redis) -> None:
    shop: Shop = await make_shop()
    concert_id, (s1,) = await shop.concert(price=10_000)
    token = await shop.buyer(concert_id, 1)
    await shop.charge(token, 30_000)
    rid = (await shop.hold(token, s1, seats=[1])).body["id"]

    # Redis keeps serving reads (the gate) but answers no write or script for a while: the
    # token-expiry step after the payment's commit gets no answer.
    pause_ms = int(BookingSettings().token_expiry_timeout * 1000) + 1500
    await redis.client_pause(pause_ms, all=False)  # CLIENT PAUSE <ms> WRITE
    paid = await shop.pay(token, rid, key="through-the-outage")
    assert paid.status == 201, paid.body
    assert paid.body["balance"] == 20_000
    assert await shop.pg.fetchval("SELECT state FROM payments") == "COMPLETED"
    to_end = await shop.pg.fetch("SELECT payment_id, token::text FROM payment_tokens_to_end")
    assert [tuple(r) for r in to_end] == [(paid.body["id"], token)]
    # The token's audit row was written with the payment, whatever the queue says.
    assert await shop.pg.fetchrow(
        "SELECT state, reason FROM waiting_token WHERE token = $1::uuid", token) == (
        "EXPIRED", "completed")
    assert await shop.pg.fetchval("SELECT status FROM reservations WHERE id = $1", rid) == "RESERVED"
    await redis.client_unpause()
    # (The queue may still end the token when its late answer comes: the request did not wait
    # for it, so its row stays for the sweeper. A process cut off here: the test below.)

    # The admitter catches up: the token is EXPIRED (completed) and nothing is left to end.
    await admission.tick(shop.queues, shop.pg)
    _, record = await shop.queues.lookup(token)
    assert (record.state, record.reason) == ("EXPIRED", "completed")
    assert await shop.pg.fetchval("SELECT count(*) FROM payment_tokens_to_end") == 0
    status = await shop.call("GET", "/api/v1/queue", token)
    assert (status.body["state"], status.body["reason"]) == ("EXPIRED", "completed")
    # The replay still answers the first result.
    again = await shop.pay(token, rid, key="through-the-outage")
    assert (again.status, again.body) == (201, paid.body)


async def test_payment_cut_off_before_its_token_ended(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(price=10_000)
    token = await shop.buyer(concert_id, 1)
    await shop.charge(token, 30_000)
    first = (await shop.hold(token, s1, seats=[1])).body["id"]
    second = (await shop.hold(token, s1, seats=[2])).body["id"]

    # The payment commits, and its process stops before it asks the queue to end the token.
    holder = await QueueGate(shop.queues, shop.pg).holder(token)
    async with shop.pg.acquire() as conn:
        paid = await payments.pay(conn, holder=holder, reservation_id=first, key="cut-off",
                                  fingerprint=b"x" * 32)
    _, record = await shop.queues.lookup(token)
    assert record.state == "AVAILABLE"
    # The queue still lets the token in, but it cannot pay a second time.
    again = await shop.pay(token, second, key="second")
    assert (again.status, again.body["code"]) == (410, "token_expired")
    assert await shop.pg.fetchval("SELECT count(*) FROM payments") == 1

    # The admitter's sweeper ends it: reason completed in the queue and in the audit row.
    await admission.tick(shop.queues, shop.pg)
    _, record = await shop.queues.lookup(token)
    assert (record.state, record.reason) == ("EXPIRED", "completed")
    assert await shop.pg.fetchrow(
        "SELECT state, reason FROM waiting_token WHERE token = $1::uuid", token) == (
        "EXPIRED", "completed")
    assert await shop.pg.fetchval("SELECT count(*) FROM payment_tokens_to_end") == 0
    assert await shop.pg.fetchval("SELECT balance FROM balances WHERE user_id = 1") == 20_000
    assert paid.balance == 20_000
    await shop.audit()


async def test_payment_cut_off_then_its_deadline_passes(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(price=10_000)
    token = await shop.buyer(concert_id, 1)
    await shop.charge(token, 10_000)
    rid = (await shop.hold(token, s1, seats=[1])).body["id"]
    holder = await QueueGate(shop.queues, shop.pg).holder(token)
    async with shop.pg.acquire() as conn:
        await payments.pay(conn, holder=holder, reservation_id=rid, key="cut-off",
                           fingerprint=b"x" * 32)
    # Its deadline passes before the admitter's next tick: the queue times it out, and its
    # record of the expiry leaves the payment's audit row as it was.
    await shop.queues.redis.zadd(ConcertKeys(concert_id).active, {token: 0})
    await admission.tick(shop.queues, shop.pg)
    _, record = await shop.queues.lookup(token)
    assert (record.state, record.reason) == ("EXPIRED", "timeout")
    assert await shop.pg.fetchrow(
        "SELECT state, reason FROM waiting_token WHERE token = $1::uuid", token) == (
        "EXPIRED", "completed")
    assert await shop.pg.fetchval("SELECT count(*) FROM payment_tokens_to_end") == 0
    await shop.audit()
