"""A 50,000-seat map on the booking page in headless Chromium, against real `web` and `admitter`
processes: few seats in the page, ranges asked for only near the view, revalidated with their
ETags, and a seat at the far end picked by mouse or keyboard, held and paid for.

Skipped when no Chromium is installed (scripts/test installs Debian's when run as root).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import asyncpg

from tests.conftest import eventually
from tests.test_browser import (  # noqa: F401  (fixtures, found by pytest by name)
    Contexts,
    Site,
    accessible,
    add_show,
    booking_page,
    browser,
    contexts,
    open_site,
    pytestmark,
    seat,
    shot,
    site,
)

if TYPE_CHECKING:  # Playwright may be missing: the tests then skip, see pytestmark
    from playwright.async_api import Page, Response

SEATS = 50_000
RANGE = 500  # bigmap.js's seats per request
SEAT_MAP = re.compile(r"/api/v1/schedules/\d+/seats(\?.*)?$")
RANGE_QUERY = re.compile(r"\?from=(\d+)&to=(\d+)$")


class Ranges:
    """The seat map requests a page makes: the ranges it asks for, and what came back."""

    def __init__(self, page: Page) -> None:
        self.asked: list[tuple[int, int]] = []
        self.revalidated: list[tuple[int, int, int]] = []  # first, last, status
        self.whole = 0  # requests for the whole map
        page.on("response", self._done)

    def _done(self, response: Response) -> None:
        if not SEAT_MAP.search(response.url):
            return
        m = RANGE_QUERY.search(response.url)
        if m is None:
            self.whole += 1
            return
        first, last = int(m[1]), int(m[2])
        self.asked.append((first, last))
        if "if-none-match" in response.request.headers:
            self.revalidated.append((first, last, response.status))

    def full(self) -> list[tuple[int, int]]:
        """The whole ranges asked for (not the small ones that find the last seat)."""
        return [(a, b) for a, b in self.asked if b - a + 1 == RANGE]


async def big_page(pg: asyncpg.Pool, site: Site, contexts: Contexts, user: int,
                   **options: object) -> tuple[Page, Ranges, int, int]:
    cid, sid = await add_show(pg, seats=SEATS, price=20_000)
    await site.queue(cid, admit_rate=1000)
    token = await site.admitted(cid, user)
    page = await (await contexts(**options)).new_page()
    ranges = Ranges(page)
    await page.goto(site.url + "/healthz")
    await page.evaluate("""([user, cid, token]) => {
        localStorage.setItem("wr.user", JSON.stringify(user));
        localStorage.setItem("wr.ticket." + cid, JSON.stringify({token}));
    }""", [str(user), cid, token])
    await page.goto(f"{site.url}/book/{cid}")
    await page.locator("#seats .seat").first.wait_for()
    # The map grows to the last seat once it is found.

    async def grown() -> bool:
        return bool(await page.evaluate("document.querySelector('.seat-spacer').offsetHeight > 100000"))

    await eventually(grown, timeout=10)
    return page, ranges, cid, sid


async def seats_in_page(page: Page) -> int:
    return int(await page.locator("#seats .seat").count())


async def scroll_to(page: Page, where: str) -> None:
    """Scroll the map, and come back once the page has drawn the rows there (its draw runs in
    the animation frame after the scroll event: two frames later it has)."""
    await page.locator("#seats").evaluate(
        f"box => new Promise(done => {{ box.scrollTop = {where}; "
        "requestAnimationFrame(() => requestAnimationFrame(done)); })")


async def test_a_big_map_holds_few_seats_asks_only_near_the_view_and_sells_its_end(
        pg: asyncpg.Pool, site: Site, contexts: Contexts) -> None:
    from playwright.async_api import expect

    page, ranges, _, _ = await big_page(pg, site, contexts, 71)
    await expect(seat(page, 1)).to_have_attribute("aria-label", "Seat 1, ₩20,000, available")
    assert await seats_in_page(page) < 2_000
    assert ranges.whole == 0
    # Only the first ranges near the top, and a few small ones that found the last seat.
    assert ranges.full() and max(b for _, b in ranges.full()) <= 3 * RANGE, ranges.full()
    assert sum(b - a + 1 for a, b in ranges.asked) < 5_000, ranges.asked
    await expect(page.locator(".seat-section").first).to_have_text("Section 1 · seats 1–1,000")
    await accessible(page, "big seat map")

    # Scrolled to the end: the last seats come, and still few seats are in the page.
    await scroll_to(page, "box.scrollHeight")
    await expect(seat(page, SEATS)).to_have_attribute("aria-label", "Seat 50000, ₩20,000, available")
    assert (SEATS - RANGE + 1, SEATS) in ranges.full()
    assert await seats_in_page(page) < 2_000
    assert len(ranges.full()) < 10, ranges.full()
    await shot(page, "seat-map-big-end")

    # A seat near the end, picked by mouse, held and paid for.
    await scroll_to(page, "box.scrollHeight - 3 * box.clientHeight")
    target = page.locator("#seats .seat:not(.loading)").last
    await target.wait_for()
    n = int(await target.get_attribute("data-n") or 0)
    assert n > SEATS - 2_000, n
    await target.click()
    await expect(seat(page, n)).to_have_attribute("aria-pressed", "true")
    await page.get_by_role("button", name=f"Hold seat {n}").click()
    await expect(page.locator("#hold-seats")).to_have_text(str(n))
    await expect(seat(page, n)).to_have_attribute("aria-label", re.compile("held for you"))
    await page.get_by_role("button", name="Add to balance").click()
    await expect(page.locator("#alert")).to_contain_text("Your balance is now")
    await page.locator("#pay").click()
    await expect(page.locator("#receipt")).to_contain_text(f"Seat: {n}")


async def test_the_keyboard_reaches_every_seat_of_a_big_map_and_holds_one(
        pg: asyncpg.Pool, site: Site, contexts: Contexts) -> None:
    from playwright.async_api import expect

    page, _, _, _ = await big_page(pg, site, contexts, 74, viewport={"width": 390, "height": 844},
                                   is_mobile=True, has_touch=True)
    await seat(page, 1).focus()
    await page.keyboard.press("ArrowDown")  # five seats a row on a phone
    await expect(seat(page, 6)).to_be_focused()
    await page.keyboard.press("PageDown")
    await expect(seat(page, 56)).to_be_focused()
    await page.keyboard.press("End")
    await expect(seat(page, SEATS)).to_be_focused()
    await page.keyboard.press("ArrowUp")
    await page.keyboard.press("ArrowLeft")
    await expect(seat(page, SEATS - 6)).to_be_focused()
    await expect(seat(page, SEATS - 6)).to_have_attribute("aria-label", re.compile("available"))
    await page.keyboard.press("Enter")
    await expect(seat(page, SEATS - 6)).to_have_attribute("aria-pressed", "true")
    assert await seats_in_page(page) < 2_000
    assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    await accessible(page, "big seat map, phone")
    await shot(page, "seat-map-big-phone")
    await page.get_by_role("button", name=f"Hold seat {SEATS - 6}").click()
    await expect(page.locator("#hold-seats")).to_have_text(str(SEATS - 6))
    # Back to the first seat, across the whole map.
    await seat(page, SEATS - 6).focus()
    await page.keyboard.press("Home")
    await expect(seat(page, 1)).to_be_focused()


async def test_a_big_map_revalidates_the_ranges_in_view_only(pg: asyncpg.Pool, site: Site,
                                                            contexts: Contexts) -> None:
    from playwright.async_api import expect

    page, ranges, cid, sid = await big_page(pg, site, contexts, 75)
    await scroll_to(page, "box.scrollHeight")
    await expect(seat(page, SEATS)).to_have_attribute("aria-label", re.compile("available"))
    # The refresh cycle asks again for the ranges in view only, with their ETags: unchanged, 304;
    # a seat held by someone else shows at the next one.
    asked, seen = len(ranges.asked), len(ranges.revalidated)

    async def revalidated() -> bool:
        return len(ranges.revalidated) > seen

    await eventually(revalidated, timeout=8)
    again = ranges.revalidated[seen:]
    assert {(a, b) for a, b, _ in again} == {(SEATS - RANGE + 1, SEATS)}, again
    assert again[0][2] == 304
    assert len(ranges.asked) - asked <= 2
    await site.buy(cid, sid, 72, [SEATS - 1], pay=True)
    await expect(seat(page, SEATS - 1)).to_have_attribute("aria-label", re.compile("sold"), timeout=8_000)
    assert any(status == 200 for _, _, status in ranges.revalidated[seen:])

