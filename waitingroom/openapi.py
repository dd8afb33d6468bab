"""The OpenAPI document of the whole HTTP API, generated from the msgspec types that validate it."""

from __future__ import annotations

import dataclasses
import functools
import re
from importlib import resources
from typing import Any

import msgspec
from aiohttp import web

from booking import schemas as b
from booking.audit import Audit

from . import schemas as w

_PATH_PARAM = re.compile(r"{(\w+)}")


@dataclasses.dataclass(frozen=True, slots=True)
class Op:
    """One operation: what it takes, what it answers, which problems it may answer."""

    name: str  # its operationId
    method: str
    path: str
    summary: str
    tag: str
    answer: Any = None  # the 2xx body type; None for an empty answer
    statuses: tuple[int, ...] = (200,)  # its success statuses, each with that body
    body: Any = None
    auth: str | None = "queueToken"
    problems: tuple[tuple[int, str], ...] = ()  # (status, its problem codes, comma-separated)
    headers: tuple[tuple[str, str, int], ...] = ()  # (name, description, max length)
    description: str = ""
    media_type: str = "application/json"


# Problems that many operations share.
_UNAVAILABLE = ((503, "service_unavailable"),)  # Redis or PostgreSQL is not answering
_LIMITED = ((429, "rate_limited"),)
_ID = ((400, "validation_error"),)  # a path id that is not a positive integer below 2^63
_TOKEN = ((401, "token_missing, token_invalid"), (403, "token_not_admitted, token_wrong_concert"),
          (410, "token_expired"), *_LIMITED, *_UNAVAILABLE)
_LIVE = ((401, "token_missing, token_invalid"), (410, "token_expired"), *_LIMITED, *_UNAVAILABLE)
_BODY = ((400, "validation_error"), (413, "payload_too_large"), (415, "unsupported_media_type"))
_ADMIN = ((401, "admin_unauthorized"), (404, "not_found"), *_ID, *_LIMITED, *_UNAVAILABLE)
# Seconds to wait, on every 429 and 503.
_RETRY_AFTER = {"Retry-After": {
    "description": "Whole seconds to wait before trying again", "required": True,
    "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"}}}

OPERATIONS: tuple[Op, ...] = (
    Op("listConcerts", "get", "/api/v1/concerts", "Concerts and their queues", "waiting room",
       list[w.ConcertOut], auth=None, problems=(*_LIMITED, *_UNAVAILABLE)),
    Op("getLimits", "get", "/api/v1/limits", "The server's limits and time windows", "waiting room",
       w.LimitsOut, auth=None, problems=(*_LIMITED, *_UNAVAILABLE),
       description="Charge range, seats per user, and how long a hold, an admission and an "
                   "unwatched place last, in seconds: what pages tell their users."),
    Op("joinQueue", "post", "/api/v1/concerts/{concert_id}/queue", "Join a concert's queue", "waiting room",
       w.JoinOut, (201, 200), w.JoinRequest, auth=None,
       problems=(*_BODY, (401, "identity_required, identity_invalid"), (404, "not_found"),
                 *_LIMITED, *_UNAVAILABLE),
       description="201 for a new place, 200 with the same token and place when already queued. "
                   "The body carries identity (a JWT from the selling site); user_id alone "
                   "only where unsigned joins are allowed, else 401 identity_required."),
    Op("getQueueStatus", "get", "/api/v1/queue", "Where my token stands (polling fallback; a sign of life)",
       "waiting room", w.QueueStatusOut,
       problems=((401, "token_missing, token_invalid"), *_LIMITED, *_UNAVAILABLE),
       description="An expired token still answers 200 with state EXPIRED and its reason."),
    Op("leaveQueue", "delete", "/api/v1/queue", "Leave the queue (the token is EXPIRED)", "waiting room",
       statuses=(204,), problems=((401, "token_missing, token_invalid"), *_LIMITED, *_UNAVAILABLE),
       description="Leaving again answers 204 again."),
    Op("queueSocket", "get", "/ws/queue", "Live queue over a WebSocket (?token=...)", "waiting room",
       w.PositionFrame | w.AdmittedFrame | w.ExpiredFrame | w.SoldOutFrame | w.PreQueueFrame,
       (101,), auth=None,
       problems=((400, "bad_request"), (403, "origin_not_allowed")),
       description="Server frames, one JSON object each: position, admitted, expired (then "
                   "close), sold_out (the socket stays open; positions resume if seats come "
                   "back), pre_queue (waiting for a scheduled opening: no position until the "
                   "draw, then position frames). Close codes 4401 unknown or malformed token, "
                   "4410 expired token, "
                   "1001 server going away (reconnect; the place is kept), 1013 (1011 means "
                   "the same) the queue store cannot be reached: sent at the upgrade while "
                   "Redis is down, and to open sockets once their process has not reached it "
                   "for five ticks (at least 3 s); reconnect with backoff, the place is kept. "
                   "Clients may send {\"type\": \"ping\"}. A request "
                   "that is not a WebSocket upgrade: 400. "
                   "Position frames come every second "
                   "near the front (an ETA of two minutes or less); further back, only once the "
                   "position or ETA shown would be more than 1 % off, and at least every 5 s, so "
                   "that what a client shows is never more than 2 % off the true position and "
                   "ETA. Admitted, expired and sold_out frames are sent at once."),
    Op("listSchedules", "get", "/api/v1/concerts/{concert_id}/schedules",
       "Dates with at least one seat on sale", "booking", list[b.ScheduleOut], problems=(*_ID, *_TOKEN)),
    Op("getSeatMap", "get", "/api/v1/schedules/{schedule_id}/seats", "Seat map of one date", "booking",
       list[b.SeatOut], problems=(*_ID, *_TOKEN, (404, "not_found")),
       description="A seat whose hold ran out is AVAILABLE at once. Optional ?from=&to= (seat "
                   "numbers, inclusive) for a range (400 validation_error naming the bad one). "
                   "Answers carry an ETag: sent back in If-None-Match, an unchanged map answers "
                   "304 without being read. Compressed when the client accepts gzip or deflate."),
    Op("previewSchedules", "get", "/api/v1/concerts/{concert_id}/preview",
       "Dates, seats on sale and prices, while waiting", "booking", list[b.PreviewScheduleOut],
       problems=(*_ID, *_LIVE, (403, "token_wrong_concert")),
       description="Any live token of this concert, WAITING included; up to 5 s stale."),
    Op("previewSeatMap", "get", "/api/v1/schedules/{schedule_id}/preview",
       "A date's seat map, while waiting", "booking", list[b.SeatOut],
       problems=(*_ID, *_LIVE, (403, "token_wrong_concert"), (404, "not_found")),
       description="Any live token of this date's concert, WAITING included; up to 5 s stale."),
    Op("holdSeats", "post", "/api/v1/reservations", "Hold seats, all or none", "booking", b.ReservationOut,
       (201,), b.HoldRequest,
       problems=(*_BODY, *_TOKEN, (404, "not_found"), (409, "seat_unavailable, seat_limit")),
       description="Send exactly one of seat_numbers and quantity. A seat number the date does "
                   "not have is a validation_error; seats on hold or sold: 409 seat_unavailable "
                   "with `seats` naming them. The hold lasts hold_ttl (default 300 s)."),
    Op("getReservation", "get", "/api/v1/reservations/{reservation_id}", "One of my reservations", "booking",
       b.ReservationOut, problems=(*_ID, *_TOKEN, (404, "not_found")),
       description="Another user's reservation is not found. A hold that ran out shows EXPIRED."),
    Op("releaseReservation", "delete", "/api/v1/reservations/{reservation_id}",
       "Release a WAITING hold", "booking", statuses=(204,),
       problems=(*_ID, *_TOKEN, (404, "not_found"), (409, "already_paid")),
       description="Its seats are on sale at once. A hold that already ended: 204 again."),
    Op("pay", "post", "/api/v1/payments", "Pay for a hold from the balance", "booking", b.PaymentOut,
       (201,), b.PaymentRequest,
       problems=(*_BODY, *_TOKEN, (402, "insufficient_balance"), (404, "not_found"),
                 (409, "hold_expired, already_paid, idempotency_in_progress"),
                 (422, "idempotency_key_reused")),
       headers=(("Idempotency-Key", "1..64 printable characters, unique per payment", 64),),
       description="The same key and body answer the first payment again (also once the "
                   "payment expired the token); a failed attempt spends no key. After the "
                   "payment the queue token is EXPIRED (reason completed)."),
    Op("refund", "post", "/api/v1/payments/{payment_id}/refund", "Refund a paid booking", "booking",
       b.RefundOut, (200,),
       problems=(*_ID, *_LIVE, (404, "payment_not_found"),
                 (409, "already_refunded, refund_closed, idempotency_in_progress"),
                 (422, "idempotency_key_reused")),
       headers=(("Idempotency-Key", "1..64 printable characters, unique per refund", 64),),
       description="Any live token of the user. The whole amount goes back on the balance, the "
                   "reservation is CANCELED and its seats are on sale at once, in one "
                   "transaction; the same key answers the same refund again."),
    Op("listMyReservations", "get", "/api/v1/reservations", "My bookings, newest first", "booking",
       list[b.BookingOut], problems=_LIVE, description="Any live token of the user; the newest 200."),
    Op("getBalance", "get", "/api/v1/balance", "My balance", "balance", b.BalanceOut, problems=_LIVE,
       description="Any live token of the user, WAITING or AVAILABLE."),
    Op("chargeBalance", "post", "/api/v1/balance/charges", "Add to my balance", "balance",
       b.BalanceOut, (201,), b.ChargeRequest, problems=(*_BODY, *_LIVE)),
    Op("healthz", "get", "/healthz", "The process is alive", "operations", w.StatusOut, auth=None),
    Op("readyz", "get", "/readyz", "Redis and PostgreSQL answer", "operations", w.StatusOut, auth=None,
       problems=_UNAVAILABLE),
    Op("metrics", "get", "/metrics", "Prometheus metrics", "operations", str, auth=None,
       media_type="text/plain"),
    Op("getQueueFigures", "get", "/admin/concerts/{concert_id}/queue", "A queue's figures", "admin",
       w.AdminQueueOut, auth="adminKey", problems=_ADMIN,
       description="404 also when the admin API is off (no ADMIN_TOKEN). eta_error: how far "
                   "the ETAs given were off, |predicted - actual| / actual, median and 90th "
                   "percentile over the latest 1,000 scored predictions (made at joining and at "
                   "each whole minute of waiting, scored when the token is admitted after 5 s "
                   "or more); null without any."),
    Op("configureQueue", "patch", "/admin/concerts/{concert_id}/queue", "Change a queue's live configuration",
       "admin", w.AdminQueueOut, body=w.QueuePatch, auth="adminKey", problems=(*_BODY, *_ADMIN),
       description="Any of admit_rate, max_active, paused, admission_mode and opens_at; every "
                   "process reads it within a tick. In inventory mode the admitter chooses the "
                   "rate (chosen_rate, rate_reason, rate_detail in the answer): admit_rate at "
                   "most, never more AVAILABLE tokens than the seats left can serve, slower "
                   "while the booking API's p95 latency is above BOOKING_P95_BOUND. opens_at "
                   "schedules the sale's opening (RFC 3339 with an "
                   "offset, rounded up to the whole second, a past time meaning now; "
                   "else 400 validation_error and nothing changes): until then joins wait in "
                   "a pre-queue with no position and nobody is admitted, and at the opening the "
                   "pre-queue is placed in the order of HMAC-SHA256(seed, token); see "
                   "getDraw. A new time keeps the seed already committed to; null opens a "
                   "waiting pre-queue at once."),
    Op("whatIf", "post", "/admin/concerts/{concert_id}/what-if",
       "What a proposed admit_rate or max_active would do (nothing changes)", "admin",
       w.WhatIfOut, body=w.WhatIfRequest, auth="adminKey", problems=(*_BODY, *_ADMIN),
       description="When the queue would drain, the ETA of the median and of the last waiter, "
                   "now and with the proposal, and whether the seats left (divided by the seats "
                   "an admitted person buys, measured once enough have ended) run out before the "
                   "queue does. The operators' console (/admin, live over the /admin/ws socket) "
                   "shows it before applying a change."),
    Op("getDraw", "get", "/api/v1/concerts/{concert_id}/draw",
       "A scheduled opening's commitment, then its draw", "waiting room", w.DrawOut, auth=None,
       problems=(*_ID, (404, "not_found"), *_LIMITED, *_UNAVAILABLE),
       description="The concert's latest scheduled opening (404 when it never had one). Before "
                   "it: the commitment, sha256 of a secret 32-byte seed. After the draw: the "
                   "seed and the HMAC-SHA256(seed, token) of every token drawn, ascending, so "
                   "that the n-th is rank n; tokens that joined after the opening are behind "
                   "them in order of arrival. Compressed when the client accepts gzip or "
                   "deflate. Check it with `waitingroom verify-draw TOKEN URL`."),
    Op("audit", "get", "/admin/audit", "The shop's books, checked in SQL", "admin", Audit,
       auth="adminKey", problems=((401, "admin_unauthorized"), (404, "not_found"), *_LIMITED,
                                  *_UNAVAILABLE),
       description="No seat in two live reservations, every sale paid, every balance equal to "
                   "its ledger, money charged = money paid + money held; ok says all hold."),
)

# OpenAPI links: where a success answer's ids lead (stateful clients and testers follow them).
_LINKS: dict[str, dict[str, dict[str, Any]]] = {
    "listConcerts": {
        "JoinQueue": {"operationId": "joinQueue",
                      "parameters": {"concert_id": "$response.body#/0/id"}},
        "ListSchedules": {"operationId": "listSchedules",
                          "parameters": {"concert_id": "$response.body#/0/id"}},
        "QueueFigures": {"operationId": "getQueueFigures",
                         "parameters": {"concert_id": "$response.body#/0/id"}},
    },
    "joinQueue": {
        "QueueSocket": {"operationId": "queueSocket", "parameters": {"token": "$response.body#/token"}},
    },
    "listSchedules": {
        "SeatMap": {"operationId": "getSeatMap", "parameters": {"schedule_id": "$response.body#/0/id"}},
        "HoldSeats": {"operationId": "holdSeats",
                      "requestBody": {"schedule_id": "$response.body#/0/id", "quantity": 1}},
    },
    "holdSeats": {
        "GetReservation": {"operationId": "getReservation",
                           "parameters": {"reservation_id": "$response.body#/id"}},
        "ReleaseReservation": {"operationId": "releaseReservation",
                               "parameters": {"reservation_id": "$response.body#/id"}},
        "Pay": {"operationId": "pay", "requestBody": {"reservation_id": "$response.body#/id"}},
    },
    "pay": {
        "GetReservation": {"operationId": "getReservation",
                           "parameters": {"reservation_id": "$response.body#/reservation_id"}},
    },
}

# The reservation request takes exactly one of seat_numbers and quantity.
_ONE_OF = {"HoldRequest": [{"required": ["seat_numbers"]}, {"required": ["quantity"]}]}


def _problem(status: int, codes: str) -> dict[str, Any]:
    schema = {"allOf": [{"$ref": "#/components/schemas/Problem"}, {"properties": {
        "status": {"const": status}, "code": {"enum": codes.split(", ")}}}]}
    out: dict[str, Any] = {"description": codes,
                           "content": {"application/problem+json": {"schema": schema}}}
    if status in (429, 503):
        out["headers"] = _RETRY_AFTER
    return out


def _operation(op: Op, schemas: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}
        for name in _PATH_PARAM.findall(op.path)]
    params += [{"name": name, "in": "header", "required": True, "description": text,
                "schema": {"type": "string", "minLength": 1, "maxLength": length,
                           "pattern": "^[!-~]([ -~]*[!-~])?$"}}
               for name, text, length in op.headers]
    if op.path == "/ws/queue":
        params.append({"name": "token", "in": "query", "required": True,
                       "schema": {"type": "string", "format": "uuid"}})
    responses: dict[str, Any] = {}
    for status in op.statuses:
        ok: dict[str, Any] = {"description": "OK"}
        if op.answer is not None:
            ok["content"] = {op.media_type: {"schema": schemas[op.answer]}}
        if op.name in _LINKS:
            ok["links"] = _LINKS[op.name]
        responses[str(status)] = ok
    codes: dict[int, list[str]] = {}
    for status, names in op.problems:
        codes.setdefault(status, []).extend(n for n in names.split(", ")
                                            if n not in codes.get(status, []))
    for status in sorted(codes):
        responses[str(status)] = _problem(status, ", ".join(codes[status]))
    out: dict[str, Any] = {"operationId": op.name, "summary": op.summary, "tags": [op.tag],
                           "responses": responses,
                           "security": [{op.auth: []}] if op.auth else []}
    if op.description:
        out["description"] = op.description
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": schemas[op.body]}}}
    return out


@functools.cache
def document() -> bytes:
    """The OpenAPI 3.1 document, built once from the request and response types."""
    kinds: list[Any] = [w.Problem]
    for op in OPERATIONS:
        kinds += [k for k in (op.body, op.answer) if k is not None and k not in kinds]
    generated, components = msgspec.json.schema_components(
        kinds, ref_template="#/components/schemas/{name}")
    schemas = dict(zip(kinds, generated, strict=True))
    for name, branches in _ONE_OF.items():
        components[name]["oneOf"] = branches
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, schemas)
    spec = {
        "openapi": "3.1.0",
        "info": {"title": "waitingroom", "version": "1",
                 "description": "A waiting-room gateway for flash sales: a fair queue, then "
                                "seat holds and payments behind it. Money is integer won; every "
                                "error is an RFC 9457 problem whose `code` clients branch on."},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "queueToken": {"type": "http", "scheme": "bearer",
                               "description": "The queue token from joining; names the user"},
                "adminKey": {"type": "http", "scheme": "bearer",
                             "description": "ADMIN_TOKEN from configuration"},
            },
        },
    }
    return msgspec.json.encode(spec)


@functools.cache
def _docs_page() -> bytes:
    return (resources.files("waitingroom") / "static" / "docs.html").read_bytes()


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=document(), content_type="application/json")


async def docs(request: web.Request) -> web.Response:
    return web.Response(body=_docs_page(), content_type="text/html", charset="utf-8")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", openapi_json)
    app.router.add_get("/api/v1/docs", docs)
