"""The "My bookings" page in headless Chromium, against real `web` and `admitter` processes:
buying, then refunding from the list, once only, with every refusal explained.

Skipped when no Chromium is installed (scripts/test installs Debian's when run as root).
Screenshots of the page are saved under artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import Spawn
from tests.test_browser import (  # noqa: F401  (fixtures, found by pytest by name)
    ADMIN,
    ENV,
    SHOTS,
    WAIT,
    Contexts,
    browser,
    contexts,
    identity_for,
    pytestmark,
    shot,
)

# The browser, its contexts (failing a test on a page's errors), screenshots and sign-in tokens
# are the same as the main browser tests'.
from tests.test_browser import Site as BaseSite

if TYPE_CHECKING:  # Playwright may be missing: the tests then skip, see pytestmark
    from playwright.async_api import Page, Request, Route


DESKTOP = {"width": 1280, "height": 800}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
REFUND = re.compile(r"/api/v1/payments/\d+/refund$")
JOIN = re.compile(r"/api/v1/concerts/\d+/queue$")


async def add_show(pg: asyncpg.Pool, seats: int = 10, price: int = 10_000,
                   dates: tuple[date, ...] = (date(2026, 12, 24),)) -> tuple[int, list[int]]:
    """A concert with dates of numbered seats: (concert id, schedule ids)."""
    async with pg.acquire() as conn, conn.transaction():
        cid = await conn.fetchval("INSERT INTO concerts (name, host) VALUES ($1, 'Test Hall')"
                                  " RETURNING id", f"Aurora Live {uuid.uuid4().hex[:4]}")
        sids = []
        for day in dates:
            sid = await conn.fetchval("INSERT INTO concert_schedules (concert_id, concert_date)"
                                      " VALUES ($1, $2) RETURNING id", cid, day)
            await conn.execute("INSERT INTO concert_seats (schedule_id, seat_number, price)"
                               " SELECT $1, n, $3 FROM generate_series(1, $2) n", sid, seats, price)
            sids.append(int(sid))
    return int(cid), sids


class Site(BaseSite):
    """The main browser tests' site; here a call answers 200 unless told otherwise."""

    async def call(self, method: str, path: str, token: str, body: Any = None,
                   status: int = 200, headers: Mapping[str, str] | None = None) -> Any:
        """The JSON answer of a request by the holder of `token`, which must have this status."""
        sent = {**(headers or {}), "Authorization": f"Bearer {token}"}
        async with self.http.request(method, self.url + path, json=body, headers=sent) as r:
            assert r.status == status, await r.text()
            return await r.json()

    async def purchase(self, cid: int, sid: int, user: int, seats: list[int]) -> int:
        """`user` holds `seats` and pays for them over plain HTTP: the payment id."""
        token = await self.admitted(cid, user)
        held = await self.call("POST", "/api/v1/reservations", token,
                               {"schedule_id": sid, "seat_numbers": seats}, status=201)
        await self.call("POST", "/api/v1/balance/charges", token, {"amount": 1_000_000}, status=201)
        paid = await self.call("POST", "/api/v1/payments", token, {"reservation_id": held["id"]},
                               status=201, headers={"Idempotency-Key": uuid.uuid4().hex})
        return int(paid["id"])


@pytest.fixture
async def site(spawn: Spawn) -> AsyncIterator[Site]:
    """A web and an admitter process, as under `waitingroom dev` (signed joins, demo sign-in)."""
    async with aiohttp.ClientSession() as http:
        web = await spawn("web", **ENV)
        await spawn("admitter", **ENV)
        yield Site(web, http)


async def sign_in(page: Page, site: Site, user: int, tickets: Mapping[int, str] | None = None) -> None:
    """Sign `user` in on `page` as the pages keep it (the identity and the user id), with these
    queue tickets (concert id → token)."""
    await page.goto(site.url + "/healthz")  # same origin, to fill localStorage
    await page.evaluate("""([user, identity, tickets]) => {
        localStorage.setItem("wr.user", JSON.stringify(user));
        localStorage.setItem("wr.identity", JSON.stringify(identity));
        for (const [cid, token] of Object.entries(tickets))
            localStorage.setItem("wr.ticket." + cid, JSON.stringify({token}));
    }""", [str(user), identity_for(user), {str(k): v for k, v in (tickets or {}).items()}])


def requests_to(page: Page, pattern: re.Pattern[str], method: str = "POST") -> list[Request]:
    """The requests the page makes from now on to URLs matching `pattern` with `method`."""
    seen: list[Request] = []
    page.on("request", lambda r: seen.append(r) if r.method == method and pattern.search(r.url) else None)
    return seen


def problem(status: int, code: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Route.fulfill arguments for a problem+json answer."""
    return {"status": status, "headers": dict(headers or {}), "content_type": "application/problem+json",
            "body": json.dumps({"type": "about:blank", "title": code, "status": status, "code": code,
                                "detail": code.replace("_", " ")})}


async def balance_of(pg: asyncpg.Pool, user: int) -> int:
    return int(await pg.fetchval("SELECT balance FROM balances WHERE user_id = $1", user))


# -- the page -----------------------------------------------------------------------------
async def test_the_page_is_served(site: Site) -> None:
    async with site.http.get(site.url + "/bookings") as r:
        assert r.status == 200
        assert r.content_type == "text/html"
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert "<h1>My bookings</h1>" in await r.text()


async def test_buy_then_refund_from_my_bookings_once(pg: asyncpg.Pool, site: Site,
                                                     contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, (sid,) = await add_show(pg, price=30_000)
    await site.queue(cid, admit_rate=1000)
    token = await site.admitted(cid, 42)
    ctx = await contexts(viewport=DESKTOP)
    page = await ctx.new_page()
    await sign_in(page, site, 42, {cid: token})

    # Buying through the pages: two seats, money, payment, the confirmation.
    await page.goto(f"{site.url}/book/{cid}")
    for n in (3, 4):
        await page.get_by_role("button", name=re.compile(rf"^Seat {n},")).click()
    await page.get_by_role("button", name="Hold seats 3 and 4").click()
    await page.locator("#charge-amount").fill("100000")  # the pay step suggests what is missing
    await page.get_by_role("button", name="Add to balance").click()
    await expect(page.locator("#alert")).to_contain_text("Your balance is now")
    await page.locator("#pay").click()
    await expect(page.locator("#done")).to_be_visible()
    assert await balance_of(pg, 42) == 40_000
    await shot(page, "confirmation-with-my-bookings")

    # On to My bookings from the confirmation. The payment used up the page's queue ticket, so
    # the page joins the queue of the concert just bought for, and says so.
    joins = requests_to(page, JOIN)
    await page.locator("#done").get_by_role("link", name="My bookings").click()
    await page.wait_for_url(f"{site.url}/bookings")
    booking = page.locator("#list > li")
    await expect(booking).to_have_count(1)
    await expect(booking.get_by_role("heading", level=2)).to_have_text(re.compile("^Aurora Live"))
    await expect(booking.locator(".bk-badge")).to_have_text("Paid")
    await expect(booking.locator(".bk-seats")).to_have_text("3, 4")
    await expect(booking.locator(".bk-total")).to_have_text("₩60,000")
    await expect(booking.locator("dd.bk-when")).to_have_text("Thu, Dec 24, 2026")
    await expect(page.locator("#balance")).to_have_text("₩40,000")
    await expect(page.locator("#joined")).to_contain_text("joined the queue for Aurora Live")
    await expect(page.locator("#joined").get_by_role("link", name="Go to that queue")).to_have_attribute(
        "href", f"/queue/{cid}")
    assert [r.url for r in joins] == [f"{site.url}/api/v1/concerts/{cid}/queue"]
    await shot(page, "bookings")

    # The same person on a phone (same storage): the kept ticket is used, no queue is joined.
    phone = await (await contexts(**PHONE, storage_state=await ctx.storage_state())).new_page()
    phone_joins = requests_to(phone, JOIN)
    await phone.goto(f"{site.url}/bookings")
    await expect(phone.locator("#list .bk-badge")).to_have_text("Paid")
    await expect(phone.locator("#balance")).to_have_text("₩40,000")
    await expect(phone.locator("#joined")).to_be_hidden()
    assert phone_joins == []
    assert await phone.evaluate("document.documentElement.scrollWidth <= innerWidth")
    await shot(phone, "bookings-phone")
    await phone.get_by_role("button", name=re.compile("^Refund Aurora Live")).click()
    await expect(phone.get_by_role("dialog", name="Refund this booking?")).to_be_visible()
    await shot(phone, "bookings-dialog-phone")
    await phone.keyboard.press("Escape")
    await expect(phone.get_by_role("dialog")).to_be_hidden()

    # The dialog: opened from the keyboard, the harmless choice focused, Escape gives focus back.
    refund = page.get_by_role("button", name=re.compile(r"^Refund Aurora Live \w+, seats 3 and 4, ₩60,000$"))
    await refund.focus()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Refund this booking?")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("₩60,000 goes back to your balance")
    await expect(dialog).to_contain_text("Thu, Dec 24, 2026")
    await expect(dialog.get_by_role("button", name="Keep my booking")).to_be_focused()
    await shot(page, "bookings-dialog")
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(refund).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(dialog).to_be_visible()

    # The first refund goes through on the server but its answer is lost on the way back.
    keys: list[str | None] = []
    lost: list[int] = []

    async def lose_first_answer(route: Route) -> None:
        keys.append(route.request.headers.get("idempotency-key"))
        if lost:
            await route.continue_()
            return
        lost.append((await route.fetch()).status)
        await route.abort()

    await page.route(REFUND, lose_first_answer)
    await page.keyboard.press("Shift+Tab")
    await expect(dialog.get_by_role("button", name="Refund ₩60,000")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(dialog.get_by_role("alert")).to_contain_text("not known whether the refund went through")
    await expect(dialog.get_by_role("button", name="Try the refund again")).to_be_focused()
    assert lost == [200]
    assert await balance_of(pg, 42) == 100_000  # refunded once already
    # Pressing again asks about the same refund (same key): the page learns it, nothing more.
    await page.keyboard.press("Enter")
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#message")).to_have_text(re.compile(
        r"^Refunded ₩60,000 for Aurora Live \w+, seats 3 and 4\. Your balance is now ₩100,000\.$"))
    await expect(booking.locator(".bk-badge")).to_have_text("Refunded")
    await expect(booking.locator(".bk-note")).to_have_text("₩60,000 went back to your balance.")
    await expect(booking.get_by_role("button")).to_have_count(0)
    await expect(booking.get_by_role("heading", level=2)).to_be_focused()
    await expect(page.locator("#balance")).to_have_text("₩100,000")
    assert len(keys) == 2 and keys[0] == keys[1] and re.fullmatch(r"[0-9a-f-]{36}", keys[0] or "")
    await shot(page, "bookings-refunded")
    assert await balance_of(pg, 42) == 100_000
    assert await pg.fetchval("SELECT count(*) FROM refunds") == 1
    assert await page.evaluate("Object.keys(localStorage).filter((k) => k.startsWith('wr.refund.'))") == []

    # A replay over the API: the same key answers the same refund; a new one is refused.
    live = await site.join(cid, 42)
    pid = await pg.fetchval("SELECT id FROM payments WHERE user_id = 42")
    again = await site.call("POST", f"/api/v1/payments/{pid}/refund", live,
                            headers={"Idempotency-Key": keys[0] or ""})
    assert again == {"id": pid, "reservation_id": again["reservation_id"], "amount": 60_000,
                     "state": "CANCELED", "balance": 100_000}
    refused = await site.call("POST", f"/api/v1/payments/{pid}/refund", live, status=409,
                              headers={"Idempotency-Key": uuid.uuid4().hex})
    assert refused["code"] == "already_refunded"
    assert await balance_of(pg, 42) == 100_000

    # The seats are on sale again: someone else sees them free and holds them.
    other = await site.admitted(cid, 43)
    seats = await site.call("GET", f"/api/v1/schedules/{sid}/seats", other)
    assert [s["status"] for s in seats if s["seat_number"] in (3, 4)] == ["AVAILABLE", "AVAILABLE"]
    await site.call("POST", "/api/v1/reservations", other, {"schedule_id": sid, "seat_numbers": [3, 4]},
                    status=201)

    await phone.reload()
    await expect(phone.locator("#list .bk-badge")).to_have_text("Refunded")
    await expect(phone.locator("#balance")).to_have_text("₩100,000")
    await shot(phone, "bookings-refunded-phone")


async def test_refusals_and_a_busy_server_are_explained(pg: asyncpg.Pool, site: Site,
                                                        contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, (s1, s2) = await add_show(pg, dates=(date(2026, 12, 24), date(2026, 12, 25)))
    await site.queue(cid, admit_rate=1000)
    first = await site.purchase(cid, s1, 50, [1])
    gone = await site.purchase(cid, s2, 50, [2])
    ctx = await contexts(viewport=DESKTOP)
    page = await ctx.new_page()
    await sign_in(page, site, 50, {cid: await site.join(cid, 50)})
    joins = requests_to(page, JOIN)
    await page.goto(f"{site.url}/bookings")
    await expect(page.locator("#list > li")).to_have_count(2)
    await expect(page.locator("#list .bk-badge")).to_have_text(["Paid", "Paid"])
    await expect(page.locator("#list dd.bk-when")).to_have_text(["Fri, Dec 25, 2026", "Thu, Dec 24, 2026"])
    await expect(page.locator("#joined")).to_be_hidden()
    assert joins == []  # the kept ticket was enough

    # Refunded meanwhile in another tab: this one says so and shows it refunded.
    other_tab = await ctx.new_page()
    await other_tab.goto(f"{site.url}/bookings")
    older = other_tab.locator("#list > li").nth(1)
    await older.get_by_role("button", name=re.compile("^Refund")).click()
    await other_tab.get_by_role("button", name="Refund ₩10,000").click()
    await expect(older.locator(".bk-badge")).to_have_text("Refunded")
    stale = page.locator("#list > li").nth(1)
    await stale.get_by_role("button", name=re.compile("^Refund")).click()
    await page.get_by_role("button", name="Refund ₩10,000").click()
    await expect(page.locator("#alert")).to_contain_text("had already been refunded")
    await expect(page.locator("#alert")).to_contain_text("Nothing more was refunded.")
    await expect(stale.locator(".bk-badge")).to_have_text("Refunded")
    await expect(page.get_by_role("dialog")).to_be_hidden()
    assert await balance_of(pg, 50) == 2_000_000 - 10_000  # the first date's seat back, once
    assert await pg.fetchval("SELECT count(*) FROM refunds WHERE payment_id = $1", first) == 1

    # A busy server: the page says when to try again, and sends nothing sooner (long enough a
    # wait that a slow machine still clicks again inside it).
    newer = page.locator("#list > li").nth(0)
    sent: list[float] = []
    retry_after = 5

    async def busy_once(route: Route) -> None:
        sent.append(time.monotonic())
        if len(sent) > 1:
            await route.continue_()
        else:
            await route.fulfill(**problem(429, "rate_limited", {"Retry-After": str(retry_after)}))

    await page.route(REFUND, busy_once)
    await pg.execute("UPDATE concert_schedules SET concert_date = current_date - 2 WHERE id = $1", s2)
    await newer.get_by_role("button", name=re.compile("^Refund")).click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_role("button", name="Refund ₩10,000").click()
    await expect(dialog.get_by_role("alert")).to_have_text(
        f"Lots of people right now — please try again in {retry_after} s.")
    await dialog.get_by_role("button", name="Refund ₩10,000").click()
    await expect(dialog.get_by_role("alert")).to_contain_text("please try again in")
    assert len(sent) == 1
    await asyncio.sleep(max(0.0, sent[0] + retry_after + 0.1 - time.monotonic()))
    # Past the concert date: refunds are closed, and the booking stays paid.
    await dialog.get_by_role("button", name="Refund ₩10,000").click()
    await expect(page.locator("#alert")).to_contain_text("refunds close on the concert date")
    await expect(dialog).to_be_hidden()
    await expect(newer.locator(".bk-badge")).to_have_text("Paid")
    await expect(newer.locator(".bk-note")).to_contain_text("Refunds for this booking have closed")
    await expect(newer.get_by_role("button")).to_have_count(0)
    assert len(sent) == 2
    assert await pg.fetchval("SELECT state FROM payments WHERE id = $1", gone) == "COMPLETED"
    await shot(page, "bookings-refusals")

    # A payment the server does not know as this user's (it was never listed with a Refund button
    # for anyone else; the answer is made up here to see the page's words).
    await page.unroute(REFUND)
    await page.route(REFUND, lambda route: route.fulfill(**problem(404, "payment_not_found")))
    await pg.execute("UPDATE concert_schedules SET concert_date = '2026-12-25' WHERE id = $1", s2)
    await page.reload()
    await newer.get_by_role("button", name=re.compile("^Refund")).click()
    await dialog.get_by_role("button", name="Refund ₩10,000").click()
    await expect(page.locator("#alert")).to_contain_text("could not be found on your account")
    await expect(newer.locator(".bk-badge")).to_have_text("Paid")


async def test_signed_out_and_empty_states(pg: asyncpg.Pool, site: Site, contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, _ = await add_show(pg)
    await site.queue(cid, paused=True)
    page = await (await contexts(**PHONE)).new_page()
    await page.goto(f"{site.url}/bookings")
    card = page.locator("#signed-out")
    await expect(card.get_by_role("heading")).to_have_text("Sign in to see your bookings")
    await expect(card).to_contain_text("You are not signed in on this browser.")
    await expect(card.get_by_role("link", name="Go to the concerts page")).to_have_attribute("href", "/")
    await expect(page.locator("#loading")).to_be_hidden()
    await shot(page, "bookings-signed-out-phone")

    # From the concerts page's header, signed in, with a queue ticket that has expired: the page
    # sets it aside, joins a queue instead and shows that there is nothing yet.
    expired = await site.join(cid, 60)
    async with site.http.delete(f"{site.url}/api/v1/queue", headers={"Authorization": f"Bearer {expired}"}):
        pass
    await sign_in(page, site, 60, {cid: expired})
    await page.goto(site.url + "/")
    await expect(page.locator("#who-id")).to_have_text("60")
    await shot(page, "concerts-header-phone")
    await page.get_by_role("banner").get_by_role("link", name="My bookings").click()
    await page.wait_for_url(f"{site.url}/bookings")
    empty = page.locator("#empty")
    await expect(empty.get_by_role("heading")).to_have_text("No bookings yet")
    await expect(empty.get_by_role("link", name="See the concerts on sale")).to_have_attribute("href", "/")
    await expect(page.locator("#balance")).to_have_text("₩0")
    await expect(page.locator("#joined")).to_be_visible()
    await expect(page.locator("#list > li")).to_have_count(0)
    fresh = await page.evaluate(f"JSON.parse(localStorage.getItem('wr.ticket.{cid}')).token")
    assert fresh != expired
    assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    await shot(page, "bookings-empty-phone")

    # The sign-in has run out and cannot be renewed here: the page says so.
    async with site.http.delete(f"{site.url}/api/v1/queue", headers={"Authorization": f"Bearer {fresh}"}):
        pass
    await page.evaluate("""(identity) => {
        localStorage.setItem("wr.identity", JSON.stringify(identity));
    }""", identity_for(60, ttl=-60))
    await page.route("**/dev/identity", lambda route: route.fulfill(**problem(404, "not_found")))
    await page.reload()
    await expect(card).to_be_visible()
    await expect(card).to_contain_text("Your sign-in has expired")
    await expect(page.locator("#empty")).to_be_hidden()
