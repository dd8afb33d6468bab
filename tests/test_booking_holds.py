"""Holding seats over HTTP: the gate, seat maps, all-or-nothing holds and their contention."""

from __future__ import annotations

import asyncio

from tests.booking_support import Shop, ShopFactory, check_invariants, gather_all, make_shop, shop  # noqa: F401


async def test_schedules_seat_map_and_a_hold(shop: Shop) -> None:
    concert_id, (s1, s2) = await shop.concert(dates=2, seats=5, price=30_000)
    token = await shop.buyer(concert_id, 1)

    answer = await shop.call("GET", f"/api/v1/concerts/{concert_id}/schedules", token)
    assert answer.status == 200
    assert [(d["id"], d["available_seats"]) for d in answer.body] == [(s1, 5), (s2, 5)]
    assert answer.body[0]["concert_date"] == "2026-12-24"

    held = await shop.hold(token, s1, seats=[4, 2])
    assert held.status == 201, held.body
    assert held.body["seats"] == [{"seat_number": 2, "price": 30_000},
                                  {"seat_number": 4, "price": 30_000}]
    assert held.body["total_price"] == 60_000
    assert held.body["status"] == "WAITING"
    assert held.body["hold_expires_at"].endswith("Z")

    seats = await shop.call("GET", f"/api/v1/schedules/{s1}/seats", token)
    assert [s["status"] for s in seats.body] == ["AVAILABLE", "PENDING", "AVAILABLE", "PENDING",
                                                 "AVAILABLE"]
    again = await shop.call("GET", f"/api/v1/reservations/{held.body['id']}", token)
    assert again.status == 200 and again.body == held.body

    released = await shop.call("DELETE", f"/api/v1/reservations/{held.body['id']}", token)
    assert released.status == 204
    seats = await shop.call("GET", f"/api/v1/schedules/{s1}/seats", token)
    assert {s["status"] for s in seats.body} == {"AVAILABLE"}
    after = await shop.call("GET", f"/api/v1/reservations/{held.body['id']}", token)
    assert after.body["status"] == "CANCELED"
    # An ended reservation still shows what it held, after its seats are held again.
    assert (await shop.hold(token, s1, seats=[2])).status == 201
    after = await shop.call("GET", f"/api/v1/reservations/{held.body['id']}", token)
    assert after.body["seats"] == held.body["seats"] and after.body["total_price"] == 60_000
    assert (await shop.call("DELETE", f"/api/v1/reservations/{held.body['id']}", token)).status == 204


async def test_sold_out_dates_are_not_listed(shop: Shop) -> None:
    concert_id, (s1, s2) = await shop.concert(dates=2, seats=2)
    token = await shop.buyer(concert_id, 1)
    assert (await shop.hold(token, s1, quantity=2)).status == 201
    answer = await shop.call("GET", f"/api/v1/concerts/{concert_id}/schedules", token)
    assert [d["id"] for d in answer.body] == [s2]


async def test_the_gate(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert()
    other_concert, (o1,) = await shop.concert()
    admitted = await shop.buyer(concert_id, 2)
    await shop.queues.configure(concert_id, paused=True)
    waiting = await shop.join(concert_id, 1)
    await shop.admit([admitted])
    assert (await shop.queues.lookup(waiting))[1].state == "WAITING"
    paths = [("GET", f"/api/v1/concerts/{concert_id}/schedules", None),
             ("GET", f"/api/v1/schedules/{s1}/seats", None),
             ("POST", "/api/v1/reservations", {"schedule_id": s1, "quantity": 1})]
    for method, path, body in paths:
        assert (await shop.call(method, path, json=body)).body["code"] == "token_missing"
        bad = await shop.call(method, path, "not-a-token", json=body)
        assert (bad.status, bad.body["code"]) == (401, "token_invalid")
        unknown = await shop.call(method, path, "6f1c1a52-0000-4000-8000-000000000000", json=body)
        assert (unknown.status, unknown.body["code"]) == (401, "token_invalid")
        early = await shop.call(method, path, waiting, json=body)
        assert (early.status, early.body["code"]) == (403, "token_not_admitted")
    wrong = [await shop.call("GET", f"/api/v1/concerts/{other_concert}/schedules", admitted),
             await shop.call("GET", f"/api/v1/schedules/{o1}/seats", admitted),
             await shop.hold(admitted, o1, quantity=1)]
    assert [(w.status, w.body["code"]) for w in wrong] == [(403, "token_wrong_concert")] * 3
    # Balance calls accept a waiting token, acting for its user.
    assert (await shop.charge(waiting, 5_000)).body == {"balance": 5_000}
    assert (await shop.call("GET", "/api/v1/balance", waiting)).body == {"balance": 5_000}
    assert (await shop.call("GET", "/api/v1/balance", admitted)).body == {"balance": 0}
    await shop.call("DELETE", "/api/v1/queue", admitted)
    gone = await shop.hold(admitted, s1, quantity=1)
    assert (gone.status, gone.body["code"]) == (410, "token_expired")
    gone = await shop.call("GET", "/api/v1/balance", admitted)
    assert (gone.status, gone.body["code"]) == (410, "token_expired")


async def test_all_or_nothing(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=5)
    a, b = await shop.buyers(concert_id, [1, 2])
    assert (await shop.hold(a, s1, seats=[2])).status == 201
    refused = await shop.hold(b, s1, seats=[2, 3])
    assert refused.status == 409
    assert refused.content_type == "application/problem+json"
    assert (refused.body["code"], refused.body["seats"]) == ("seat_unavailable", [2])
    seats = await shop.call("GET", f"/api/v1/schedules/{s1}/seats", b)
    assert seats.body[2] == {"seat_number": 3, "price": 10_000, "status": "AVAILABLE"}
    assert (await shop.hold(b, s1, seats=[3])).status == 201
    assert await shop.pg.fetchval("SELECT count(*) FROM reservations") == 2


async def test_unknown_seat_numbers_are_a_validation_error(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=5)
    token = await shop.buyer(concert_id, 1)
    answer = await shop.hold(token, s1, seats=[5, 6])
    assert (answer.status, answer.body["code"], answer.body["field"]) == (
        400, "validation_error", "seat_numbers")
    missing = await shop.hold(token, 999_999, seats=[1])
    assert (missing.status, missing.body["code"]) == (404, "not_found")
    assert await shop.pg.fetchval("SELECT count(*) FROM reservations") == 0


async def test_quantity_prefers_adjacent_seats(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=10)
    a, b, c = await shop.buyers(concert_id, [1, 2, 3])
    assert (await shop.hold(a, s1, seats=[2, 5, 9])).status == 201
    # Free: 1, 3 4, 6 7 8, 10. Two adjacent: 3 4; three adjacent: 6 7 8.
    two = await shop.hold(b, s1, quantity=2)
    assert [s["seat_number"] for s in two.body["seats"]] == [3, 4]
    three = await shop.hold(c, s1, quantity=3)
    assert [s["seat_number"] for s in three.body["seats"]] == [6, 7, 8]
    # Free: 1, 10. No run of two: the lowest free seats.
    d = await shop.buyer(concert_id, 4)
    scattered = await shop.hold(d, s1, quantity=2)
    assert [s["seat_number"] for s in scattered.body["seats"]] == [1, 10]
    e = await shop.buyer(concert_id, 5)
    none = await shop.hold(e, s1, quantity=1)
    assert (none.status, none.body["code"]) == (409, "seat_unavailable")


async def test_seat_limit(make_shop: ShopFactory) -> None:
    shop = await make_shop(max_seats_per_user=3)
    concert_id, (s1, s2) = await shop.concert(dates=2, seats=10)
    token = await shop.buyer(concert_id, 1)
    assert (await shop.hold(token, s1, quantity=2)).status == 201
    over = await shop.hold(token, s1, seats=[7, 8])
    assert (over.status, over.body["code"]) == (409, "seat_limit")
    too_many = await shop.hold(token, s2, quantity=4)
    assert (too_many.status, too_many.body["code"]) == (409, "seat_limit")
    assert (await shop.hold(token, s1, seats=[7])).status == 201
    # Per date: the other date has its own allowance.
    assert (await shop.hold(token, s2, quantity=3)).status == 201
    # Concurrent holds of one user cannot pass the limit together.
    other = await shop.buyer(concert_id, 2)
    answers = await gather_all([shop.hold(other, s1, seats=[n]) for n in (9, 10, 5, 6)])
    assert sorted(a.status for a in answers) == [201, 201, 201, 409]


async def test_lazy_expiry_frees_seats_without_a_sweeper(make_shop: ShopFactory) -> None:
    shop = await make_shop()
    concert_id, (s1,) = await shop.concert(seats=3)
    a, b = await shop.buyers(concert_id, [1, 2])
    first = await shop.hold(a, s1, seats=[1, 2])
    rid = first.body["id"]
    await shop.pg.execute("UPDATE reservations SET hold_expires_at = now() - interval '1 s'"
                          " WHERE id = $1", rid)
    await shop.pg.execute("UPDATE concert_seats SET hold_expires_at = now() - interval '1 s'"
                          " WHERE reservation_id = $1", rid)
    seats = await shop.call("GET", f"/api/v1/schedules/{s1}/seats", b)
    assert {s["status"] for s in seats.body} == {"AVAILABLE"}
    assert (await shop.call("GET", f"/api/v1/reservations/{rid}", a)).body["status"] == "EXPIRED"
    # Taking one of its seats ends the old hold for good and frees its other seat too.
    taken = await shop.hold(b, s1, seats=[2])
    assert taken.status == 201
    assert await shop.pg.fetchval("SELECT status FROM reservations WHERE id = $1", rid) == "EXPIRED"
    assert await shop.pg.fetchval(
        "SELECT status FROM concert_seats WHERE schedule_id = $1 AND seat_number = 1", s1) == "AVAILABLE"
    paid = await shop.pay(a, rid)
    assert (paid.status, paid.body["code"]) == (409, "hold_expired")
    async with shop.pg.acquire() as conn:
        await check_invariants(conn)


async def test_500_buyers_one_seat(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=5)
    tokens = await shop.buyers(concert_id, range(1, 501))
    answers = await gather_all([shop.hold(t, s1, seats=[3]) for t in tokens])
    statuses = [a.status for a in answers]
    assert statuses.count(201) == 1
    assert statuses.count(409) == 499
    assert {a.body["code"] for a in answers if a.status == 409} == {"seat_unavailable"}
    assert {tuple(a.body["seats"]) for a in answers if a.status == 409} == {(3,)}
    assert await shop.pg.fetchval("SELECT count(*) FROM reservations") == 1
    await shop.audit()


async def test_more_buyers_than_seats(shop: Shop) -> None:
    seats = 60
    concert_id, (s1,) = await shop.concert(seats=seats)
    tokens = await shop.buyers(concert_id, range(1, 51))  # 50 buyers x 2 seats > 60 seats

    async def buy(token: str) -> int:
        # A real client retries while the date still shows enough seats.
        while True:
            answer = await shop.hold(token, s1, quantity=2)
            if answer.status == 201:
                return 201
            assert answer.body["code"] == "seat_unavailable"
            dates = await shop.call("GET", f"/api/v1/concerts/{concert_id}/schedules", token)
            if not dates.body or dates.body[0]["available_seats"] < 2:
                return 409
            await asyncio.sleep(0)

    results = await asyncio.gather(*(buy(t) for t in tokens))
    assert results.count(201) == seats // 2
    assert results.count(409) == 50 - seats // 2
    rows = await shop.pg.fetch("""
        SELECT s.seat_number, count(r.*) AS holds FROM concert_seats s
        LEFT JOIN reservations r ON r.schedule_id = s.schedule_id AND r.status = 'WAITING'
             AND s.seat_number = ANY (r.seat_numbers)
        WHERE s.schedule_id = $1 GROUP BY s.seat_number""", s1)
    assert all(r["holds"] == 1 for r in rows), [r for r in rows if r["holds"] != 1]
    assert await shop.pg.fetchval(
        "SELECT count(*) FROM concert_seats WHERE schedule_id = $1 AND status = 'PENDING'", s1) == seats
    await shop.audit()


async def test_admission_window_closes_at_its_deadline_even_before_the_admitter_ticks(
        shop: Shop) -> None:
    concert_id, (schedule,) = await shop.concert(dates=1, seats=3, price=10_000)
    token = await shop.buyer(concert_id, 1)
    k = f"wr:{{c:{concert_id}}}:tok"
    redis = shop.queues.redis
    raw = await redis.hget(k, token)
    assert isinstance(raw, bytes), raw
    record = raw.decode().split("|")
    record[3] = "1000"  # the booking deadline passed long ago; no admitter has run since
    await redis.hset(k, token, "|".join(record))
    answer = await shop.hold(token, schedule, seats=[1])
    assert answer.status == 410 and answer.body["code"] == "token_expired"
