"""HTTP handlers of the waiting room. Thin: validation, one queue call, one answer."""

from __future__ import annotations

import hmac
from pathlib import Path

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from booking.audit import audit
from booking.errors import NotFound, ServiceUnavailable
from booking.schemas import CHARGE_MAX, CHARGE_MIN
from booking.wire import bearer, path_id, read_json, reply

from . import draw, errors, queries, tokenlog
from .appkeys import CONCERTS, IDENTITIES, METRICS, PG, QUEUES, SETTINGS
from .identity import sign
from .queue import Figures, Ticket
from .records import rfc3339
from .schemas import (
    AdminQueueOut,
    ConcertOut,
    DrawOut,
    EtaError,
    IdentityOut,
    JoinOut,
    JoinRequest,
    LimitsOut,
    QueuePatch,
    QueueStatusOut,
    QueueSummary,
    SignInRequest,
    StatusOut,
)
from .ws import queue_socket

# A demo identity lasts long enough for a demo.
DEV_IDENTITY_TTL = 3600


# -- public -------------------------------------------------------------------------------
async def list_concerts(request: web.Request) -> web.Response:
    rows = await request.app[CONCERTS].all()
    figures = await request.app[QUEUES].figures([r["id"] for r in rows])
    return reply([
        ConcertOut(id=r["id"], name=r["name"], host=r["host"], queue=QueueSummary(
            waiting=f.waiting, active=f.active, admit_rate=f.admit_rate, paused=f.paused,
            sold_out=f.sold_out))
        for r in rows for f in [figures[r["id"]]]
    ])


async def limits(request: web.Request) -> web.Response:
    s = request.app[SETTINGS]
    return reply(LimitsOut(charge_min=CHARGE_MIN, charge_max=CHARGE_MAX,
                           max_seats_per_user=s.max_seats_per_user, hold_ttl_seconds=s.hold_ttl,
                           active_ttl_seconds=s.active_ttl, wait_grace_seconds=s.wait_grace))


def _ws_url(request: web.Request, token: str) -> str:
    scheme = "wss" if request.secure else "ws"
    return f"{scheme}://{request.host}/ws/queue?token={token}"


async def join(request: web.Request) -> web.Response:
    app = request.app
    concert_id = path_id(request, "concert_id")
    body = await read_json(request, JoinRequest)
    user_id = app[IDENTITIES].user_of(
        body.identity if isinstance(body.identity, str) else None,
        body.user_id if isinstance(body.user_id, int) else None)
    await app[CONCERTS].require(concert_id)
    ticket = await app[QUEUES].join(concert_id, user_id)
    metrics = app[METRICS]
    (metrics.joins_new if ticket.created else metrics.joins_again).inc()
    rec = ticket.record
    return reply(JoinOut(token=ticket.token, state=rec.state, position=ticket.position,
                         eta_seconds=ticket.rate.eta(ticket.position),
                         expires_at=rfc3339(rec.expires_ms), ws_url=_ws_url(request, ticket.token),
                         pre_queue=ticket.opens_ms is not None,
                         opens_at=rfc3339(ticket.opens_ms),
                         eta_range=ticket.rate.eta_range(ticket.position)),
                 status=201 if ticket.created else 200)


def _status(ticket: Ticket) -> QueueStatusOut:
    rec = ticket.record
    return QueueStatusOut(state=rec.state, position=ticket.position,
                          eta_seconds=ticket.rate.eta(ticket.position),
                          expires_at=rfc3339(rec.expires_ms), concert_id=ticket.concert_id,
                          reason=rec.reason, sold_out=ticket.rate.sold_out,
                          pre_queue=ticket.opens_ms is not None, opens_at=rfc3339(ticket.opens_ms),
                          eta_range=ticket.rate.eta_range(ticket.position))


async def queue_status(request: web.Request) -> web.Response:
    ticket = await request.app[QUEUES].status(bearer(request))
    request.app[METRICS].polls.inc()
    return reply(_status(ticket))


async def leave(request: web.Request) -> web.Response:
    token = bearer(request)
    queues = request.app[QUEUES]
    concert_id, before = await queues.end(token, "left")
    if before.state == "AVAILABLE":
        await tokenlog.record(queues, request.app[PG],
                              tokenlog.TokenChange(concert_id, expired=[token], reason="left"))
    return web.Response(status=204)


# A published draw this long is worth compressing (when the client accepts it).
COMPRESS_FROM_HMACS = 100


async def concert_draw(request: web.Request) -> web.Response:
    """The concert's latest opening: its commitment, and after the draw its seed and HMACs."""
    concert_id = path_id(request, "concert_id")
    await request.app[CONCERTS].require(concert_id)
    row = await queries.latest_draw(request.app[PG], concert_id)
    if row is None:
        raise NotFound("This concert has no scheduled opening")
    out = DrawOut(concert_id=concert_id, opens_at=draw.rfc3339_of(row["opens_at"]),
                  commitment=row["commitment"])
    if row["drawn_at"] is not None:
        raw = bytes(row["hmacs"] or b"")
        out.drawn_at = draw.rfc3339_of(row["drawn_at"])
        out.seed = bytes(row["seed"]).hex()
        out.hmacs = [raw[i:i + 32].hex() for i in range(0, len(raw), 32)]
    response = reply(out)
    response.headers["Cache-Control"] = "no-cache"
    if out.hmacs is not None and len(out.hmacs) >= COMPRESS_FROM_HMACS:
        response.enable_compression()
    return response


async def dev_sign_in(request: web.Request) -> web.Response:
    """The demo's sign-in: anyone may be anyone. Only `waitingroom dev` mounts it."""
    body = await read_json(request, SignInRequest)
    secret = request.app[SETTINGS].identity_secret
    assert secret is not None  # mounted only with one
    return reply(IdentityOut(identity=sign(secret, body.user_id, DEV_IDENTITY_TTL)))


# -- operations ---------------------------------------------------------------------------
async def healthz(request: web.Request) -> web.Response:
    return reply(StatusOut(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[QUEUES].ping()
        await request.app[PG].fetchval("SELECT 1")
    except Exception as e:  # any failure means not ready; the reason goes in the answer
        raise ServiceUnavailable(f"Not ready: {e!r}") from None
    return reply(StatusOut(status="ready"))


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text: this process's figures, and every concert's queue as Redis has it."""
    m = request.app[METRICS]
    rows = await request.app[CONCERTS].all()
    ids = [r["id"] for r in rows]
    for f in (await request.app[QUEUES].figures(ids)).values():
        m.concert(f.concert_id, f.waiting, f.active, f.admitted_total, f.dropped_total,
                  f.measured_rate if f.measured_rate is not None else f.admit_rate, f.admit_rate,
                  f.sold_out, f.on_sale, f.ended)
    for cid, e in (await request.app[QUEUES].eta_accuracy(ids)).items():
        m.eta_error(cid, e.median, e.p90, e.samples)
    pool = request.app[PG]
    m.pg_pool.labels("in_use").set(pool.get_size() - pool.get_idle_size())
    m.pg_pool.labels("idle").set(pool.get_idle_size())
    body = m.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


# -- admin --------------------------------------------------------------------------------
def admin_on(request: web.Request) -> str:
    """The admin key; NotFound when the admin API is off."""
    key = request.app[SETTINGS].admin_token
    if not key:
        raise NotFound("The admin API is off: set ADMIN_TOKEN to turn it on")
    return key


def admin_key_matches(key: str, given: str) -> bool:
    return hmac.compare_digest(given.strip().encode(), key.encode())


def _admin(request: web.Request) -> None:
    key = admin_on(request)
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not admin_key_matches(key, given):
        raise errors.AdminUnauthorized()


def rate_choice(f: Figures) -> tuple[float, str, str]:
    """(the rate the admitter works at, why in a stable word, the same in words)."""
    if f.paused:
        return 0.0, "paused", "paused by the operator"
    if f.sold_out:
        return 0.0, "sold_out", "no seat on sale: admission waits for seats to come back"
    if f.admission_mode == "inventory" and f.chosen_rate is not None:
        return f.chosen_rate, f.rate_reason or "configured", f.rate_detail or ""
    return f.admit_rate, "configured", f"{f.admit_rate:g}/s as configured"


async def admin_answer(app: web.Application, concert_id: int) -> AdminQueueOut:
    """The admin API's figures of one queue (also what the console's socket sends)."""
    f = (await app[QUEUES].figures([concert_id]))[concert_id]
    chosen, reason, detail = rate_choice(f)
    opens_ms, _ = await app[QUEUES].opening(concert_id)
    e = (await app[QUEUES].eta_accuracy([concert_id]))[concert_id]
    return AdminQueueOut(concert_id=concert_id, waiting=f.waiting, active=f.active,
                         admitted_total=f.admitted_total, dropped_total=f.dropped_total,
                         admit_rate=f.admit_rate, max_active=f.max_active, paused=f.paused,
                         admission_mode=f.admission_mode, chosen_rate=chosen, rate_reason=reason,
                         rate_detail=detail,
                         eta_error=EtaError(median=e.median, p90=e.p90, samples=e.samples),
                         opens_at=rfc3339(opens_ms))


async def _admin_figures(request: web.Request, concert_id: int) -> web.Response:
    return reply(await admin_answer(request.app, concert_id))


async def admin_queue(request: web.Request) -> web.Response:
    _admin(request)
    concert_id = path_id(request, "concert_id")
    await request.app[CONCERTS].require(concert_id)
    return await _admin_figures(request, concert_id)


async def admin_patch_queue(request: web.Request) -> web.Response:
    _admin(request)
    concert_id = path_id(request, "concert_id")
    patch = await read_json(request, QueuePatch)
    await request.app[CONCERTS].require(concert_id)
    admit_rate = None if patch.admit_rate is msgspec.UNSET else patch.admit_rate
    max_active = None if patch.max_active is msgspec.UNSET else patch.max_active
    paused = None if patch.paused is msgspec.UNSET else patch.paused
    mode = None if patch.admission_mode is msgspec.UNSET else patch.admission_mode
    opens_ms: int | None = None
    if isinstance(patch.opens_at, str):
        # Checked before anything is written: a bad time changes nothing.
        opens_ms = draw.parse_opens_at(patch.opens_at, await request.app[QUEUES].clock_ms())
    # PostgreSQL first: it is what restores Redis if Redis comes back empty.
    await queries.save_queue_settings(request.app[PG], concert_id, admit_rate, max_active, paused,
                                      mode)
    await request.app[QUEUES].configure(concert_id, admit_rate=admit_rate, max_active=max_active,
                                        paused=paused, admission_mode=mode)
    if patch.opens_at is not msgspec.UNSET:
        await draw.schedule(request.app[QUEUES], request.app[PG], concert_id, opens_ms)
    return await _admin_figures(request, concert_id)


# -- pages --------------------------------------------------------------------------------
STATIC = Path(__file__).parent / "static"


def _page(name: str) -> Handler:
    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})

    return page


async def static_file(request: web.Request) -> web.FileResponse:
    """A file of the pages; anything else (a missing file, a way out of the folder) is 404."""
    path = (STATIC / request.match_info["path"]).resolve()
    if not path.is_relative_to(STATIC.resolve()) or not path.is_file():
        raise NotFound("No such file")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


async def admin_audit(request: web.Request) -> web.Response:
    """The shop's invariants, checked in SQL (no seat sold twice; the money adds up)."""
    _admin(request)
    return reply(await audit(request.app[PG]))


def add_routes(app: web.Application) -> None:
    settings = app[SETTINGS]
    if settings.dev_sign_in and settings.identity_secret:
        app.router.add_post("/dev/identity", dev_sign_in)
    # First of the routes under /api/v1/concerts: the router tries them in the order added, and
    # joins are most of the requests in a sale.
    app.router.add_post("/api/v1/concerts/{concert_id}/queue", join)
    app.router.add_get("/", _page("index.html"))
    app.router.add_get(r"/queue/{concert_id:\d+}", _page("queue.html"))
    app.router.add_get(r"/book/{concert_id:\d+}", _page("book.html"))
    app.router.add_get("/bookings", _page("bookings.html"))
    app.router.add_get("/static/{path:.+}", static_file)
    app.router.add_get("/favicon.ico", _page("favicon.svg"))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/concerts", list_concerts)
    app.router.add_get("/api/v1/limits", limits)
    app.router.add_get("/api/v1/concerts/{concert_id}/draw", concert_draw)
    app.router.add_get("/api/v1/queue", queue_status)
    app.router.add_delete("/api/v1/queue", leave)
    app.router.add_get("/ws/queue", queue_socket)
    app.router.add_get("/admin/concerts/{concert_id}/queue", admin_queue)
    app.router.add_patch("/admin/concerts/{concert_id}/queue", admin_patch_queue)
    app.router.add_get("/admin/audit", admin_audit)
