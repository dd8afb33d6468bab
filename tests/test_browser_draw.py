"""The waiting page before a scheduled opening, in headless Chromium, against real `web` and
`admitter` processes: a countdown to the opening, then the place the draw gave.

Skipped when no Chromium is installed (scripts/test installs Debian's when run as root).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg

from tests.test_browser import (  # noqa: F401  (fixtures, found by pytest by name)
    Contexts,
    OpenSite,
    Site,
    add_show,
    browser,
    contexts,
    open_site,
    pytestmark,
    shot,
    sign_in,
    site,
)


async def test_the_waiting_page_counts_down_to_the_opening_then_shows_the_drawn_place(
        pg: asyncpg.Pool, site: Site, contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, _ = await add_show(pg)
    # Far enough ahead for a busy machine to load the page before it.
    opens = datetime.now(UTC) + timedelta(seconds=8)
    await site.queue(cid, opens_at=opens.isoformat(), paused=True)
    await site.join(cid, 1)  # someone else in the pre-queue
    page = await (await contexts()).new_page()
    await sign_in(page, site, 42)
    await page.goto(f"{site.url}/queue/{cid}")

    # Before the opening: a countdown, no place in line.
    await expect(page.locator("#pre-queue")).to_be_visible()
    await expect(page.locator("#opens-in")).to_have_text(re.compile(r"^0:0[0-8]$"))
    await expect(page.locator("#place")).to_be_hidden()
    await expect(page.locator("#status")).to_contain_text("pre-queue")
    await expect(page.locator("#draw-link")).to_have_attribute("href",
                                                               f"/api/v1/concerts/{cid}/draw")
    await shot(page, "waiting-pre-queue")

    # After it: the place the draw gave, as the published draw says.
    await expect(page.locator("#place")).to_be_visible()
    await expect(page.locator("#pre-queue")).to_be_hidden()
    token = await page.evaluate(f"JSON.parse(localStorage.getItem('wr.ticket.{cid}')).token")
    async with site.http.get(f"{site.url}/api/v1/queue",
                             headers={"Authorization": f"Bearer {token}"}) as r:
        position = (await r.json())["position"]
    assert position in (1, 2)
    await expect(page.locator("#position")).to_have_text(str(position))
    async with aiohttp.ClientSession() as http, http.get(
            f"{site.url}/api/v1/concerts/{cid}/draw") as r:
        assert len((await r.json())["hmacs"]) == 2
