"""A payment goes through while Redis does not answer; the admitter expires its token later."""

from __future__ import annotations

from redis.asyncio import Redis

from booking.context import BookingSettings
from tests.booking_support import Shop, ShopFactory, make_shop  # noqa: F401
from waitingroom import admission


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
    row = await shop.pg.fetchrow("SELECT state, token_expired_at FROM payments")
    assert row["state"] == "COMPLETED" and row["token_expired_at"] is None
    assert await shop.pg.fetchval("SELECT status FROM reservations WHERE id = $1", rid) == "RESERVED"
    await redis.client_unpause()
    _, record = await shop.queues.lookup(token)
    assert record.state == "AVAILABLE"  # the expiry the payment asked for never ran

    # The admitter catches up: the token is EXPIRED (completed) and the payment says so.
    await admission.tick(shop.queues, shop.pg)
    _, record = await shop.queues.lookup(token)
    assert (record.state, record.reason) == ("EXPIRED", "completed")
    assert await shop.pg.fetchval("SELECT token_expired_at IS NOT NULL FROM payments") is True
    status = await shop.call("GET", "/api/v1/queue", token)
    assert (status.body["state"], status.body["reason"]) == ("EXPIRED", "completed")
    # The replay still answers the first result.
    again = await shop.pay(token, rid, key="through-the-outage")
    assert (again.status, again.body) == (201, paid.body)
