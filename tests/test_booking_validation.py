"""Bad input on every booking endpoint: a 4xx problem naming the trouble, and nothing written."""

from __future__ import annotations

import json
from typing import Any

from tests.booking_support import Shop, make_shop, shop, table_counts  # noqa: F401

HUGE = 2**70


async def test_bad_input_is_refused_and_changes_nothing(shop: Shop) -> None:
    concert_id, (s1,) = await shop.concert(seats=5)
    token = await shop.buyer(concert_id, 1)
    await shop.charge(token, 100_000)
    rid = (await shop.hold(token, s1, seats=[1])).body["id"]
    before = await table_counts(shop.pg)
    key = {"Idempotency-Key": "k"}
    cases: list[tuple[str, str, Any, dict[str, str], int, str, str | None]] = [
        # method, path, JSON body (bytes: sent raw), headers, status, code, field
        ("POST", "/api/v1/reservations", b'{"schedule_id": ', {}, 400, "validation_error", None),
        ("POST", "/api/v1/reservations", b"[]", {}, 400, "validation_error", None),
        ("POST", "/api/v1/reservations", b"null", {}, 400, "validation_error", None),
        ("POST", "/api/v1/reservations", {"schedule_id": s1, "quantity": 1, "user_id": 2}, {},
         400, "validation_error", "user_id"),
        ("POST", "/api/v1/reservations", {"schedule_id": str(s1), "quantity": 1}, {},
         400, "validation_error", "schedule_id"),
        ("POST", "/api/v1/reservations", {"quantity": 1}, {}, 400, "validation_error", "schedule_id"),
        ("POST", "/api/v1/reservations", {"schedule_id": 0, "quantity": 1}, {},
         400, "validation_error", "schedule_id"),
        ("POST", "/api/v1/reservations", {"schedule_id": HUGE, "quantity": 1}, {},
         400, "validation_error", "schedule_id"),
        ("POST", "/api/v1/reservations", {"schedule_id": s1}, {}, 400, "validation_error", None),
        ("POST", "/api/v1/reservations", {"schedule_id": s1, "quantity": 1, "seat_numbers": [2]},
         {}, 400, "validation_error", None),
        ("POST", "/api/v1/reservations", {"schedule_id": s1, "quantity": 0}, {},
         400, "validation_error", "quantity"),
        ("POST", "/api/v1/reservations", {"schedule_id": s1, "quantity": 1.5}, {},
         400, "validation_error", "quantity"),
        ("POST", "/api/v1/reservations", {"schedule_id": s1, "quantity": True}, {},
         400, "validation_error", "quantity"),
        ("POST", "/api/v1/reservations", {"schedule_id": s1, "quantity": HUGE}, {},
         400, "validation_error", "quantity"),
        ("POST", "/api/v1/reservations", {"schedule_id": s1, "seat_numbers": []}, {},
         400, "validation_error", "seat_numbers"),
        ("POST", "/api/v1/reservations", {"schedule_id": s1, "seat_numbers": [2, 2]}, {},
         400, "validation_error", "seat_numbers"),
        ("POST", "/api/v1/reservations", {"schedule_id": s1, "seat_numbers": [0]}, {},
         400, "validation_error", "seat_numbers"),
        ("POST", "/api/v1/reservations", {"schedule_id": s1, "seat_numbers": [HUGE]}, {},
         400, "validation_error", "seat_numbers"),
        ("POST", "/api/v1/reservations", {"schedule_id": s1, "seat_numbers": [2**31]}, {},
         400, "validation_error", "seat_numbers"),
        ("POST", "/api/v1/reservations", {"schedule_id": s1, "seat_numbers": ["2"]}, {},
         400, "validation_error", "seat_numbers"),
        ("POST", "/api/v1/reservations", {"schedule_id": s1, "seat_numbers": list(range(1, 1002))},
         {}, 400, "validation_error", "seat_numbers"),
        ("POST", "/api/v1/reservations", {"schedule_id": s1, "seat_numbers": [4, 99]}, {},
         400, "validation_error", "seat_numbers"),
        ("POST", "/api/v1/reservations", {"schedule_id": s1, "quantity": 5}, {}, 409, "seat_limit", None),
        ("POST", "/api/v1/reservations", {"schedule_id": 10**15, "quantity": 1}, {},
         404, "not_found", None),
        ("PUT", "/api/v1/reservations", {}, {}, 405, "method_not_allowed", None),
        ("GET", "/api/v1/reservations/abc", None, {}, 400, "validation_error", "reservation_id"),
        ("GET", "/api/v1/reservations/0", None, {}, 400, "validation_error", "reservation_id"),
        ("GET", f"/api/v1/reservations/{HUGE}", None, {}, 400, "validation_error", "reservation_id"),
        ("GET", "/api/v1/reservations/999999", None, {}, 404, "not_found", None),
        ("DELETE", "/api/v1/reservations/-1", None, {}, 400, "validation_error", "reservation_id"),
        ("DELETE", "/api/v1/reservations/999999", None, {}, 404, "not_found", None),
        ("GET", "/api/v1/schedules/x/seats", None, {}, 400, "validation_error", "schedule_id"),
        ("GET", f"/api/v1/schedules/{HUGE}/seats", None, {}, 400, "validation_error", "schedule_id"),
        ("GET", "/api/v1/schedules/999999/seats", None, {}, 404, "not_found", None),
        ("GET", "/api/v1/concerts/0/schedules", None, {}, 400, "validation_error", "concert_id"),
        ("POST", "/api/v1/payments", {"reservation_id": rid}, {}, 400, "validation_error",
         "Idempotency-Key"),
        ("POST", "/api/v1/payments", {"reservation_id": rid}, {"Idempotency-Key": "k" * 65},
         400, "validation_error", "Idempotency-Key"),
        ("POST", "/api/v1/payments", {"reservation_id": rid}, {"Idempotency-Key": "a\tb"},
         400, "validation_error", "Idempotency-Key"),
        ("POST", "/api/v1/payments", b"{", key, 400, "validation_error", None),
        ("POST", "/api/v1/payments", {}, key, 400, "validation_error", "reservation_id"),
        ("POST", "/api/v1/payments", {"reservation_id": "1"}, key, 400, "validation_error",
         "reservation_id"),
        ("POST", "/api/v1/payments", {"reservation_id": -5}, key, 400, "validation_error",
         "reservation_id"),
        ("POST", "/api/v1/payments", {"reservation_id": rid, "amount": 1}, key,
         400, "validation_error", "amount"),
        ("POST", "/api/v1/payments", {"reservation_id": 999_999}, key, 404, "not_found", None),
        ("POST", "/api/v1/balance/charges", {"amount": 0}, {}, 400, "validation_error", "amount"),
        ("POST", "/api/v1/balance/charges", {"amount": -100}, {}, 400, "validation_error", "amount"),
        ("POST", "/api/v1/balance/charges", {"amount": 10_000_001}, {}, 400, "validation_error",
         "amount"),
        ("POST", "/api/v1/balance/charges", {"amount": HUGE}, {}, 400, "validation_error", "amount"),
        ("POST", "/api/v1/balance/charges", {"amount": 10.5}, {}, 400, "validation_error", "amount"),
        ("POST", "/api/v1/balance/charges", {"amount": "100"}, {}, 400, "validation_error", "amount"),
        ("POST", "/api/v1/balance/charges", {"amount": 100, "user_id": 2}, {},
         400, "validation_error", "user_id"),
        ("POST", "/api/v1/balance/charges", b'{"amount": 1e309}', {}, 400, "validation_error", None),
        ("POST", "/api/v1/balance/charges", b"\xff\xfe", {}, 400, "validation_error", None),
        ("POST", "/api/v1/balance/charges", b'{"amount": 100, "amount": "x"}', {},
         400, "validation_error", "amount"),
    ]
    for method, path, body, headers, status, code, field in cases:
        if isinstance(body, bytes):
            answer = await shop.call(method, path, token, data=body,
                                     headers={"Content-Type": "application/json", **headers})
        else:
            answer = await shop.call(method, path, token, json=body, headers=headers)
        what = f"{method} {path} {body!r:.60}"
        assert answer.status == status, (what, answer.body)
        assert answer.content_type == "application/problem+json", what
        assert answer.body["code"] == code, (what, answer.body)
        assert answer.body["status"] == status and answer.body["detail"], what
        if field is not None:
            assert answer.body.get("field") == field, (what, answer.body)
    # Not JSON at all, and too large.
    for path in ("/api/v1/reservations", "/api/v1/payments", "/api/v1/balance/charges"):
        plain = await shop.call("POST", path, token, data="amount=1",
                                headers={"Content-Type": "text/plain", **key})
        assert (plain.status, plain.body["code"]) == (415, "unsupported_media_type")
        big = await shop.call("POST", path, token, data=json.dumps({"x": "y" * 100_000}),
                              headers={"Content-Type": "application/json", **key})
        assert (big.status, big.body["code"]) == (413, "payload_too_large")
    assert await table_counts(shop.pg) == before


async def test_whole_numbers_written_as_floats_are_integers(shop: Shop) -> None:
    # JSON Schema, which the OpenAPI document speaks, counts 2.0 as the integer 2; so does the
    # server (schemathesis sent {"user_id": 845.0} and was refused).
    concert_id, (s1,) = await shop.concert(seats=5, price=1_000)
    joined = await shop.call("POST", f"/api/v1/concerts/{concert_id}/queue", json={"user_id": 7.0})
    assert joined.status == 201, joined.body
    (token,) = await shop.buyers(concert_id, [7])
    assert token == joined.body["token"]
    charged = await shop.call("POST", "/api/v1/balance/charges", token,
                              data=b'{"amount": 5e3}', headers={"Content-Type": "application/json"})
    assert (charged.status, charged.body) == (201, {"balance": 5_000})
    # Not whole, or past what a float spells exactly: still refused.
    for raw in (b'{"amount": 10.5}', b'{"amount": 1e300}', b'{"amount": 9007199254740993.0}'):
        refused = await shop.call("POST", "/api/v1/balance/charges", token, data=raw,
                                  headers={"Content-Type": "application/json"})
        assert (refused.status, refused.body["field"]) == (400, "amount"), raw
    held = await shop.call("POST", "/api/v1/reservations", token,
                           json={"schedule_id": float(s1), "seat_numbers": [1.0, 2.0]})
    assert held.status == 201, held.body
    assert [s["seat_number"] for s in held.body["seats"]] == [1, 2]
    key = {"Idempotency-Key": "whole"}
    paid = await shop.call("POST", "/api/v1/payments", token,
                           json={"reservation_id": float(held.body["id"])}, headers=key)
    assert paid.status == 201, paid.body
    # The same body however spelt: a replay, not a reuse of the key.
    again = await shop.call("POST", "/api/v1/payments", token,
                            json={"reservation_id": held.body["id"]}, headers=key)
    assert (again.status, again.body) == (201, paid.body)
    patched = await shop.call("PATCH", f"/admin/concerts/{concert_id}/queue",
                              json={"max_active": 229.0, "admit_rate": 2},
                              headers={"Authorization": f"Bearer {shop.settings.admin_token}"})
    assert patched.status == 200, patched.body
    assert (patched.body["max_active"], patched.body["admit_rate"]) == (229, 2.0)
    await shop.audit()
