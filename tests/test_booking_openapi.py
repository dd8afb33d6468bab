"""The OpenAPI document covers the whole contract and comes from the validating types."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from booking.schemas import ChargeRequest, HoldRequest, PaymentRequest
from tests.booking_support import Shop, make_shop, shop  # noqa: F401
from waitingroom.schemas import JoinRequest, QueuePatch

CONTRACT = {
    ("get", "/api/v1/concerts"), ("post", "/api/v1/concerts/{concert_id}/queue"),
    ("get", "/api/v1/queue"), ("delete", "/api/v1/queue"), ("get", "/ws/queue"),
    ("get", "/api/v1/concerts/{concert_id}/schedules"), ("get", "/api/v1/schedules/{schedule_id}/seats"),
    ("post", "/api/v1/reservations"), ("get", "/api/v1/reservations/{reservation_id}"),
    ("delete", "/api/v1/reservations/{reservation_id}"), ("post", "/api/v1/payments"),
    ("get", "/api/v1/balance"), ("post", "/api/v1/balance/charges"), ("get", "/healthz"),
    ("get", "/readyz"), ("get", "/metrics"), ("get", "/admin/concerts/{concert_id}/queue"),
    ("patch", "/admin/concerts/{concert_id}/queue"),
    ("get", "/api/v1/reservations"), ("post", "/api/v1/payments/{payment_id}/refund"),
}
# Additions beyond the contract, documented in the same document.
ADDITIONS = {("get", "/api/v1/limits"), ("get", "/admin/audit"),
             ("post", "/admin/concerts/{concert_id}/what-if"),
             ("get", "/api/v1/concerts/{concert_id}/preview"),
             ("get", "/api/v1/schedules/{schedule_id}/preview"),
             ("get", "/api/v1/concerts/{concert_id}/draw")}
PROBLEM = {"$ref": "#/components/schemas/Problem"}


async def test_openapi_covers_the_contract(shop: Shop) -> None:
    answer = await shop.call("GET", "/api/v1/openapi.json")
    assert answer.status == 200 and answer.content_type == "application/json"
    spec = answer.body
    assert spec["openapi"].startswith("3.")
    listed = {(m, p) for p, methods in spec["paths"].items() for m in methods}
    assert listed == CONTRACT | ADDITIONS
    # Every listed route exists in the app with that method.
    routes = {(r.method.lower(), r.resource.canonical) for r in shop.client.app.router.routes()
              if r.resource is not None}
    assert CONTRACT <= routes
    schemas = spec["components"]["schemas"]
    bodies = {p: spec["paths"][p]["post"]["requestBody"]["content"]["application/json"]["schema"]
              for p in ("/api/v1/reservations", "/api/v1/payments", "/api/v1/balance/charges")}
    for path, kind in (("/api/v1/reservations", HoldRequest), ("/api/v1/payments", PaymentRequest),
                       ("/api/v1/balance/charges", ChargeRequest)):
        name = bodies[path]["$ref"].split("/")[-1]
        assert name == kind.__name__
        # The same schema msgspec validates with, unknown fields refused.
        _, own = msgspec.json.schema_components([kind], ref_template="#/components/schemas/{name}")
        assert {k: v for k, v in schemas[name].items() if k != "oneOf"} == own[name]
        assert schemas[name]["additionalProperties"] is False
    assert schemas["ChargeRequest"]["properties"]["amount"]["maximum"] == 10_000_000
    for model in (JoinRequest, QueuePatch):
        assert model.__name__ in schemas
    pay = spec["paths"]["/api/v1/payments"]["post"]
    assert {p["name"] for p in pay["parameters"]} == {"Idempotency-Key"}
    assert set(pay["responses"]) >= {"201", "400", "402", "404", "409", "422"}
    for methods in spec["paths"].values():
        for op in methods.values():
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    problem = response["content"]["application/problem+json"]["schema"]
                    assert problem["allOf"][0] == PROBLEM
                    codes = problem["allOf"][1]["properties"]["code"]["enum"]
                    assert codes and response["description"] == ", ".join(codes)


def _codes(spec: dict[str, Any], method: str, path: str) -> dict[int, set[str]]:
    """The problem codes of one operation by status."""
    return {int(status): set(r["content"]["application/problem+json"]["schema"]["allOf"][1]
                             ["properties"]["code"]["enum"])
            for status, r in spec["paths"][path][method]["responses"].items() if int(status) >= 400}


async def test_openapi_lists_every_answer(shop: Shop) -> None:
    answer = await shop.client.get("/api/v1/openapi.json")
    raw = await answer.read()
    spec = msgspec.json.decode(raw)
    # 2^63 - 1 exactly, not a float that rounds it up to 2^63.
    assert b'"maximum":9223372036854775807' in raw and b"e+18" not in raw
    join = spec["paths"]["/api/v1/concerts/{concert_id}/queue"]["post"]
    assert {"200", "201"} <= set(join["responses"])
    assert _codes(spec, "post", "/api/v1/concerts/{concert_id}/queue") == {
        400: {"validation_error"}, 401: {"identity_required", "identity_invalid"},
        404: {"not_found"}, 413: {"payload_too_large"}, 415: {"unsupported_media_type"},
        429: {"rate_limited"}, 503: {"service_unavailable"}}
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            assert op["operationId"]
            if op["security"] or path.startswith("/api/") or path == "/readyz":
                assert "503" in op["responses"], (method, path)
            for status in ("429", "503"):
                if status in op["responses"]:
                    header = op["responses"][status]["headers"]["Retry-After"]
                    assert header["required"] is True, (method, path)
            if "{" in path:
                param = op["parameters"][0]["schema"]
                assert (param["minimum"], param["maximum"]) == (1, 2**63 - 1)
                assert 400 in _codes(spec, method, path)
    assert _codes(spec, "get", "/ws/queue") == {400: {"bad_request"}, 403: {"origin_not_allowed"}}
    assert 400 in _codes(spec, "get", "/admin/concerts/{concert_id}/queue")
    hold = spec["components"]["schemas"]["HoldRequest"]
    assert hold["oneOf"] == [{"required": ["seat_numbers"]}, {"required": ["quantity"]}]
    assert hold["properties"]["seat_numbers"]["uniqueItems"] is True
    key = spec["paths"]["/api/v1/payments"]["post"]["parameters"][0]
    assert (key["name"], key["in"], key["required"]) == ("Idempotency-Key", "header", True)
    assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, 64)
    limits = spec["paths"]["/api/v1/limits"]["get"]["responses"]["200"]
    assert limits["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LimitsOut"}
    times = spec["components"]["schemas"]["ReservationOut"]["properties"]["hold_expires_at"]
    assert times["format"] == "date-time"
    assert spec["components"]["schemas"]["JoinOut"]["properties"]["token"]["format"] == "uuid"
    # Links lead from a hold to reading, releasing and paying it.
    links = spec["paths"]["/api/v1/reservations"]["post"]["responses"]["201"]["links"]
    assert {v["operationId"] for v in links.values()} == {
        "getReservation", "releaseReservation", "pay"}


async def test_docs_page_is_self_contained(shop: Shop) -> None:
    answer = await shop.client.get("/api/v1/docs")
    assert answer.status == 200 and answer.content_type == "text/html"
    page = await answer.text()
    assert "/api/v1/openapi.json" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
