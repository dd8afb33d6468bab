"""Stadium bench, seat maps: a 50,000-seat map one at a time and ten at once, 304s, clients
refreshing it every few seconds, and the dates list, beside a bare process."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from . import stadium_data as data
from . import wrk
from .procstat import cpu_seconds
from .report import Table, fmt, say

if TYPE_CHECKING:
    from .stadium_bench import Run


async def seat_maps(run: Run) -> None:
    """The seat map and dates-list figures, beside the bare process, into one table."""
    v = run.venue
    say("seat maps")
    await data.vacuum(run.dsn)
    auth = {"Authorization": f"Bearer {run.hold_tokens[0]}", "Accept-Encoding": "gzip"}
    ours = [wrk.Request("GET", run.map_path, auth)]
    bare = [wrk.Request("GET", "/seats", {"Accept-Encoding": "gzip"})]
    t = Table("3. Seat maps of a 50,000-seat date (90 % sold) and the dates list")
    t.add("body size, gzip / plain JSON", f"{len(run.map_gz) / 1024:,.0f} KB / "
          f"{len(run.map_plain) / 1024:,.0f} KB", "same bytes",
          f"{len(run.map_gz) / len(run.map_plain):.3f}×", "", "—")
    # Long enough for a few full maps to finish at 10 at once.
    seconds = max(5.0, run.plan.seconds)
    for clients in (1, 10):
        g, g_cpu = await run.load(run.url, ours, clients, seconds)
        b, _ = await run.load(run.bare_url, bare, clients, seconds)
        t.add(f"full map p50, {clients} at once", fmt(g.p50_ms, " ms", 1),
              fmt(b.p50_ms, " ms", 1) + " bare, same bytes", f"{g.p50_ms / b.p50_ms:.1f}×",
              "", "—")
        t.add(f"… maps/s, {clients} at once", fmt(g.rps, "", 1), fmt(b.rps), f"{g.rps / b.rps:.3f}×",
              "", "—")
        if clients == 1:
            full_pg_ms = g_cpu / max(1, g.requests) * 1000
    t.add("PostgreSQL CPU per full map", fmt(full_pg_ms, " ms", 2), "", "", "", "—")
    g, g_cpu = await run.load(run.url, [wrk.Request("GET", run.map_path, {
        **auth, "If-None-Match": run.map_etag})], 10)
    b, _ = await run.load(run.bare_url, [wrk.Request("GET", "/seats", {
        "If-None-Match": run.map_etag})], 10)
    g304, b304 = g.statuses.get(304, 0) / g.seconds, b.statuses.get(304, 0) / b.seconds
    t.add("304 answers/s with If-None-Match (10 connections)", fmt(g304), fmt(b304),
          f"{g304 / b304:.2f}×", "", "—")
    pg_304_ms = g_cpu / max(1, g.requests) * 1000
    t.add("PostgreSQL CPU per 304", fmt(pg_304_ms, " ms", 3), "", "", "", "—")
    await refreshers(run, t)
    dates = f"/api/v1/concerts/{v.concert}/schedules"
    g, _ = await run.load(run.url, [wrk.Request("GET", dates, {
        "Authorization": f"Bearer {run.hold_tokens[0]}"})], 1)
    b, _ = await run.load(run.bare_url, [wrk.Request("GET", f"/dates/{v.concert}")], 1)
    t.add("dates list p50, 1 at a time", fmt(g.p50_ms, " ms", 2),
          fmt(b.p50_ms, " ms", 2) + " bare, plain statement", f"{g.p50_ms / b.p50_ms:.2f}×",
          "", "—")
    run.tables.append(t)
    run.notes.append(
        f"A full map costs PostgreSQL {full_pg_ms:.1f} ms of CPU and a 304 {pg_304_ms:.2f} ms: "
        f"when a seat changes, {run.plan.clients:,} clients refreshing fetch the full map "
        f"once each, about {full_pg_ms * run.plan.clients / 1000:.1f} s of PostgreSQL CPU "
        "per change of the date, which is why a client on a busy date should ask for the "
        "range it shows (`?from=&to=`).")


async def refreshers(run: Run, t: Table) -> None:
    """Clients each asking for the map again every period (on average) with the ETag they
    hold (wrk, one connection each); PostgreSQL's and the web process's CPU over a window
    that starts once every client has asked once."""
    p = run.plan
    assert run.web is not None
    say(f"{p.clients:,} clients refreshing the map every {p.period:g} s")
    requests = [wrk.Request("GET", run.map_path, {
        "Authorization": f"Bearer {token}", "Accept-Encoding": "gzip",
        "If-None-Match": run.map_etag}) for token in run.map_tokens]
    warm = p.period * 2
    task = asyncio.create_task(wrk.run_list(
        run.url, requests, seconds=warm + p.window + 1, connections=p.clients,
        pause_ms=round(p.period * 1000)))
    await asyncio.sleep(warm)
    pg0, web0, t0 = run.pg_cpu(), cpu_seconds(run.web.pid), time.monotonic()
    await asyncio.sleep(p.window)
    pg1, web1, t1 = run.pg_cpu(), cpu_seconds(run.web.pid), time.monotonic()
    r = await task
    took = t1 - t0
    pg, web = (pg1 - pg0) / took, (web1 - web0) / took
    want = p.clients / p.period
    # On a busy machine the clients may fall short of the rate wanted: PostgreSQL's CPU is
    # then also given per answer, scaled to the rate wanted.
    at_rate = pg / max(1.0, r.rps) * want
    t.add(f"{p.clients:,} clients refreshing every {p.period:g} s: PostgreSQL CPU",
          f"{pg:.1%} of one core measured; {at_rate:.1%} at {want:,.0f}/s", "", "",
          "< 25 % of one core", run.check(max(pg, at_rate) < 0.25,
                                           "seat-map refresh PostgreSQL CPU"))
    t.add("… answers/s (304 share)", f"{r.rps:,.0f} of {want:,.0f} wanted "
          f"({r.statuses.get(304, 0) / max(1, r.requests):.1%} 304)",
          "", "", "", "—")
    t.add("… latency p50 / p99; web process CPU",
          f"{r.p50_ms:.1f} / {r.p99_ms:.1f} ms; {web:.0%} of one core", "", "", "", "—")
