"""The operators' console (/admin) in headless Chromium, against real `web` and `admitter`
processes: the key asked once and kept in the tab, live figures, a what-if before a change, and
the change taking effect.

Skipped when no Chromium is installed. Screenshots are saved under artifacts/screenshots/.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.test_browser import (  # noqa: F401  (fixtures, found by pytest by name)
    ADMIN,
    Contexts,
    Site,
    accessible,
    add_show,
    browser,
    contexts,
    open_site,
    pytestmark,
    shot,
    site,
)


async def _admin_figures(site: Site, cid: int) -> dict[str, Any]:
    async with site.http.get(f"{site.url}/admin/concerts/{cid}/queue", headers=ADMIN) as r:
        assert r.status == 200
        answer: dict[str, Any] = await r.json()
        return answer


async def test_console_asks_for_the_key_shows_live_figures_and_previews_a_change(
        pg: asyncpg.Pool, site: Site, contexts: Contexts) -> None:
    from playwright.async_api import expect

    cid, _ = await add_show(pg, seats=8)
    await site.queue(cid, paused=True, admit_rate=1)
    for user in range(1, 6):
        await site.join(cid, user)
    page = await (await contexts(viewport={"width": 1280, "height": 800})).new_page()
    await page.goto(site.url + "/admin")

    # A wrong key is refused by the socket, and asked again.
    await page.get_by_label("Admin key").fill("guess")
    await page.get_by_role("button", name="Open the console").click()
    await expect(page.locator("#alert")).to_contain_text("not right")
    await page.get_by_label("Admin key").fill("k")
    await page.get_by_role("button", name="Open the console").click()
    card = page.locator(f"#concert-{cid}")
    waiting = card.locator('[data-f="waiting"]')
    await expect(waiting).to_have_text("5")
    await expect(card.locator('[data-f="seats"]')).to_have_text("8")
    await expect(card.locator('[data-f="state"]')).to_have_text("Paused")
    # Kept in the tab only: not in localStorage, not in a cookie.
    assert await page.evaluate("sessionStorage.getItem('wr.admin-key')") == "k"
    assert "k" not in (await page.evaluate("Object.values(localStorage)"))
    assert await page.context.cookies() == []

    # Live: people joining show up without a reload.
    for user in (6, 7):
        await site.join(cid, user)
    await expect(waiting).to_have_text("7")

    # A what-if before the change; Apply only once it was shown for these values.
    apply = card.get_by_role("button", name="Apply")
    await card.get_by_label("Admit rate (per second)").fill("2")
    await card.get_by_label("Max active").fill("3")
    await expect(apply).to_be_disabled()
    await card.get_by_role("button", name="Preview the change").click()
    whatif = card.locator('[data-f="whatif"]')
    await expect(whatif).to_contain_text("At 2/s the 7 waiting drain in")
    await expect(whatif).to_contain_text("Seats run out before the queue does")
    await expect(apply).to_be_enabled()
    await accessible(page, "console")
    await apply.click()
    await expect(card.locator('[data-f="message"]')).to_contain_text("Applied")
    figures = await _admin_figures(site, cid)
    assert (figures["admit_rate"], figures["max_active"]) == (2, 3)

    # Resume: people are admitted and the console follows.
    await card.get_by_role("button", name="Resume admission").click()
    await expect(card.locator('[data-f="state"]')).to_have_text("Admitting")
    await expect(card.locator('[data-f="active"]')).to_have_text("3 of 3")
    await expect(waiting).to_have_text("4")
    assert (await _admin_figures(site, cid))["paused"] is False
    await card.get_by_label("Admit rate (per second)").fill("5")
    await card.get_by_label("Max active").fill("10")
    await card.get_by_role("button", name="Preview the change").click()
    await expect(whatif).to_contain_text("At 5/s the 4 waiting drain in")
    await shot(page, "console-laptop")

    # Inventory-aware admission, chosen in the console: the admin API says why its rate.
    await card.get_by_label("Mode").select_option("inventory")
    await card.get_by_role("button", name="Preview the change").click()
    await apply.click()
    await expect(card.locator('[data-f="why"]')).to_contain_text("Inventory-aware")
    await expect(card.locator('[data-f="chosen"]')).to_contain_text("seats left")
    figures = await _admin_figures(site, cid)
    assert figures["admission_mode"] == "inventory" and figures["rate_reason"] == "seats_left"

    # The ETA error is shown; the pre-queue's opening is set, then cleared, from the console.
    await expect(card.locator('[data-f="eta_error"]')).to_be_visible()
    opens = card.locator('[data-f="opens"]')
    await expect(opens).to_have_text("not set")
    await card.get_by_label("Pre-queue opens at").fill("2099-01-01T12:00:00")
    await card.get_by_role("button", name="Set the opening").click()
    await expect(card.locator('[data-f="message"]')).to_contain_text("Opening time set")
    await expect(opens).not_to_have_text("not set")
    opens_at = (await _admin_figures(site, cid))["opens_at"]
    assert opens_at is not None and opens_at.startswith("2099-01-01"), opens_at
    await card.get_by_role("button", name="No opening time").click()
    await expect(opens).to_have_text("not set")
    assert (await _admin_figures(site, cid))["opens_at"] is None

    # A reload keeps the key (same tab); no question asked again.
    await page.reload()
    await expect(waiting).to_be_visible()
    await expect(page.locator("#key-form")).to_be_hidden()
