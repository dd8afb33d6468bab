"""The pages in headless Chromium, against real `web` and `admitter` processes.

Skipped when no Chromium is installed (scripts/test installs Debian's when run as root).
Screenshots of the pages are saved under artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import os
import re
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import asyncpg
import jwt
import pytest

from tests.conftest import TEST_SECRET, Proc, Spawn, eventually

if TYPE_CHECKING:  # Playwright may be missing: the tests then skip, see pytestmark
    from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Locator, Page, WebSocketRoute

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                       reason="no Chromium found: install Debian's `chromium` "
                              "(scripts/test does so when run as root)"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="Playwright is not installed: pip install -e '.[browser]'"),
]

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
SHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
ADMIN = {"Authorization": "Bearer k"}  # the spawn fixture's ADMIN_TOKEN
# Quick ticks; a long grace so that a restart never costs anyone their place. Joins need a signed
# identity, and the demo sign-in (POST /dev/identity) is on, as under `waitingroom dev`.
ENV = {"TICK_INTERVAL": "0.2", "WAIT_GRACE": "30", "DEV_SIGN_IN": "true", "ALLOW_UNSIGNED_JOINS": "false"}
WAIT = 10_000  # ms: the longest any page may take to show what it should
# What Chromium logs by itself for a request that failed (the tests provoke many on purpose).
FAILED_REQUEST = re.compile(r"^(Failed to load resource|WebSocket connection to )")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=WAIT)
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        await b.close()


async def add_show(pg: asyncpg.Pool, seats: int = 10, price: int = 10_000) -> tuple[int, int]:
    """A concert with one date of numbered seats: (concert id, schedule id)."""
    async with pg.acquire() as conn, conn.transaction():
        cid = await conn.fetchval("INSERT INTO concerts (name, host) VALUES ($1, 'Test Hall')"
                                  " RETURNING id", f"Aurora Live {uuid.uuid4().hex[:4]}")
        sid = await conn.fetchval("INSERT INTO concert_schedules (concert_id, concert_date)"
                                  " VALUES ($1, $2) RETURNING id", cid, date(2026, 12, 24))
        await conn.execute("INSERT INTO concert_seats (schedule_id, seat_number, price)"
                           " SELECT $1, n, $3 FROM generate_series(1, $2) n", sid, seats, price)
    return int(cid), int(sid)


class Site:
    """The running web process, seen by a plain HTTP client (the organiser, other buyers)."""

    def __init__(self, web: Proc, http: aiohttp.ClientSession) -> None:
        self.web, self.http = web, http

    @property
    def url(self) -> str:
        return self.web.url

    async def queue(self, cid: int, **patch: Any) -> None:
        async with self.http.patch(f"{self.url}/admin/concerts/{cid}/queue", json=patch,
                                   headers=ADMIN) as r:
            assert r.status == 200, await r.text()

    async def join(self, cid: int, user: int) -> str:
        async with self.http.post(f"{self.url}/api/v1/concerts/{cid}/queue",
                                  json={"identity": identity_for(user)}) as r:
            assert r.status in (200, 201), await r.text()
            return str((await r.json())["token"])

    async def admitted(self, cid: int, user: int) -> str:
        """A token of `user` that the admitter has let through."""
        token = await self.join(cid, user)

        async def through() -> bool:
            async with self.http.get(f"{self.url}/api/v1/queue",
                                     headers={"Authorization": f"Bearer {token}"}) as r:
                state: str = (await r.json())["state"]
                return state == "AVAILABLE"

        await eventually(through, timeout=10, interval=0.1)
        return token

    async def call(self, method: str, path: str, token: str, body: Any,
                   status: int = 201, headers: Mapping[str, str] | None = None) -> Any:
        """The JSON answer of a request by the holder of `token`, which must have this status."""
        sent = {**(headers or {}), "Authorization": f"Bearer {token}"}
        async with self.http.request(method, self.url + path, json=body, headers=sent) as r:
            assert r.status == status, await r.text()
            return await r.json()

    async def buy(self, cid: int, sid: int, user: int, seats: list[int], pay: bool) -> None:
        """Another buyer holds `seats` (and pays for them when `pay`) over plain HTTP."""
        token = await self.admitted(cid, user)
        held = await self.call("POST", "/api/v1/reservations", token,
                               {"schedule_id": sid, "seat_numbers": seats})
        if pay:
            await self.call("POST", "/api/v1/balance/charges", token, {"amount": 10_000_000})
            await self.call("POST", "/api/v1/payments", token, {"reservation_id": held["id"]},
                            headers={"Idempotency-Key": uuid.uuid4().hex})


class OpenSite(Protocol):
    """The `open_site` fixture: keyword arguments are the processes' environment variables."""

    def __call__(self, **env: str) -> Awaitable[Site]: ...


class Contexts(Protocol):
    """The `contexts` fixture: keyword arguments are Playwright's `Browser.new_context` options."""

    def __call__(self, **options: Any) -> Awaitable[BrowserContext]: ...


@pytest.fixture
async def open_site(spawn: Spawn) -> AsyncIterator[OpenSite]:
    """`await open_site(**env)`: a web and an admitter process with these settings."""
    async with aiohttp.ClientSession() as http:
        async def start(**env: str) -> Site:
            env = {**ENV, **env}
            web = await spawn("web", **env)
            await spawn("admitter", **env)
            return Site(web, http)

        yield start


@pytest.fixture
async def site(open_site: OpenSite) -> Site:
    return await open_site()


@pytest.fixture
async def contexts(browser: Browser) -> AsyncIterator[Contexts]:
    """New browser contexts (separate storage: separate people); closed after the test, which
    fails if a page logged an error (failed requests aside) or threw."""
    made: list[BrowserContext] = []
    errors: list[str] = []

    def console(msg: ConsoleMessage) -> None:
        if msg.type == "error" and not FAILED_REQUEST.match(msg.text):
            errors.append(msg.text)

    async def make(**options: Any) -> BrowserContext:
        ctx = await browser.new_context(**options)
        ctx.set_default_timeout(WAIT)
        ctx.on("console", console)
        ctx.on("weberror", lambda e: errors.append(str(e.error)))
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        await ctx.close()
    assert errors == [], errors


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def identity_for(user: int, ttl: int = 600) -> str:
    """What the selling site hands `user`: a JWT signed with the gateway's secret."""
    return jwt.encode({"sub": str(user), "exp": int(time.time()) + ttl}, TEST_SECRET,
                      algorithm="HS256")


async def sign_in(page: Page, site: Site, user: int, ttl: int = 600) -> None:
    """Sign `user` in on `page` as the pages keep it: the identity and the user id, stored."""
    await page.goto(site.url + "/healthz")  # same origin, to fill localStorage
    await page.evaluate("""([user, identity]) => {
        localStorage.setItem("wr.user", JSON.stringify(user));
        localStorage.setItem("wr.identity", JSON.stringify(identity));
    }""", [str(user), identity_for(user, ttl)])


async def booking_page(contexts: Contexts, site: Site, cid: int, user: int) -> Page:
    """A page on the booking page of `cid` for an admitted `user`."""
    token = await site.admitted(cid, user)
    page = await (await contexts()).new_page()
    await sign_in(page, site, user)
    await page.evaluate("""([cid, token]) => {
        localStorage.setItem("wr.ticket." + cid, JSON.stringify({token}));
    }""", [cid, token])
    await page.goto(f"{site.url}/book/{cid}")
    await page.locator("#seats .seat").first.wait_for()
    return page


def seat(page: Page, n: int) -> Locator:
    return page.get_by_role("button", name=re.compile(rf"^Seat {n},"))


# -- the waiting room ---------------------------------------------------------------------
async def test_waiting_page_shows_place_then_admission_and_moves_on_to_booking(
        pg: asyncpg.Pool, site: Site, contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, _ = await add_show(pg)
    await site.queue(cid, paused=True)
    for user in (1, 2):
        await site.join(cid, user)
    page = await (await contexts()).new_page()
    sizes: dict[str, int] = {}
    page.on("response", lambda r: sizes.__setitem__(r.url, int(r.headers.get("content-length", 0))))

    await page.goto(site.url + "/")
    await page.get_by_label("Your user id").fill("42")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.locator("#who-id")).to_have_text("42")
    card = page.locator(".concerts li", has_text="Aurora Live")
    await expect(card.locator(".waiting")).to_have_text("2")
    await expect(card.locator(".eta")).to_have_text("paused by the organiser")
    await shot(page, "concerts")
    await site.join(cid, 3)  # the figures refresh by themselves
    await expect(card.locator(".waiting")).to_have_text("3")
    sizes.clear()
    await card.get_by_role("button", name=re.compile("Join the queue")).click()

    await page.wait_for_url(f"**/queue/{cid}")
    await expect(page.locator("#position")).to_have_text("4")
    await expect(page.get_by_text("Your place in line", exact=False).first).to_be_visible()
    await expect(page.locator("#eta")).to_have_text("paused")
    await expect(page.locator("#status")).to_contain_text("paused by the organiser")
    await expect(page.locator("#status")).to_have_attribute("aria-live", "polite")
    # Paused reads as paused, not as a full (or any) progress bar.
    await expect(page.locator("#paused")).to_be_visible()
    await expect(page.locator("#progress")).to_be_hidden()
    await expect(page.locator("#window")).to_have_text("10 minutes")
    # What it takes to show a place stays small; what the wait may be used for comes after.
    await expect(page.locator("#prepare")).to_be_visible()
    fresh = await (await contexts()).new_page()  # nothing cached
    await sign_in(fresh, site, 43)
    sizes.clear()
    fresh.on("response", lambda r: sizes.__setitem__(r.url, int(r.headers.get("content-length", 0))))
    await fresh.goto(f"{site.url}/queue/{cid}")
    await expect(fresh.locator("#plan-seats .seat")).to_have_count(10)
    critical = (f"/queue/{cid}", "/app.css", "/js/queue.js", "/js/common.js", "/js/receipt.js")
    # (48 KB: the page also carries the pre-queue's countdown and the ETA's range in words.)
    assert 0 < sum(v for k, v in sizes.items() if k.endswith(critical)) < 48_000, sizes
    await fresh.close()

    # Refreshing, or a second tab, keeps the same token and place.
    token = await page.evaluate(f"JSON.parse(localStorage.getItem('wr.ticket.{cid}')).token")
    await page.reload()
    await expect(page.locator("#position")).to_have_text("4")
    second = await page.context.new_page()
    await second.goto(f"{site.url}/queue/{cid}")
    await expect(second.locator("#position")).to_have_text("4")
    assert await second.evaluate(f"JSON.parse(localStorage.getItem('wr.ticket.{cid}')).token") == token
    await second.close()

    await site.queue(cid, paused=False, admit_rate=50)
    await expect(page.locator("#admitted")).to_be_visible()
    await expect(page.locator("#status")).to_contain_text("It's your turn")
    await expect(page.locator("#deadline-left")).to_have_text(re.compile(r"^\d+:\d\d$"))
    await page.get_by_role("link", name="Choose your seats").click()
    await page.wait_for_url(f"**/book/{cid}")
    await expect(page.locator("#seats .seat")).to_have_count(10)


async def test_restarted_web_process_page_reconnects_and_keeps_its_place(
        pg: asyncpg.Pool, spawn: Spawn, site: Site, contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, _ = await add_show(pg)
    await site.queue(cid, paused=True)
    for user in (1, 2, 3):
        await site.join(cid, user)
    page = await (await contexts()).new_page()
    await sign_in(page, site, 77)
    await page.goto(f"{site.url}/queue/{cid}")
    await expect(page.locator("#position")).to_have_text("4")
    await expect(page.locator("#plan-seats .seat")).to_have_count(10)  # the page is all there
    token = await page.evaluate(f"JSON.parse(localStorage.getItem('wr.ticket.{cid}')).token")
    everything = "[...document.getElementsByTagName('*')].map(e => e.tagName + '#' + e.id)"
    elements = await page.evaluate(everything)

    site.web.proc.send_signal(signal.SIGTERM)
    await expect(page.locator("#status")).to_contain_text("reconnecting")
    # Lost looks and reads unlike normal: a banner of its own, and the figures are the last known.
    await expect(page.locator("#status")).to_have_class(re.compile("offline"))
    await expect(page.locator(".last-known").first).to_be_visible()
    await expect(page.locator("#updated")).to_contain_text("Last heard from the server at")
    await shot(page, "waiting-offline")
    assert await site.web.proc.wait() == 0
    await spawn("web", port=site.web.port, **ENV)

    await expect(page.locator("#status")).to_contain_text("paused by the organiser", timeout=20_000)
    await expect(page.locator("#status")).not_to_contain_text("reconnecting")
    await expect(page.locator("#status")).not_to_have_class(re.compile("offline"))
    await expect(page.locator(".last-known").first).to_be_hidden()
    await expect(page.locator("#position")).to_have_text("4")
    assert await page.evaluate(f"JSON.parse(localStorage.getItem('wr.ticket.{cid}')).token") == token
    # Losing and finding the server again leaves nothing behind in the page.
    assert await page.evaluate(everything) == elements


async def test_blocked_websockets_fall_back_to_polling_and_still_get_through(
        pg: asyncpg.Pool, site: Site, contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, _ = await add_show(pg)
    await site.queue(cid, paused=True)
    await site.join(cid, 1)
    ctx = await contexts()
    attempts = 0

    async def refuse(ws: WebSocketRoute) -> None:  # as a proxy that does not pass WebSockets would
        nonlocal attempts
        attempts += 1
        await ws.close(code=1011)

    await ctx.route_web_socket(re.compile(r"/ws/queue"), refuse)
    polls: list[str] = []
    page = await ctx.new_page()
    page.on("request", lambda r: polls.append(r.method) if r.url.endswith("/api/v1/queue") else None)
    await sign_in(page, site, 88)
    await page.goto(f"{site.url}/queue/{cid}")

    await expect(page.locator("#status")).to_contain_text("checks every few seconds")
    await expect(page.locator("#position")).to_have_text("2")
    await expect(page.locator("#status")).to_contain_text("paused by the organiser")
    assert attempts >= 3
    await site.queue(cid, paused=False, admit_rate=50)
    await expect(page.locator("#admitted")).to_be_visible()
    await page.get_by_role("link", name="Choose your seats").click()
    await page.wait_for_url(f"**/book/{cid}")
    assert polls.count("GET") >= 2


# -- signing in ---------------------------------------------------------------------------
async def stored(page: Any, name: str) -> Any:
    return await page.evaluate(f"JSON.parse(localStorage.getItem('wr.{name}'))")


async def test_demo_sign_in_then_join_reaches_the_waiting_page(pg: asyncpg.Pool, site: Site,
        contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, _ = await add_show(pg)
    await site.queue(cid, paused=True)
    page = await (await contexts()).new_page()
    await page.goto(site.url + "/")
    await page.get_by_role("button", name="Sign in as a demo user").click()
    await expect(page.locator("#who-id")).to_have_text(re.compile(r"^\d{7,10}$"))
    demo = await page.locator("#who-id").text_content()
    claims = jwt.decode(await stored(page, "identity"), TEST_SECRET, algorithms=["HS256"])
    assert claims["sub"] == demo
    await page.get_by_role("button", name="Sign in as someone else").click()
    await page.get_by_label("Your user id").fill("4242")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.locator("#who-id")).to_have_text("4242")
    assert jwt.decode(await stored(page, "identity"), TEST_SECRET, algorithms=["HS256"])["sub"] == "4242"
    joins: list[tuple[str, Any]] = []
    page.on("requestfinished", lambda r: joins.append((r.url, r.post_data_json))
            if r.method == "POST" else None)

    await page.get_by_role("button", name=re.compile("Join the queue")).click()
    await page.wait_for_url(f"**/queue/{cid}")
    await expect(page.locator("#position")).to_have_text("1")
    await expect(page.locator("#who")).to_have_text("User 4242")
    sent = {"identity": await stored(page, "identity")}
    assert joins == [(f"{site.url}/api/v1/concerts/{cid}/queue", sent)]

    # An hour later the identity has run out: the page gets a fresh one by itself, once.
    await page.evaluate("""([cid, identity]) => {
        localStorage.setItem("wr.identity", JSON.stringify(identity));
        localStorage.removeItem("wr.ticket." + cid);
    }""", [cid, identity_for(4242, ttl=-60)])
    joins.clear()
    statuses: list[int] = []
    page.on("response", lambda r: statuses.append(r.status) if r.request.method == "POST" else None)
    await page.reload()
    await expect(page.locator("#position")).to_have_text("1")
    assert [url.removeprefix(site.url) for url, _ in joins] == [
        f"/api/v1/concerts/{cid}/queue", "/dev/identity", f"/api/v1/concerts/{cid}/queue"]
    assert statuses == [401, 200, 200]
    assert joins[1][1] == {"user_id": 4242}
    fresh = jwt.decode(await stored(page, "identity"), TEST_SECRET, algorithms=["HS256"])
    assert fresh["sub"] == "4242" and fresh["exp"] > time.time()


async def test_a_link_with_an_identity_signs_in_and_leaves_the_address_bar(
        pg: asyncpg.Pool, open_site: OpenSite, contexts: Contexts) -> None:
    from playwright.async_api import expect

    site = await open_site(DEV_SIGN_IN="false")  # as in production: no demo sign-in
    cid, _ = await add_show(pg)
    await site.queue(cid, paused=True)
    page = await (await contexts()).new_page()
    await page.goto(site.url + "/")
    await page.get_by_label("Your user id").fill("5")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.locator("#message")).to_contain_text("on the site that sells the tickets")
    await expect(page.locator("#message")).to_contain_text("/?identity=")
    assert await stored(page, "identity") is None

    identity = identity_for(314)
    await page.goto(f"{site.url}/?identity={identity}#top")
    await expect(page.locator("#who-id")).to_have_text("314")
    await expect(page).to_have_url(f"{site.url}/#top")
    assert await stored(page, "identity") == identity
    await expect(page.locator("#message")).to_be_empty()
    await page.get_by_role("button", name=re.compile("Join the queue")).click()
    await page.wait_for_url(f"**/queue/{cid}")
    await expect(page.locator("#position")).to_have_text("1")

    # Once the identity has run out, nothing can renew it here: the pages say so plainly.
    async def expire() -> None:
        await page.evaluate("""([cid, identity]) => {
            localStorage.setItem("wr.identity", JSON.stringify(identity));
            localStorage.removeItem("wr.ticket." + cid);
        }""", [cid, identity_for(314, ttl=-60)])

    await expire()
    await page.reload()
    await expect(page.locator("#ended-title")).to_have_text("Your sign-in has expired")
    await expect(page.locator("#status")).to_contain_text("Sign in again")
    await expect(page.locator("#waiting")).to_be_hidden()
    await expect(page.get_by_role("button", name="Join the queue again")).to_be_hidden()
    await expect(page.get_by_role("link", name="Sign in again")).to_have_attribute("href", "/")
    await shot(page, "signed-out")
    await expire()
    await page.goto(site.url + "/")
    await page.get_by_role("button", name=re.compile("Join the queue")).click()
    await expect(page.locator("#message")).to_have_text("Your sign-in has expired — sign in again.")
    await expect(page.get_by_label("Your user id")).to_be_focused()
    await expect(page.get_by_label("Your user id")).to_have_value("314")
    await expect(page.get_by_role("button", name=re.compile("Join the queue"))).to_be_enabled()
    assert await stored(page, f"ticket.{cid}") is None


# -- a busy server ------------------------------------------------------------------------
def busy_once(seen: list[float], retry_after: str = "1") -> Callable[[Any], Awaitable[None]]:
    """A route handler: the first request is answered 429 (as the rate limits do), the rest pass."""
    async def handle(route: Any) -> None:
        seen.append(time.monotonic())
        if len(seen) > 1:
            await route.continue_()
            return
        await route.fulfill(status=429, headers={"Retry-After": retry_after},
                            content_type="application/problem+json",
                            body=json.dumps({"type": "about:blank", "title": "Too Many Requests",
                                             "status": 429, "code": "rate_limited",
                                             "detail": "Too many requests: slow down"}))

    return handle


async def test_a_busy_server_is_waited_out_calmly_on_the_way_in(pg: asyncpg.Pool, site: Site,
        contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, _ = await add_show(pg)
    await site.queue(cid, paused=True)
    ctx = await contexts()
    joins: list[float] = []
    polls: list[float] = []
    await ctx.route(re.compile(rf"/api/v1/concerts/{cid}/queue$"), busy_once(joins))
    await ctx.route(re.compile(r"/api/v1/queue$"), busy_once(polls))
    page = await ctx.new_page()
    await sign_in(page, site, 55)
    await page.goto(site.url + "/")

    await page.get_by_role("button", name=re.compile("Join the queue")).click()
    await expect(page.locator("#busy")).to_contain_text("Lots of people right now — trying again")
    await expect(page.locator("#message")).to_be_empty()
    await shot(page, "busy")
    await page.wait_for_url(f"**/queue/{cid}")
    # The waiting page's first look at the ticket is turned away too, and waits as well.
    await expect(page.locator("#busy")).to_contain_text("Lots of people right now — trying again")
    await expect(page.locator("#position")).to_have_text("1")
    await expect(page.locator("#busy")).to_have_count(0)
    await expect(page.locator("#status")).to_contain_text("paused by the organiser")
    for seen in (joins, polls):  # asked again by itself, and not before Retry-After
        assert len(seen) == 2 and seen[1] - seen[0] >= 0.95, seen


async def test_a_busy_answer_to_a_hold_says_when_to_try_again(pg: asyncpg.Pool, site: Site,
        contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, _ = await add_show(pg)
    await site.queue(cid, admit_rate=1000)
    page = await booking_page(contexts, site, cid, 56)
    holds: list[float] = []
    await page.route(re.compile(r"/api/v1/reservations$"), busy_once(holds, retry_after="5"))
    await seat(page, 3).click()
    await page.get_by_role("button", name="Hold seat 3").click()
    await expect(page.locator("#alert")).to_have_text(
        "Lots of people right now — please try again in 5 s.")
    await expect(page.locator("#alert .notice")).not_to_have_class(re.compile("bad"))
    # Too soon (5 s: a slow machine still clicks again inside it): the page says so again
    # without asking the server.
    await page.get_by_role("button", name="Hold seat 3").click()
    await expect(page.locator("#alert")).to_contain_text("please try again in")
    assert len(holds) == 1
    await asyncio.sleep(max(0.0, holds[0] + 5.1 - time.monotonic()))
    await page.get_by_role("button", name="Hold seat 3").click()
    await expect(page.locator("#hold-seats")).to_have_text("3")
    assert len(holds) == 2


# -- booking ------------------------------------------------------------------------------
async def test_pick_hold_charge_pay_then_the_seat_is_sold_on_another_map(pg: asyncpg.Pool, site: Site,
                                                                         contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, sid = await add_show(pg, price=30_000)
    await site.queue(cid, admit_rate=1000)
    await site.buy(cid, sid, 98, [7, 8], pay=False)
    await site.buy(cid, sid, 99, [9, 10], pay=True)
    page = await booking_page(contexts, site, cid, 42)
    keys: list[str | None] = []
    page.on("request", lambda r: keys.append(r.headers.get("idempotency-key"))
            if r.url.endswith("/api/v1/payments") else None)

    await expect(page.locator("#window-left")).to_have_text(re.compile(r"^\d+:\d\d$"))
    await expect(page.locator("#balance")).to_contain_text("0")
    await expect(page.locator("#dates button")).to_have_text([re.compile("6 left")])
    # Prices before any hold: a line above the map, and each seat on sale shows its own.
    await expect(page.locator("#prices")).to_have_text("Every seat on this date costs ₩30,000.")
    await expect(seat(page, 2)).to_contain_text("₩30K")
    await expect(seat(page, 2)).to_have_attribute("aria-label", "Seat 2, ₩30,000, available")
    await expect(page.locator(".legend")).to_contain_text("yours")
    await expect(seat(page, 7)).to_have_attribute("aria-label", re.compile("held by someone"))
    await expect(seat(page, 9)).to_have_attribute("aria-label", re.compile("sold"))
    await seat(page, 9).click(force=True)  # not on sale: nothing picked
    await expect(seat(page, 9)).to_have_attribute("aria-pressed", "false")
    await seat(page, 3).click()
    await seat(page, 4).click()
    await seat(page, 4).click()  # changed my mind
    await expect(seat(page, 3)).to_have_attribute("aria-pressed", "true")
    await expect(seat(page, 4)).to_have_attribute("aria-pressed", "false")
    await shot(page, "seat-map")
    await page.get_by_role("button", name="Hold seat 3").click()
    await expect(page.locator("#hold")).to_be_visible()
    await expect(page.locator("#hold-seats")).to_have_text("3")
    await expect(page.locator("#hold-left")).to_have_text(re.compile(r"^[45]:\d\d$"))
    await expect(seat(page, 3)).to_have_attribute("aria-label", re.compile("held for you"))

    await page.locator("#pay").click()  # no money yet
    await expect(page.locator("#alert")).to_contain_text("less than the")
    await expect(page.locator("#charge-amount")).to_have_value("30000")
    await expect(page.locator("#charge-amount")).to_be_focused()
    await page.get_by_role("button", name="Add to balance").click()
    await expect(page.locator("#alert")).to_contain_text("Your balance is now")
    await page.locator("#pay").click()

    await expect(page.locator("#done")).to_be_visible()
    await expect(page.locator("#receipt")).to_contain_text("Seat: 3")
    await expect(page.locator("#receipt")).to_contain_text("Balance left:")
    await shot(page, "confirmation")
    # Two payment attempts of one hold: one Idempotency-Key, reused on the retry.
    assert len(keys) == 2 and keys[0] == keys[1] and re.fullmatch(r"[0-9a-f-]{36}", keys[0] or "")
    # The receipt survives a reload (the token is used up by the payment).
    await page.reload()
    await expect(page.locator("#receipt")).to_contain_text("Seat: 3")

    other = await booking_page(contexts, site, cid, 43)
    await expect(seat(other, 3)).to_have_attribute("aria-label", re.compile("sold"))
    await expect(seat(other, 3)).to_have_class(re.compile("RESERVED"))
    await expect(seat(other, 2)).to_have_attribute("aria-label", re.compile("available"))


async def test_two_buyers_go_for_the_same_seat_one_gets_it_the_other_is_told(
        pg: asyncpg.Pool, site: Site, contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, _ = await add_show(pg)
    await site.queue(cid, admit_rate=1000)
    pages = [await booking_page(contexts, site, cid, user) for user in (51, 52)]
    # One seat: with two, each buyer could lock one of them first and both be refused (holds
    # never wait on another buyer's lock, and are all or nothing), which is correct but not
    # what this test is about.
    for page in pages:
        await seat(page, 5).click()
    await asyncio.gather(*(p.get_by_role("button", name="Hold seat 5").click() for p in pages))

    async def won(page: Page) -> bool:
        await page.locator("#hold:visible, #alert .notice").first.wait_for()
        return await page.locator("#hold").is_visible()

    outcome = [await won(p) for p in pages]
    assert sorted(outcome) == [False, True], outcome
    loser = pages[outcome.index(False)]
    await expect(loser.locator("#alert")).to_contain_text("seat 5 was just taken")
    for n in (5,):
        await expect(seat(loser, n)).to_have_attribute("aria-label", re.compile("held by someone"))
        await expect(seat(loser, n)).to_have_attribute("aria-pressed", "false")
    await expect(loser.locator("#hold-picked")).to_be_disabled()
    # The map stays usable: the loser holds the next seats along.
    await seat(loser, 7).click()
    await loser.get_by_role("button", name="Hold seat 7").click()
    await expect(loser.locator("#hold-seats")).to_have_text("7")


async def test_a_hold_that_runs_out_puts_the_seats_back_on_the_map(pg: asyncpg.Pool, open_site: OpenSite,
                                                                   contexts: Contexts) -> None:
    from playwright.async_api import expect

    site = await open_site(HOLD_TTL="3")
    cid, _ = await add_show(pg)
    await site.queue(cid, admit_rate=1000)
    page = await booking_page(contexts, site, cid, 71)
    await seat(page, 2).click()
    await page.get_by_role("button", name="Hold seat 2").click()
    await expect(page.locator("#hold-left")).to_have_text(re.compile(r"^0:0[0-3]$"))
    await expect(seat(page, 2)).to_have_attribute("aria-label", re.compile("held for you"))

    await expect(page.locator("#alert")).to_contain_text("Your hold ran out")
    await expect(page.locator("#hold")).to_be_hidden()
    await expect(seat(page, 2)).to_have_attribute("aria-label", re.compile("available"))
    await seat(page, 2).click()
    await expect(page.get_by_role("button", name="Hold seat 2")).to_be_enabled()


async def test_seat_map_is_keyboard_operable_and_fits_a_phone(pg: asyncpg.Pool, site: Site,
                                                              contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, _ = await add_show(pg, seats=20)
    await site.queue(cid, admit_rate=1000)
    token = await site.admitted(cid, 61)
    ctx = await contexts(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = await ctx.new_page()
    await page.goto(site.url + "/healthz")
    await page.evaluate(f"""localStorage.setItem("wr.user", "61");
        localStorage.setItem("wr.ticket.{cid}", JSON.stringify({{token: "{token}"}}))""")
    await page.goto(f"{site.url}/book/{cid}")
    # The map starts on the first screen: nothing (a top-up form, say) pushes it below the fold.
    box = await seat(page, 1).bounding_box()
    assert box is not None and box["y"] + box["height"] < 844, box
    await seat(page, 1).focus()
    await page.keyboard.press("ArrowRight")
    await page.keyboard.press("ArrowDown")  # five seats a row on a phone
    await expect(seat(page, 7)).to_be_focused()
    # The focus ring stands out (3:1 or more) from the card around the seat.
    ring = await seat(page, 7).evaluate(
        "e => [getComputedStyle(e).outlineStyle, getComputedStyle(e).outlineColor]")
    assert ring == ["solid", "rgb(26, 86, 219)"], ring
    label = await seat(page, 7).evaluate("e => parseFloat(getComputedStyle(e.lastChild).fontSize)")
    assert label >= 12, label
    await shot(page, "seat-map-focus")
    await page.keyboard.press("Enter")
    await expect(seat(page, 7)).to_have_attribute("aria-pressed", "true")
    await page.keyboard.press("Space")
    await expect(seat(page, 7)).to_have_attribute("aria-pressed", "false")
    assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    await page.get_by_label("pick the").select_option("2")
    await page.get_by_role("button", name="best seats for me").click()
    await expect(page.locator("#hold-seats")).to_have_text("1, 2")
    await shot(page, "seat-map-phone")
    # Back in the queue's time window after it ran out: the page explains and offers the queue.
    await site.http.delete(f"{site.url}/api/v1/queue", headers={"Authorization": f"Bearer {token}"})
    await page.locator("#pay").click()
    await expect(page.locator("#blocked-title")).to_have_text("Your booking time is over")
    await expect(page.get_by_role("button", name="Join the queue again")).to_be_visible()


# -- the server's limits ------------------------------------------------------------------
async def test_pages_take_the_limits_from_the_server(pg: asyncpg.Pool, open_site: OpenSite,
                                                     contexts: Contexts) -> None:
    from playwright.async_api import expect

    site = await open_site(WAIT_GRACE="120", MAX_SEATS_PER_USER="6")
    cid, _ = await add_show(pg)
    await site.queue(cid, paused=True)
    page = await (await contexts()).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await sign_in(page, site, 81)
    await page.goto(f"{site.url}/queue/{cid}")
    await expect(page.locator("#position")).to_have_text("1")
    await expect(page.locator("#grace")).to_have_text("about 2 minutes")

    await site.queue(cid, paused=False, admit_rate=50)
    await page.get_by_role("link", name="Choose your seats").click()
    await page.wait_for_url(f"**/book/{cid}")
    best = page.get_by_label("pick the")
    await expect(best.locator("option")).to_have_text(["1", "2", "3", "4", "5", "6"])
    await expect(best).to_have_value("2")
    await expect(page.locator("#charge-amount")).to_have_attribute("min", "1")
    await expect(page.locator("#charge-amount")).to_have_attribute("max", "10000000")
    await best.select_option("6")
    await page.get_by_role("button", name="best seats for me").click()
    await expect(page.locator("#hold-seats")).to_have_text("1, 2, 3, 4, 5, 6")
    assert errors == []


async def test_booking_page_works_without_the_limits(pg: asyncpg.Pool, site: Site,
                                                     contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, _ = await add_show(pg)
    await site.queue(cid, admit_rate=1000)
    token = await site.admitted(cid, 82)
    ctx = await contexts()
    await ctx.route(re.compile(r"/api/v1/limits$"), lambda route: route.abort())
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(site.url + "/healthz")
    await page.evaluate(f"""localStorage.setItem("wr.user", "82");
        localStorage.setItem("wr.ticket.{cid}", JSON.stringify({{token: "{token}"}}))""")
    await page.goto(f"{site.url}/book/{cid}")
    await expect(page.locator("#seats .seat")).to_have_count(10)
    best = page.get_by_label("pick the")
    await expect(best.locator("option")).to_have_text(["1", "2"])
    await expect(best).to_have_value("2")
    await page.get_by_role("button", name="best seats for me").click()
    await expect(page.locator("#hold-seats")).to_have_text("1, 2")
    # No bounds of the page's own: the server's answer explains.
    assert await page.locator("#charge-amount").get_attribute("max") is None
    await page.get_by_label("Add money (won)").fill("20000000")
    await page.get_by_role("button", name="Add to balance").click()
    await expect(page.locator("#alert")).to_contain_text("Could not add the money.")
    assert errors == []


# -- the wait, the turn and after ---------------------------------------------------------
def number(s: str | None) -> int:
    """A figure as the pages print it ("1,234")."""
    return int(re.sub(r"\D", "", s or ""))


async def join_many(site: Site, cid: int, users: range) -> None:
    """Many people join (with a bounded number of requests in flight)."""
    gate = asyncio.Semaphore(50)

    async def one(user: int) -> None:
        async with gate:
            await site.join(cid, user)

    await asyncio.gather(*(one(u) for u in users))


@pytest.mark.parametrize(("rate", "ahead"), [(0.05, 9), (50.0, 1500)], ids=["slow", "fast"])
async def test_the_eta_never_rises_while_the_line_moves_and_stays_near_the_true_wait(
        pg: asyncpg.Pool, site: Site, contexts: Contexts, rate: float, ahead: int) -> None:
    from playwright.async_api import expect

    cid, _ = await add_show(pg)
    await site.queue(cid, paused=True, max_active=100_000)
    await join_many(site, cid, range(1000, 1000 + ahead))
    page = await (await contexts()).new_page()
    await sign_in(page, site, 7)
    await page.goto(f"{site.url}/queue/{cid}")
    await expect(page.locator("#position")).to_have_text(f"{ahead + 1:,}")
    await site.queue(cid, paused=False, admit_rate=rate)
    eta = page.locator("#eta")
    await expect(eta).to_have_attribute("data-seconds", re.compile(r"^\d+$"))

    seen: list[tuple[int, int, str]] = []
    beats: set[str] = set()
    loop = asyncio.get_running_loop()
    end = loop.time() + 5
    while loop.time() < end:
        shown = await page.evaluate("""() => [document.querySelector("#position").textContent,
            document.querySelector("#eta").dataset.seconds, document.querySelector("#eta").textContent,
            document.querySelector("#eta-at").textContent, document.querySelector("#updated").textContent]""")
        position, seconds = number(shown[0]), int(shown[1])
        seen.append((position, seconds, shown[2]))
        beats.add(shown[4])
        true_wait = position / rate
        assert abs(seconds - true_wait) <= 0.2 * true_wait, (position, seconds, rate)
        # The range in words, around the ETA: "about 27–33 seconds", "about 3–4 minutes".
        words = re.fullmatch(r"about (\d+)(?:–(\d+))? (second|minute)s?", shown[2])
        assert words, shown
        unit = 1 if words[3] == "second" else 60
        low, high = int(words[1]) * unit, int(words[2] or words[1]) * unit
        assert low - unit / 2 <= seconds <= high + unit / 2 and high - low <= 0.7 * seconds + unit, shown
        assert re.fullmatch(r"around \d{1,2}:\d\d( [AP]M)?", shown[3]), shown
        await asyncio.sleep(0.25)
    for (p0, s0, _), (p1, s1, _) in itertools.pairwise(seen):
        assert p1 <= p0 and (p1 == p0 or s1 <= s0), seen
    if rate >= 1:  # the line moved, and every frame was a heartbeat
        assert seen[-1][0] < seen[0][0] - 100, seen
        assert len(beats) >= 3, beats
    await shot(page, "waiting-moving")


async def test_admission_changes_the_tab_title_rings_and_offers_the_seats(
        pg: asyncpg.Pool, site: Site, contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, _ = await add_show(pg)
    await site.queue(cid, paused=True)
    ctx = await contexts()
    # Stand-ins that record what the page asks of the browser: notifications and tones.
    await ctx.add_init_script("""
        window.__notes = []; window.__tones = 0; window.__asked = 0;
        window.Notification = class { constructor(title, o) { window.__notes.push([title, o.body]); }
          static permission = "default";
          static requestPermission() { window.__asked += 1; this.permission = "granted";
            return Promise.resolve("granted"); } };
        const make = AudioContext.prototype.createOscillator;
        AudioContext.prototype.createOscillator = function () {
          window.__tones += 1; return make.call(this); };
    """)
    page = await ctx.new_page()
    await sign_in(page, site, 21)
    await page.goto(f"{site.url}/queue/{cid}")
    await expect(page.locator("#position")).to_have_text("1")
    await expect(page).to_have_title(re.compile(r"^1 in line — Aurora Live"))
    # Nothing is asked on load: a button asks, while waiting.
    assert await page.evaluate("window.__asked") == 0
    await page.get_by_role("button", name="Show a browser notification").click()
    await expect(page.locator("#notify-state")).to_have_text("You will get a notification.")
    await page.get_by_label("Play a sound").check()
    assert await page.evaluate("window.__tones") == 3  # a sample, on the click

    await site.queue(cid, paused=False, admit_rate=50)
    await expect(page).to_have_title(re.compile(r"^Your turn — [89]:\d\d$"))
    title = await page.title()
    await expect(page).not_to_have_title(title)  # it counts down
    go = page.get_by_role("link", name="Choose your seats")
    await expect(go).to_be_focused()
    await expect(page.locator("#admitted-title")).to_have_text("It's your turn!")
    assert await page.evaluate("window.__tones") == 6
    notes = await page.evaluate("window.__notes")
    assert len(notes) == 1 and notes[0][0].startswith("It's your turn — Aurora Live"), notes
    await shot(page, "admitted")
    await page.wait_for_timeout(3500)  # no surprise navigation: the button takes people on
    assert page.url.endswith(f"/queue/{cid}")
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/book/{cid}")
    await expect(page).to_have_title(re.compile(r"^[89]:\d\d left — Aurora Live"))


async def test_the_wait_is_put_to_use_and_the_choice_carries_into_booking(
        pg: asyncpg.Pool, site: Site, contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, sid = await add_show(pg, price=20_000)
    async with pg.acquire() as conn:
        later = await conn.fetchval("INSERT INTO concert_schedules (concert_id, concert_date)"
                                    " VALUES ($1, '2026-12-26') RETURNING id", cid)
        await conn.execute("INSERT INTO concert_seats (schedule_id, seat_number, price)"
                           " SELECT $1, n, CASE WHEN n <= 5 THEN 50000 ELSE 30000 END"
                           " FROM generate_series(1, 10) n", later)
    await site.queue(cid, admit_rate=1000)
    await site.buy(cid, later, 5, [6], pay=True)
    await site.queue(cid, paused=True)
    page = await (await contexts()).new_page()
    await sign_in(page, site, 22)
    await page.goto(f"{site.url}/queue/{cid}")
    dates = page.locator("#plan-dates button")
    await expect(dates).to_have_text([re.compile("10 left · ₩20,000$"),
                                      re.compile("9 left · ₩30,000–₩50,000$")])
    await dates.nth(1).click()
    await expect(dates.nth(1)).to_have_attribute("aria-pressed", "true")
    await expect(page.locator("#plan-seats .seat")).to_have_count(10)
    await expect(page.locator("#plan-seats .seat").nth(5)).to_have_text("6sold")
    await expect(page.locator("#plan-seats .seat").nth(0)).to_have_text("1₩50K")
    await page.get_by_label("Seats", exact=True).select_option("3")
    await expect(page.locator("#plan-cost")).to_have_text("3 × ₩30,000–₩50,000 = ₩90,000–₩150,000")
    await expect(page.locator("#plan-need")).to_contain_text("add ₩150,000")
    await expect(page.locator("#plan-amount")).to_have_value("150000")
    await page.get_by_role("button", name="Add to balance").click()
    await expect(page.locator("#plan-balance")).to_have_text("₩150,000")
    await expect(page.locator("#plan-need")).to_contain_text("enough")
    await shot(page, "waiting-prepare")

    await site.queue(cid, paused=False, admit_rate=50)
    await page.get_by_role("link", name="Choose your seats").click()
    await page.wait_for_url(f"**/book/{cid}")
    await expect(page.locator("#dates button[aria-pressed=true]")).to_contain_text("9 left")
    await expect(page.get_by_label("pick the")).to_have_value("3")
    await expect(page.locator("#plan-hint")).to_contain_text("You planned 3 seats on")
    await expect(page.locator("#prices")).to_contain_text("₩30,000–₩50,000 each")
    await expect(page.locator("#balance")).to_have_text("₩150,000")
    assert sid != later


async def test_back_after_a_purchase_shows_the_receipt_not_a_new_place_in_line(
        pg: asyncpg.Pool, site: Site, contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, _ = await add_show(pg, price=10_000)
    await site.queue(cid, admit_rate=1000)
    page = await (await contexts()).new_page()
    joins: list[str] = []
    page.on("request", lambda r: joins.append(r.url) if r.method == "POST" and r.url.endswith(
        f"/concerts/{cid}/queue") else None)
    await sign_in(page, site, 23)
    await page.goto(f"{site.url}/queue/{cid}")
    await page.get_by_role("link", name="Choose your seats").click()
    await page.wait_for_url(f"**/book/{cid}")
    await page.get_by_role("button", name="best seats for me").click()
    await expect(page.locator("#pay-need")).to_contain_text("add ₩20,000")
    await page.get_by_role("button", name="Add to balance").click()
    await page.locator("#pay").click()
    await expect(page.locator("#receipt")).to_contain_text("Seats: 1, 2")
    assert len(joins) == 1

    async def shows_the_receipt() -> None:
        await expect(page.locator("#ended-title")).to_have_text("You're booked")
        await expect(page.locator("#receipts")).to_contain_text("Seats: 1, 2")
        await expect(page.get_by_role("button", name="Buy more tickets")).to_be_visible()
        await expect(page.locator("#waiting")).to_be_hidden()

    await page.go_back()
    await page.wait_for_url(f"**/queue/{cid}")
    await shows_the_receipt()
    await page.goto(f"{site.url}/queue/{cid}")  # a later visit, too
    await shows_the_receipt()
    await page.reload()
    await shows_the_receipt()
    assert len(joins) == 1
    async with site.http.get(f"{site.url}/admin/concerts/{cid}/queue", headers=ADMIN) as r:
        figures = await r.json()
    assert figures["waiting"] == 0 and figures["active"] == 0, figures
    # Buying more is a choice, and then it is a new place in line.
    await page.get_by_role("button", name="Buy more tickets").click()
    await expect(page.locator("#admitted")).to_be_visible()
    assert len(joins) == 2
    await page.get_by_role("link", name="Choose your seats").click()
    await expect(seat(page, 1)).to_have_attribute("aria-label", re.compile("sold"))


async def test_an_unknown_concert_says_so_and_offers_nothing_that_fails(
        site: Site, contexts: Contexts) -> None:
    from playwright.async_api import expect

    page = await (await contexts()).new_page()
    await sign_in(page, site, 24)
    for path in ("/queue/999999", "/book/999999"):
        await page.goto(site.url + path)
        await expect(page.get_by_role("heading", name="We can't find that concert")).to_be_visible()
        await expect(page.get_by_role("link", name="See the concerts on sale")).to_be_visible()
        for name in ("Leave the queue", "Join the queue again", "Join the queue", "Buy more tickets"):
            await expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
        # Every button still on show works (the `contexts` fixture fails the test on any error).
        for button in await page.get_by_role("button").all():
            await button.click()
    await shot(page, "not-found")
    assert await page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('wr.ticket.'))") == []


async def test_leaving_asks_in_a_dialog_of_the_page(pg: asyncpg.Pool, site: Site,
                                                    contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, _ = await add_show(pg)
    await site.queue(cid, paused=True)
    page = await (await contexts()).new_page()
    page.on("dialog", lambda d: pytest.fail(f"a browser dialog: {d.message}"))
    await sign_in(page, site, 25)
    await page.goto(f"{site.url}/queue/{cid}")
    await expect(page.locator("#position")).to_have_text("1")
    leave = page.get_by_role("button", name="Leave the queue")
    await leave.focus()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Leave the queue?")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("button", name="Stay in line")).to_be_focused()
    await shot(page, "leave-dialog")
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(leave).to_be_focused()
    await expect(page.locator("#position")).to_have_text("1")
    await leave.click()
    await dialog.get_by_role("button", name="Leave the queue").click()
    await expect(page.locator("#ended-title")).to_have_text("You left the queue")
    await expect(page.get_by_role("button", name="Join the queue again")).to_be_focused()


async def test_the_api_docs_keep_big_integers_show_code_and_examples_and_fit_a_phone(
        site: Site, contexts: Contexts) -> None:
    from playwright.async_api import expect

    page = await (await contexts(viewport={"width": 390, "height": 844})).new_page()
    await page.goto(site.url + "/api/v1/docs")
    await expect(page.locator(".op").first).to_be_visible()
    await page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    body = await page.locator("main").inner_text()
    assert "9223372036854775807" in body and "9223372036854776000" not in body
    assert "`" not in body
    await expect(page.locator("#intro code")).to_have_text("code")
    await expect(page.locator("#schema-HoldRequest + p code")).to_have_text("quantity")
    example = page.locator("#schema-HoldRequest ~ details.example pre").first
    # A valid body: the schema takes exactly one of seat_numbers and quantity.
    assert json.loads(await example.inner_text()) == {"schedule_id": 7, "seat_numbers": [3]}
    assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")


# -- every page, at both sizes: screenshots and an accessibility scan ---------------------
SIZES = {"laptop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


async def accessible(page: Page, what: str) -> None:
    """axe-core finds nothing serious or critical on the page as it is now."""
    from axe_playwright_python.async_playwright import Axe

    found = (await Axe().run(page)).response["violations"]
    bad = [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:5]}" for v in found
           if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{what}: {bad}"


@pytest.mark.parametrize("size", list(SIZES))
async def test_every_page_passes_an_accessibility_scan_at_both_sizes(
        pg: asyncpg.Pool, site: Site, contexts: Contexts, size: str) -> None:
    from playwright.async_api import expect

    phone = size == "phone"
    cid, _ = await add_show(pg, seats=20, price=40_000)
    await site.queue(cid, paused=True)
    await site.join(cid, 1)
    ctx = await contexts(viewport=SIZES[size], is_mobile=phone, has_touch=phone)
    page = await ctx.new_page()

    async def check(name: str) -> None:
        await accessible(page, name)
        await shot(page, f"{name}-{size}")

    await sign_in(page, site, 31)
    await page.goto(site.url + "/")
    await expect(page.locator(".concerts li")).to_have_count(1)
    await check("concerts")
    await page.get_by_role("button", name=re.compile("Join the queue")).click()
    await expect(page.locator("#plan-seats .seat")).to_have_count(20)
    await check("waiting")
    await site.queue(cid, paused=False, admit_rate=50)
    await expect(page.locator("#admitted")).to_be_visible()
    await check("admitted")
    await page.get_by_role("link", name="Choose your seats").click()
    await expect(page.locator("#seats .seat")).to_have_count(20)
    await seat(page, 5).click()
    await check("seat-map")
    await page.get_by_role("button", name="best seats for me").click()
    await expect(page.locator("#hold")).to_be_visible()
    await check("pay-step")
    await page.get_by_role("button", name="Add to balance").click()
    await page.locator("#pay").click()
    await expect(page.locator("#done")).to_be_visible()
    await check("confirmation")
    await page.goto(site.url + "/api/v1/docs")
    await expect(page.locator(".op").first).to_be_visible()
    await page.locator(".op summary").first.click()
    await check("docs")
    assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")


async def test_every_page_has_a_favicon(site: Site) -> None:
    for path in ("/", "/queue/1", "/book/1", "/api/v1/docs"):
        async with site.http.get(site.url + path) as r:
            assert '<link rel="icon" href="/static/favicon.svg">' in await r.text(), path
    for path in ("/favicon.ico", "/static/favicon.svg"):
        async with site.http.get(site.url + path) as r:
            assert r.status == 200 and r.content_type == "image/svg+xml", (path, r.status)
            assert (await r.text()).startswith("<svg")


# -- sold out -----------------------------------------------------------------------------
async def test_the_waiting_page_says_sold_out_and_back(pg: asyncpg.Pool, site: Site,
                                                       contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, sid = await add_show(pg, seats=2)
    await site.queue(cid, admit_rate=1000)
    buyer = await site.admitted(cid, 71)
    held = await site.call("POST", "/api/v1/reservations", buyer, {"schedule_id": sid, "quantity": 2})
    await site.queue(cid, paused=True)  # the waiter stays in line whatever happens next
    page = await (await contexts()).new_page()
    await sign_in(page, site, 72)
    await page.goto(site.url + "/")
    card = page.locator(".concerts li", has_text="Aurora Live")
    await expect(card.locator(".eta")).to_contain_text("sold out", timeout=WAIT)
    await card.get_by_role("button").click()
    await expect(page.locator("#sold-out")).to_be_visible()
    await expect(page.locator("#status")).to_contain_text("Every seat is held or sold")
    await expect(page.locator("#position")).to_have_text("1")
    await shot(page, "waiting-sold-out")
    await page.set_viewport_size({"width": 390, "height": 844})
    await shot(page, "waiting-sold-out-phone")
    # A seat comes back: the page says the line moves again.
    async with site.http.delete(f"{site.url}/api/v1/reservations/{held['id']}",
                                headers={"Authorization": f"Bearer {buyer}"}) as r:
        assert r.status == 204
    await expect(page.locator("#sold-out")).to_be_hidden()
    await expect(page.locator("#paused")).to_be_visible()  # the organiser's pause, now plain again


async def test_the_page_rides_out_a_redis_restart_and_keeps_its_place(
        pg: asyncpg.Pool, open_site: OpenSite, contexts: Contexts, tmp_path: Path) -> None:
    from playwright.async_api import expect

    from tests.test_faults import RedisServer

    own = RedisServer(tmp_path)
    own.start()
    try:
        site = await open_site(REDIS_URL=own.url)
        cid, _ = await add_show(pg)
        await site.queue(cid, paused=True)
        for user in (1, 2, 3):
            await site.join(cid, user)
        page = await (await contexts()).new_page()
        await sign_in(page, site, 78)
        await page.goto(f"{site.url}/queue/{cid}")
        await expect(page.locator("#position")).to_have_text("4")
        token = await page.evaluate(f"JSON.parse(localStorage.getItem('wr.ticket.{cid}')).token")

        own.stop()  # the socket is closed with 1013 a few seconds later
        await expect(page.locator("#status")).to_contain_text("reconnecting", timeout=15_000)
        own.start()
        await expect(page.locator("#status")).to_contain_text("paused by the organiser",
                                                               timeout=20_000)
        await expect(page.locator("#position")).to_have_text("4")
        assert await page.evaluate(f"JSON.parse(localStorage.getItem('wr.ticket.{cid}')).token") == token
    finally:
        if own.proc is not None and own.proc.poll() is None:
            own.stop()


async def test_a_redis_back_empty_makes_the_page_offer_to_join_again(
        pg: asyncpg.Pool, open_site: OpenSite, contexts: Contexts, tmp_path: Path) -> None:
    from playwright.async_api import expect

    from tests.test_faults import RedisServer

    own = RedisServer(tmp_path, appendonly=False)  # a restart loses the queue
    own.start()
    try:
        site = await open_site(REDIS_URL=own.url)
        cid, _ = await add_show(pg)
        await site.queue(cid, paused=True)
        for user in (1, 2):
            await site.join(cid, user)
        page = await (await contexts()).new_page()
        await sign_in(page, site, 79)
        await page.goto(f"{site.url}/queue/{cid}")
        await expect(page.locator("#position")).to_have_text("3")

        own.stop()
        own.start()
        # Never a position from the new, empty queue: the page says the place is gone.
        await expect(page.locator("#ended-title")).to_have_text("We could not find your place",
                                                                timeout=20_000)
        await expect(page.locator("#waiting")).to_be_hidden()
        again = page.locator("#again")
        await expect(again).to_have_text("Join the queue again")
        await again.click()
        # The operator's pause came back from PostgreSQL; the line is new, so this is first.
        await expect(page.locator("#status")).to_contain_text("paused by the organiser",
                                                              timeout=20_000)
        await expect(page.locator("#position")).to_have_text("1")
    finally:
        if own.proc is not None and own.proc.poll() is None:
            own.stop()
