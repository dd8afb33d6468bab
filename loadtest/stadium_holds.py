"""Stadium bench, holds and payments: hold latency at empty and at 90 % sold, holds/s and
payments/s at 10 clients with PostgreSQL's CPU for each, beside the plain statement."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import statistics
import time
from typing import TYPE_CHECKING

import aiohttp
import asyncpg

from booking import holds, queries

from . import plain, wrk
from . import stadium_data as data
from .booking_bench import drive
from .report import Table, fmt, say

if TYPE_CHECKING:
    from .stadium_bench import Run

# Measured in turns, so that the machine's drift falls on both sides of each comparison.
TURNS = 3  # empty and sold dates
ROUNDS = 3  # the gateway and the bare process
# Requests in one wrk list: its Lua script holds them as constants, at most 65,536 of them.
LIST_MAX = 15_000


# -- 1. hold cost at empty and at 90 % sold --------------------------------------------
async def http_hold_release(run: Run, schedule: int, quantity: int, clients: int) -> list[float]:
    """Hold (timed) and release, over and over, from `clients` buyers: hold latencies."""
    times: list[float] = []
    deadline = time.perf_counter() + run.plan.seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as http:
        async def buyer(token: str) -> None:
            headers = {"Authorization": f"Bearer {token}"}
            body = {"schedule_id": schedule, "quantity": quantity}
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with http.post(run.url + "/api/v1/reservations", json=body,
                                     headers=headers) as r:
                    answer = await r.json()
                    if r.status != 201:
                        raise RuntimeError(f"hold answered {r.status}: {answer}")
                times.append(time.perf_counter() - t0)
                async with http.delete(f"{run.url}/api/v1/reservations/{answer['id']}",
                                       headers=headers) as r:
                    assert r.status == 204, r.status

        await asyncio.gather(*(buyer(t) for t in run.hold_tokens[:clients]))
    return times


async def direct_hold_release(run: Run, schedule: int, quantity: int, clients: int) -> list[float]:
    """The same through booking.holds.hold and release on a pool of our own."""
    times: list[float] = []
    deadline = time.perf_counter() + run.plan.seconds
    pool = await asyncpg.create_pool(run.dsn, min_size=clients, max_size=clients)

    async def buyer(user: int) -> None:
        async with pool.acquire() as conn:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                held = await holds.hold(conn, user_id=user, schedule_id=schedule,
                                        seat_numbers=None, quantity=quantity, ttl_seconds=300,
                                        max_seats=1000)
                times.append(time.perf_counter() - t0)
                await holds.release(conn, reservation_id=held.id, user_id=user,
                                    check_concert=lambda _: None)

    try:
        await asyncio.gather(*(buyer(data.DIRECT_USERS + i) for i in range(clients)))
    finally:
        await pool.close()
    return times


async def holds_by_fill(run: Run) -> None:
    """p50 hold latency of each way, quantity and number of clients on an empty date and a
    90 % sold one, measured in turns (empty first, then sold first, …), so that the machine's
    drift falls on both."""
    v = run.venue
    dates = {"empty": (v.fill[0], data.PLAIN_EMPTY), "sold": (v.fill[1], data.PLAIN_SOLD)}
    times: dict[tuple[str, int, int, str], list[float]] = {}
    for quantity in (1, 4):
        for clients in (1, 10):
            await data.vacuum(run.dsn)  # as autovacuum would, now and then
            for turn in range(TURNS):
                for level in sorted(dates, reverse=turn % 2 == 1):
                    ours, theirs = dates[level]
                    key = quantity, clients, level
                    times.setdefault(("HTTP", *key), []).extend(
                        await http_hold_release(run, ours, quantity, clients))
                    times.setdefault(("direct", *key), []).extend(
                        await direct_hold_release(run, ours, quantity, clients))
                    p, _ = await run.pgbench(plain.hold_release_script(theirs, quantity),
                                              clients)
                    times.setdefault(("pgbench", *key), []).append(next(
                        ms / 1000 for ms, text in p.statements if "'PENDING'" in text))
            say(f"holds q={quantity} c={clients}: " + ", ".join(
                f"{way} {statistics.median(times[way, quantity, clients, 'empty']) * 1000:.2f}"
                f" → {statistics.median(times[way, quantity, clients, 'sold']) * 1000:.2f} ms"
                for way in ("HTTP", "direct", "pgbench")))
    t = Table("1. Hold latency at empty and at 90 % sold (50,000-seat dates, seats sold "
              "lowest first)",
              ("way", "quantity", "clients", "p50 empty", "p50 90 % sold", "90 % ÷ empty",
               "target", "result"))
    names = {"HTTP": "ours over HTTP", "direct": "ours, `booking.holds.hold`",
             "pgbench": "ceiling: plain statement, pgbench (mean)"}
    for (way, q, c, level), samples in times.items():
        if level != "empty":
            continue
        e = statistics.median(samples) * 1000
        f = statistics.median(times[way, q, c, "sold"]) * 1000
        target = way != "pgbench"
        t.add(names[way], str(q), str(c), fmt(e, " ms", 2), fmt(f, " ms", 2), f"{f / e:.2f}×",
              "≤ 1.50×" if target else "", run.check(f / e <= 1.5, f"fill {way} q={q} c={c}")
              if target else "—")
    run.tables.append(t)
    run.notes.append("Each buyer holds (timed) and releases (not timed) over and over, so the "
                      "date stays at its fill level; pgbench's script does the same with the "
                      "plain statement on 50,000-seat tables of its own, sold the same way, "
                      "and gives the hold statement's mean latency (`-r`). Empty and sold "
                      f"dates are measured in {TURNS} turns, each turn starting with the other; "
                      "the p50 is over all turns. The database is vacuumed before each row, as "
                      "autovacuum (off here) would now and then.")
    run.notes.append("The picker's free-seat scan, `EXPLAIN (ANALYZE, BUFFERS)` on the empty "
                      "and on the 90 % sold date:\n\n```\n"
                      + await explain_pick(run, v.fill[0]) + "\n-- 90 % sold --\n"
                      + await explain_pick(run, v.fill[1]) + "\n```")


async def explain_pick(run: Run, schedule: int) -> str:
    conn = await asyncpg.connect(run.dsn)
    try:
        tx = conn.transaction()
        await tx.start()
        try:
            rows = await conn.fetch(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) "
                "SELECT s.id, s.seat_number, s.price, s.reservation_id FROM concert_seats s "
                "WHERE s.schedule_id = $1 AND s.status = 'AVAILABLE' ORDER BY s.seat_number "
                "LIMIT 4 FOR NO KEY UPDATE SKIP LOCKED", schedule)
        finally:
            await tx.rollback()
    finally:
        await conn.close()
    return "\n".join(r[0] for r in rows)


# -- 2. holds/s and payments/s, and PostgreSQL's time for each ---------------------------
@dataclasses.dataclass
class Tally:
    """One side of a throughput comparison over several rounds."""

    rates: list[float] = dataclasses.field(default_factory=list)
    p50s: list[float] = dataclasses.field(default_factory=list)
    p99s: list[float] = dataclasses.field(default_factory=list)
    done: int = 0
    pg_cpu: float = 0.0

    def add(self, result: wrk.HttpResult, done: int, pg_cpu: float) -> None:
        self.rates.append(done / result.seconds)
        self.p50s.append(result.p50_ms)
        self.p99s.append(result.p99_ms)
        self.done += done
        self.pg_cpu += pg_cpu

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def pg_ms(self) -> float:
        """PostgreSQL CPU per operation, in ms."""
        return self.pg_cpu / max(1, self.done) * 1000

    def latency(self) -> str:
        return f"{statistics.median(self.p50s):.1f} / {statistics.median(self.p99s):.1f} ms"


def hold_requests(run: Run, schedule: int) -> list[wrk.Request]:
    body = f'{{"schedule_id":{schedule},"quantity":1}}'
    return [wrk.Request("POST", "/api/v1/reservations", {
        "Authorization": f"Bearer {t}", "Content-Type": "application/json"}, body)
        for t in run.hold_tokens]


async def throughput(run: Run) -> None:
    """Holds/s at 10 clients over HTTP beside the bare handler, in turns; PostgreSQL's CPU for
    each, beside pgbench running the plain statement; then the same for payments."""
    v, c = run.venue, 10
    say("holds/s at 10 clients")
    await data.vacuum(run.dsn)
    gw, bare = Tally(), Tally()
    ours = hold_requests(run, v.throughput[0])
    theirs = [wrk.Request("POST", "/hold", {"Content-Type": "application/json"},
                          f'{{"schedule_id":{data.PLAIN_THROUGHPUT},"quantity":1}}')]
    for _ in range(ROUNDS):
        await data.reset_plain(run.dsn, data.PLAIN_THROUGHPUT)
        got, cpu = await run.load(run.url, ours, c)
        gw.add(got, got.statuses.get(201, 0), cpu)
        got, cpu = await run.load(run.bare_url, theirs, c)
        bare.add(got, got.statuses.get(201, 0), cpu)
    await data.reset_plain(run.dsn, data.PLAIN_THROUGHPUT)
    pgb, pgb_cpu = await run.pgbench(plain.hold_script(data.PLAIN_THROUGHPUT), c)
    await data.reset_plain(run.dsn, data.PLAIN_THROUGHPUT)
    direct_rate, direct_per = await direct_holds(run, v.throughput[1], c)
    pgb_ms = pgb_cpu / max(1, pgb.transactions) * 1000
    t = Table("2. One round trip per hold (and per payment): 10 clients, quantity 1, empty "
              f"date; HTTP figures are medians of {ROUNDS} turns")
    r = gw.rate / bare.rate
    t.add("holds/s over HTTP (wrk, 10 connections)", fmt(gw.rate),
          fmt(bare.rate) + " bare aiohttp + asyncpg, plain statement",
          f"{r:.2f}×", "≥ 0.50×", run.check(r >= 0.5, "holds/s"))
    t.add("… p50 / p99 latency", gw.latency(), bare.latency(), "", "", "—")
    t.add("holds/s, `booking.holds.hold` on asyncpg (10 connections)", fmt(direct_rate),
          fmt(pgb.tps) + " pgbench, plain statement", f"{direct_rate / pgb.tps:.2f}×", "",
          "—")
    r = gw.pg_ms / pgb_ms
    t.add("PostgreSQL CPU per hold, HTTP", fmt(gw.pg_ms, " ms", 3),
          fmt(pgb_ms, " ms", 3) + " pgbench", f"{r:.2f}×", "≤ 2.00×",
          run.check(r <= 2, "PostgreSQL time per hold"))
    t.add("… and beside the bare handler's", fmt(gw.pg_ms, " ms", 3),
          fmt(bare.pg_ms, " ms", 3) + " bare handler", f"{gw.pg_ms / bare.pg_ms:.2f}×", "",
          "—")
    t.add("PostgreSQL CPU per hold, `booking.holds.hold` on asyncpg",
          fmt(direct_per * 1000, " ms", 3), fmt(pgb_ms, " ms", 3) + " pgbench",
          f"{direct_per * 1000 / pgb_ms:.2f}×", "", "—")
    run.hold_pg_ms = gw.pg_ms
    await payments(run, t)
    run.tables.append(t)
    run.notes.append(
        "PostgreSQL CPU is the CPU time of the server's processes (the postmaster, its live "
        "backends and those it has reaped, from `/proc`) over the run, divided by the holds "
        "or payments done; autovacuum is off on this throwaway server, and the bench "
        "vacuums between phases. A hold of ours is one Redis round trip (the gate reads the "
        "token's record; the token names its concert) and one "
        "PostgreSQL call (`hold_seats`); a payment is the same gate, one PostgreSQL call "
        "(`pay_reservation`: key lock, replay lookup, the reservation and its seats sold by "
        "the UPDATEs that lock them, debit, the token's audit row, the payment with its "
        "ledger line and its token to end), then one Redis round trip to expire the queue token "
        "(shared with the payments ending at the same moment) and, in the background, one "
        "PostgreSQL statement for all the tokens ended meanwhile; the plain ones "
        "are one statement each. Neither web process's asyncpg pool sends a reset query when "
        "a connection goes back (nothing keeps session state there). Every hold of section 2 "
        f"is by a buyer of its own ({len(run.hold_tokens):,} admitted buyers, each holding "
        "about once, as in a sale: a buyer's live holds are what the per-user limit reads), "
        "and the direct holds' buyers are users the admitter has made already.")


async def direct_holds(run: Run, schedule: int, clients: int) -> tuple[float, float]:
    """Holds/s through booking.holds.hold on a pool, and PostgreSQL CPU seconds per hold."""
    pool = await asyncpg.create_pool(run.dsn, min_size=clients, max_size=clients)
    # The users the admitter made beforehand, each holding once (again only past 30,000 holds).
    users = itertools.cycle(data.DIRECT_HOLDER_IDS)

    async def step() -> bool:
        async with pool.acquire() as conn:
            await holds.hold(conn, user_id=next(users), schedule_id=schedule,
                             seat_numbers=None, quantity=1, ttl_seconds=300, max_seats=1000)
        return True

    try:
        c0 = run.pg_cpu()
        rate, _ = await drive(clients, run.plan.seconds, step)
        return rate, (run.pg_cpu() - c0) / max(1, rate * run.plan.seconds)
    finally:
        await pool.close()


async def paid_payers(run: Run) -> int:
    """How many of the payers' holds, in order, are paid: the next payment starts past them (a
    request sent twice would be a replay)."""
    return await run.count("SELECT coalesce(max(reservation_id), $1) FROM payments"
                           " WHERE state = 'COMPLETED'", data.PAY_BASE) - data.PAY_BASE


async def direct_payments(run: Run, clients: int) -> tuple[float, float]:
    """Payments/s of `pay_reservation` called back to back from a pool, as the web process
    calls it, for the payers the HTTP turns left; and PostgreSQL CPU seconds per payment."""
    first = await paid_payers(run)
    payers = iter(list(enumerate(run.pay_tokens, data.PAY_BASE + 1))[first:])
    pool = await asyncpg.create_pool(run.dsn, min_size=clients, max_size=clients)

    async def step() -> bool | None:
        rid, token = next(payers, (0, ""))
        if not rid:
            return None
        async with pool.acquire() as conn:
            await queries.pay_reservation(
                conn, user_id=rid, reservation_id=rid, key=f"direct-{rid}",
                request_hash=rid.to_bytes(32, "big"), token=token, concert_id=run.venue.concert,
                token_refused=False)
        return True

    try:
        before = await run.count("SELECT count(*) FROM payments WHERE state = 'COMPLETED'")
        c0 = run.pg_cpu()
        started = time.perf_counter()
        await drive(clients, run.plan.seconds, step)
        took = time.perf_counter() - started
        cpu = run.pg_cpu() - c0
        paid = await run.count("SELECT count(*) FROM payments WHERE state = 'COMPLETED'") - before
        return paid / took, cpu / max(1, paid)
    finally:
        await pool.close()


async def payments(run: Run, t: Table) -> None:
    """Payments/s at 10 clients, ours and the bare handler's in turns, each paying for holds
    made beforehand (a list that each turn goes on with); pgbench beside for PostgreSQL's CPU."""
    c = 10
    say("payments/s at 10 clients")
    gw, bare = Tally(), Tally()
    ours = [wrk.Request("POST", "/api/v1/payments", {
        "Authorization": f"Bearer {token}", "Content-Type": "application/json",
        "Idempotency-Key": f"bench-{rid}"}, f'{{"reservation_id":{rid}}}')
        for rid, token in enumerate(run.pay_tokens, data.PAY_BASE + 1)]
    theirs = [wrk.Request("POST", "/pay", {"Content-Type": "application/json"},
                          f'{{"reservation_id":{seat}}}')
              for seat in range(data.PLAIN_PAY_BASE + 1, data.PLAIN_PAY_BASE + data.PLAIN_PAY_BARE + 1)]
    # Payments start on an empty table, and with autovacuum off nothing would ever tell the
    # planner that it grew: the plans each connection made of the payment's statements (and
    # of the foreign-key checks into payments) at its first calls would scan payments whole
    # for good, a cost growing with every payment. A short unmeasured run, then what
    # autovacuum would do after its first 50 rows: statistics, and the plans made again.
    await run.load(run.url, ours[:LIST_MAX], c, seconds=1.0)
    await run.load(run.bare_url, theirs[:LIST_MAX], c, seconds=0.5)
    await data.vacuum(run.dsn)
    ran_out = False
    for _ in range(ROUNDS):
        # Each turn starts past the last paid hold: a request sent twice would be a replay.
        done = await paid_payers(run)
        before = await run.count("SELECT count(*) FROM payments WHERE state = 'COMPLETED'")
        ours_left = ours[done:done + LIST_MAX]
        got, cpu = await run.load(run.url, ours_left or ours, c)
        gw.add(got, await run.count("SELECT count(*) FROM payments WHERE state = 'COMPLETED'")
               - before, cpu)
        done = await run.count("SELECT coalesce(max(seat_id), $1) FROM plain_payments"
                               " WHERE seat_id <= $2", data.PLAIN_PAY_BASE,
                               data.PLAIN_PAY_BASE + data.PLAIN_PAY_BARE) - data.PLAIN_PAY_BASE
        before = await run.count("SELECT count(*) FROM plain_payments")
        theirs_left = theirs[done:done + LIST_MAX]
        got2, cpu = await run.load(run.bare_url, theirs_left or theirs, c)
        bare.add(got2, await run.count("SELECT count(*) FROM plain_payments") - before, cpu)
        ran_out |= got.requests > len(ours_left) or got2.requests > len(theirs_left)
    await run.count("SELECT setval('plain_pay_seq', $1)", data.PLAIN_PAY_BARE)
    before = await run.count("SELECT count(*) FROM plain_payments")
    pgb, pgb_cpu = await run.pgbench(plain.pay_script(data.PLAIN_PAY_BASE, data.PRICE), c)
    pgb_paid = await run.count("SELECT count(*) FROM plain_payments") - before
    if ran_out or pgb.transactions > data.PLAIN_PAY_EXTRA:
        run.notes.append("Payments: the list of held seats ran out during a run; the "
                         "figures count the payments made, not the requests.")
    ratio = gw.rate / bare.rate
    t.add("payments/s over HTTP (wrk, 10 connections)", fmt(gw.rate),
          fmt(bare.rate) + " bare aiohttp + asyncpg, plain statement", f"{ratio:.2f}×",
          "≥ 0.50×", run.check(ratio >= 0.5, "payments/s"))
    t.add("… p50 / p99 latency", gw.latency(), bare.latency(), "", "", "—")
    pgb_ms = pgb_cpu / max(1, pgb_paid) * 1000
    ratio = gw.pg_ms / pgb_ms
    t.add("PostgreSQL CPU per payment, HTTP", fmt(gw.pg_ms, " ms", 3),
          fmt(pgb_ms, " ms", 3) + f" pgbench ({pgb.tps:,.0f} tps)", f"{ratio:.2f}×",
          "≤ 2.00×", run.check(ratio <= 2, "PostgreSQL time per payment"))
    t.add("… and beside the bare handler's", fmt(gw.pg_ms, " ms", 3),
          fmt(bare.pg_ms, " ms", 3) + " bare handler", f"{gw.pg_ms / bare.pg_ms:.2f}×", "", "—")
    direct_rate, direct_per = await direct_payments(run, c)
    t.add("payments/s, `pay_reservation` on asyncpg (10 connections)", fmt(direct_rate),
          fmt(pgb.tps) + " pgbench, plain statement", f"{direct_rate / pgb.tps:.2f}×", "", "—")
    t.add("PostgreSQL CPU per payment, `pay_reservation` on asyncpg",
          fmt(direct_per * 1000, " ms", 3), fmt(pgb_ms, " ms", 3) + " pgbench",
          f"{direct_per * 1000 / pgb_ms:.2f}×", "", "—")
