"""The OpenAPI document covers the whole contract and comes from the validating types."""

from __future__ import annotations

import re

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
ADDITIONS = {("get", "/api/v1/limits"), ("get", "/api/v1/concerts/{concert_id}/preview"),
             ("get", "/api/v1/schedules/{schedule_id}/preview")}


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
        assert schemas[name] == own[name]
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
                    assert problem == {"$ref": "#/components/schemas/Problem"}


async def test_docs_page_is_self_contained(shop: Shop) -> None:
    answer = await shop.client.get("/api/v1/docs")
    assert answer.status == 200 and answer.content_type == "text/html"
    page = await answer.text()
    assert "/api/v1/openapi.json" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
