"""The booking page's seat map of a 50,000-seat date in headless Chromium, beside a bare page.

`python -m loadtest.seatmap_render [--seats N] [--frames N] [--runs N]` starts throwaway Redis and
PostgreSQL, a `web` and an `admitter` process (loadtest/stack.py), adds one date of N seats, and
opens the booking page of an admitted user. It measures, in the page:
- the time from navigation to the first frame that shows seats with their prices;
- the bytes the page fetched while loading (Resource Timing's transfer sizes), and those of the
  seat map alone; and what one full map of the date would have cost;
- the frame times (requestAnimationFrame timestamps) while the map scrolls down from its top by
  STEP px a frame (every row in view new every few frames) for `--frames` frames, and the most
  seat buttons the page held meanwhile.
The ceiling, measured in the same run by the same browser: a bare page that draws as many seats
in view with no logic (rows written with innerHTML as the box scrolls, from a static page with
the first rows in it, the same stylesheet, nothing fetched), scrolled the same way.
Each page is measured `--runs` times (fresh context each time); medians are reported, printed and
written to loadtest/reports/<timestamp>-seatmap.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import itertools
import statistics
import sys
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from loadtest.stack import managed

CHROMIUM = "/usr/bin/chromium"
REPORTS = Path(__file__).resolve().parent / "reports"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 800}
STEP = 200  # px scrolled per frame: 12,000 px/s at 60 frames a second, a hard fling

# In every page before its own scripts: the first frame with a priced seat in #seats.
PROBE = """
window.__firstSeats = null;
(function look(ts) {
  if (document.querySelector('#seats .seat[aria-label*="₩"]')) window.__firstSeats = ts;
  else requestAnimationFrame(look);
})(0);
"""

# Scrolls #seats down from its top by `step` px a frame for `frames` frames; resolves with the
# frame timestamps and the most seat buttons in the page at any frame.
SCROLL = """
([frames, step]) => new Promise((done) => {
  const box = document.querySelector('#seats');
  box.scrollTop = 0;
  const times = [];
  let most = 0;
  requestAnimationFrame(function tick(ts) {
    times.push(ts);
    most = Math.max(most, document.querySelectorAll('#seats .seat').length);
    if (times.length > frames) { done({ times, most }); return; }
    box.scrollTop = Math.round(step * times.length);
    requestAnimationFrame(tick);
  });
})
"""

LOADED = """
() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const all = performance.getEntriesByType('resource');
  const seats = all.filter((e) => e.name.includes('/seats'));
  const sum = (xs) => xs.reduce((a, e) => a + e.transferSize, 0);
  return { total: nav.transferSize + sum(all), seats: sum(seats), seatRequests: seats.length,
           requests: all.length + 1,
           firstAsked: seats.length ? Math.min(...seats.map((e) => e.startTime)) : 0 };
}
"""


def bare_page(css: str, seats: int, cols: int, rows_kept: int) -> str:
    """A page with the same box, rows and stylesheet as the booking page's big map, and no logic
    but writing the rows in view (and as many around them) as the box scrolls."""
    section = 1000
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Bare seat map</title><link rel="stylesheet" href="{css}"></head>
<body><main><div class="seats big" id="seats" role="group" aria-label="Seats">
<div class="seat-spacer" id="spacer"></div></div></main>
<script>
const SEATS = {seats}, COLS = {cols}, SECTION = {section}, KEEP = {rows_kept};
const box = document.getElementById('seats'), spacer = document.getElementById('spacer');
const probe = document.createElement('div'); probe.className = 'seat-row';
probe.innerHTML = '<button class="seat AVAILABLE"><span>1</span><small>x</small></button>';
const head = document.createElement('div'); head.className = 'seat-section'; head.textContent = 'x';
box.append(probe, head);
const PITCH = probe.offsetHeight, HEAD = head.offsetHeight, PER = Math.ceil(SECTION / COLS);
probe.remove(); head.remove();
const SH = HEAD + PER * PITCH;
const rowTop = (g) => Math.floor(g / PER) * SH + HEAD + (g % PER) * PITCH;
const LAST = Math.floor((SEATS - 1) / SECTION) * PER + Math.floor(((SEATS - 1) % SECTION) / COLS);
spacer.style.height = (rowTop(LAST) + PITCH) + 'px';
const layer = document.createElement('div');
box.append(layer);
function draw() {{
  const s = Math.floor(box.scrollTop / SH);
  const g0 = Math.max(0, s * PER + Math.floor((box.scrollTop - s * SH - HEAD) / PITCH) - KEEP / 3);
  let html = '';
  for (let g = Math.max(0, Math.floor(g0)); g < Math.min(LAST + 1, g0 + KEEP); g++) {{
    const first = Math.floor(g / PER) * SECTION + (g % PER) * COLS + 1;
    html += '<div class="seat-row" style="top:' + rowTop(g) + 'px">';
    for (let n = first; n < first + COLS && n <= SEATS; n++) {{
      html += '<button type="button" class="seat AVAILABLE" aria-label="Seat ' + n +
              ', ₩20,000, available"><span>' + n + '</span><small>₩20K</small></button>';
    }}
    html += '</div>';
  }}
  layer.innerHTML = html;
}}
box.addEventListener('scroll', () => requestAnimationFrame(draw), {{ passive: true }});
draw();
</script></body></html>"""


def quantiles(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    return {f"p{round(q * 100)}": s[min(len(s) - 1, int(q * len(s)))] for q in (0.5, 0.95, 0.99)} | {
        "max": s[-1]}


async def add_date(dsn: str, seats: int) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            cid = await conn.fetchval("INSERT INTO concerts (name, host) VALUES ($1, 'Bench Hall')"
                                      " RETURNING id", f"Seat map {uuid.uuid4().hex[:4]}")
            sid = await conn.fetchval("INSERT INTO concert_schedules (concert_id, concert_date)"
                                      " VALUES ($1, $2) RETURNING id", cid, date(2026, 12, 24))
            await conn.execute("INSERT INTO concert_seats (schedule_id, seat_number, price)"
                               " SELECT $1, n, 20000 FROM generate_series(1, $2) n", sid, seats)
    finally:
        await conn.close()
    return int(cid), int(sid)


async def admitted(http: aiohttp.ClientSession, url: str, admin: str, cid: int, user: int) -> str:
    async with http.patch(f"{url}/admin/concerts/{cid}/queue", json={"admit_rate": 1000},
                          headers={"Authorization": f"Bearer {admin}"}) as r:
        assert r.status == 200, await r.text()
    async with http.post(f"{url}/api/v1/concerts/{cid}/queue", json={"user_id": user}) as r:
        assert r.status in (200, 201), await r.text()
        token = str((await r.json())["token"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        async with http.get(f"{url}/api/v1/queue", headers={"Authorization": f"Bearer {token}"}) as r:
            if (await r.json())["state"] == "AVAILABLE":
                return token
        await asyncio.sleep(0.1)
    raise RuntimeError("the user was not admitted")


async def full_map_bytes(http: aiohttp.ClientSession, url: str, sid: int, token: str) -> int:
    """What one whole map of the date costs, gzipped (what the page loaded before ranges)."""
    async with http.get(f"{url}/api/v1/schedules/{sid}/seats", headers={
            "Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}, auto_decompress=False) as r:
        body = await r.read()
        return len(body) if r.headers.get("Content-Encoding") == "gzip" else len(gzip.compress(body))


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    with managed(None, None) as stack:
        cid, sid = await add_date(stack.database_url, args.seats)
        bare_port = None
        app = web.Application()
        site_runner = web.AppRunner(app)
        results: dict[str, Any] = {"seats": args.seats, "frames": args.frames, "runs": args.runs}
        async with aiohttp.ClientSession() as http, async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                token = await admitted(http, stack.url, stack.admin_token, cid, 1)
                results["full_map_gzip"] = await full_map_bytes(http, stack.url, sid, token)
                ours = [await run_ours(browser, stack.url, cid, token, args.frames)
                        for _ in range(args.runs)]
                keep = max(1, round(statistics.median(r["most"] for r in ours) / 10))
                page = bare_page(stack.url + "/static/app.css", args.seats, 10, keep)

                async def serve(_: web.Request) -> web.Response:
                    return web.Response(text=page, content_type="text/html")

                app.router.add_get("/", serve)
                await site_runner.setup()
                bare_site = web.TCPSite(site_runner, "127.0.0.1", 0)
                await bare_site.start()
                bare_port = site_runner.addresses[0][1]
                bare = [await run_bare(browser, f"http://127.0.0.1:{bare_port}/", args.frames)
                        for _ in range(args.runs)]
            finally:
                await browser.close()
                await site_runner.cleanup()
        results["ours"] = summarise(ours)
        results["bare"] = summarise(bare)
        return results


async def run_ours(browser: Any, url: str, cid: int, token: str, frames: int) -> dict[str, Any]:
    ctx = await browser.new_context(viewport=VIEWPORT)
    try:
        await ctx.add_init_script(PROBE)
        page = await ctx.new_page()
        await page.goto(url + "/healthz")
        await page.evaluate("""([cid, token]) => {
            localStorage.setItem("wr.user", JSON.stringify("1"));
            localStorage.setItem("wr.ticket." + cid, JSON.stringify({token}));
        }""", [cid, token])
        await page.goto(f"{url}/book/{cid}")
        return await settle_and_scroll(page, frames)
    finally:
        await ctx.close()


async def run_bare(browser: Any, url: str, frames: int) -> dict[str, Any]:
    ctx = await browser.new_context(viewport=VIEWPORT)
    try:
        await ctx.add_init_script(PROBE)
        page = await ctx.new_page()
        await page.goto(url)
        return await settle_and_scroll(page, frames)
    finally:
        await ctx.close()


async def settle_and_scroll(page: Any, frames: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while await page.evaluate("window.__firstSeats") is None:
        if time.monotonic() > deadline:
            raise RuntimeError("no seats shown")
        await asyncio.sleep(0.02)
    first = float(await page.evaluate("window.__firstSeats"))
    # Loaded: the map as tall as every seat (the page finds the last seat after the first range).
    height = -1
    while True:
        await asyncio.sleep(0.5)
        now = await page.evaluate("document.querySelector('#seats').scrollHeight")
        if now == height:
            break
        height = now
    loaded = await page.evaluate(LOADED)
    run = await page.evaluate(SCROLL, [frames, STEP])
    times = run["times"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return {"first": first, **loaded, "gaps": gaps, "most": run["most"],
            "seats_at_rest": await page.evaluate("document.querySelectorAll('#seats .seat').length")}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    gaps = [g for r in runs for g in r["gaps"]]
    return {"first_ms": med("first"), "asked_ms": med("firstAsked"), "bytes": med("total"),
            "seat_bytes": med("seats"),
            "seat_requests": med("seatRequests"), "requests": med("requests"), "most": med("most"),
            "at_rest": med("seats_at_rest"), "frames": quantiles(gaps),
            "long_frames": sum(g > 50 for g in gaps) / len(runs)}


def report(r: dict[str, Any]) -> str:
    o, b = r["ours"], r["bare"]

    def ratio(x: float, y: float) -> str:
        return f"{x / y:.2f}×" if y else "—"

    def kb(n: float) -> str:
        return f"{n / 1024:,.1f} KB"

    def ms(f: dict[str, float], *keys: str) -> str:
        return " / ".join(f"{f[k]:.1f}" for k in keys) + " ms"

    rows = [
        ("first seats shown, from navigation", f"{o['first_ms']:.0f} ms", f"{b['first_ms']:.0f} ms",
         ratio(o["first_ms"], b["first_ms"])),
        ("first seat range asked, from navigation", f"{o['asked_ms']:.0f} ms", "—", "—"),
        ("bytes fetched at load (all / seat map)", f"{kb(o['bytes'])} / {kb(o['seat_bytes'])}",
         f"{kb(b['bytes'])} / —", ratio(o["bytes"], b["bytes"])),
        ("seat map requests at load", f"{o['seat_requests']:.0f}", "0", "—"),
        ("frame time while scrolling, p50", ms(o["frames"], "p50"), ms(b["frames"], "p50"),
         ratio(o["frames"]["p50"], b["frames"]["p50"])),
        ("… p95", ms(o["frames"], "p95"), ms(b["frames"], "p95"),
         ratio(o["frames"]["p95"], b["frames"]["p95"])),
        ("… p99 / max", ms(o["frames"], "p99", "max"), ms(b["frames"], "p99", "max"),
         ratio(o["frames"]["p99"], b["frames"]["p99"])),
        ("frames over 50 ms per scroll", f"{o['long_frames']:.1f}", f"{b['long_frames']:.1f}", "—"),
        ("seat buttons in the page, at rest / most while scrolling", f"{o['at_rest']:.0f} / {o['most']:.0f}",
         f"{b['at_rest']:.0f} / {b['most']:.0f}", "—"),
    ]
    lines = [f"Seat map of {r['seats']:,} seats, headless Chromium {VIEWPORT['width']}×{VIEWPORT['height']}, "
             f"median of {r['runs']} runs; scrolling {STEP} px a frame for {r['frames']} frames. "
             f"One full map of the date, gzipped: {kb(r['full_map_gzip'])}.", "",
             "| figure | booking page | bare page (ceiling) | ratio |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {a} | {b_} | {c} | {d} |" for a, b_, c, d in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m loadtest.seatmap_render", description=__doc__.split("\n")[0])
    ap.add_argument("--seats", type=int, default=50_000)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    text = report(asyncio.run(measure(args)))
    REPORTS.mkdir(exist_ok=True)
    out = REPORTS / f"{time.strftime('%Y%m%d-%H%M%S')}-seatmap.md"
    command = " ".join(["python -m loadtest.seatmap_render", *(argv or sys.argv[1:])])
    out.write_text(f"# Seat map rendering\n\n`{command}`\n\n{text}\n")
    print(text)
    print(f"\nwritten to {out}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
