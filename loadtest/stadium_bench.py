"""Booking at stadium scale: holds, payments, seat maps and the dates list on 50,000-seat dates,
each figure beside a ceiling measured in the same run (pgbench running the plain statement, or a
bare aiohttp + asyncpg handler running it: loadtest/plain.py, loadtest/bare_booking.py).

    python -m loadtest.stadium_bench [--quick] [--seconds 2] [--clients 1000]

Starts its own PostgreSQL and Redis (throwaway servers), one `waitingroom web` and the bare
process, and stops them by pid. Writes loadtest/reports/<stamp>-stadium.md and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import uvloop

from booking import holds
from waitingroom.servers import free_port, scratch_database, throwaway_postgres, throwaway_redis
from waitingroom.settings import Settings

from . import pgbench, plain, profile, wrk
from . import stadium_data as data
from .booking_bench import admitted_tokens, drive
from .procstat import cpu_seconds, parent_pid, raise_nofile, tree_cpu_seconds
from .report import fmt, verdict
from .stack import Proc, wait_http

REPORTS = Path(__file__).parent / "reports"
FILL = 0.9
HOLD_USERS = 5_000_000  # users of the hold tokens; direct holds use DIRECT_USERS on
DIRECT_USERS = 6_000_000
MAP_USERS = 7_000_000


@dataclasses.dataclass
class Plan:
    seconds: float  # one measurement
    clients: int  # refreshing the seat map
    period: float  # each refreshes this often
    window: float  # the refresh measurement
    payers: int


def say(text: str) -> None:
    print(f"[stadium] {text}", file=sys.stderr, flush=True)


class Table:
    """Rows of figure | ours | ceiling | ratio | target | result."""

    def __init__(self, title: str, head: tuple[str, ...] = ("figure", "ours", "ceiling (same run)",
                                                            "ratio", "target", "result")) -> None:
        self.title, self.head, self.rows = title, head, list[tuple[str, ...]]()

    def add(self, *cells: str) -> None:
        self.rows.append(cells)

    def render(self) -> str:
        out = [f"### {self.title}", "", "| " + " | ".join(self.head) + " |",
               "| " + " | ".join("---" for _ in self.head) + " |"]
        out += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(out)


class Run:
    def __init__(self, plan: Plan, dsn: str, redis_url: str, folder: Path) -> None:
        self.plan, self.dsn, self.redis_url, self.folder = plan, dsn, redis_url, folder
        self.tables: list[Table] = []
        self.notes: list[str] = []
        self.missed: list[str] = []
        self.profiles: list[tuple[str, profile.Profile]] = []
        self.postmaster = 0
        self.web: Proc | None = None
        self.bare: Proc | None = None
        self.url = self.bare_url = ""

    # -- helpers ----------------------------------------------------------------------------
    def pg_cpu(self) -> float:
        return tree_cpu_seconds(self.postmaster)

    def check(self, ok: bool, what: str) -> str:
        if not ok:
            self.missed.append(what)
        return verdict(ok)

    def script(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(text)
        return path

    async def pgbench(self, text: str, clients: int) -> tuple[pgbench.Result, float]:
        """pgbench on a script: its result and PostgreSQL CPU seconds while it ran."""
        c0 = self.pg_cpu()
        result = await asyncio.to_thread(pgbench.run, self.dsn, self.script("s.sql", text), clients,
                                         self.plan.seconds)
        await asyncio.sleep(0.2)  # its backends reaped
        return result, self.pg_cpu() - c0

    async def load(self, url: str, requests: list[wrk.Request], connections: int,
                  seconds: float | None = None) -> tuple[wrk.HttpResult, float]:
        c0 = self.pg_cpu()
        result = await wrk.run_list(url, requests, seconds=seconds or self.plan.seconds,
                                    connections=connections)
        return result, self.pg_cpu() - c0

    async def count(self, sql: str, *args: object) -> int:
        conn = await asyncpg.connect(self.dsn)
        try:
            return int(await conn.fetchval(sql, *args))
        finally:
            await conn.close()

    # -- setup ------------------------------------------------------------------------------
    async def start(self) -> None:
        p = self.plan
        say("data: five 50,000-seat dates of ours, plain tables of the ceilings' own")
        self.venue = v = await data.prepare(self.dsn, p.payers, int(data.SEATS * FILL))
        conn = await asyncpg.connect(self.dsn)
        try:
            self.postmaster = parent_pid(await conn.fetchval("SELECT pg_backend_pid()"))
            # A throwaway server of our own: no autovacuum worker waking in a measurement and
            # counting as the CPU of the holds in it. The bench vacuums between phases instead.
            await conn.execute("ALTER SYSTEM SET autovacuum = off")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, DATABASE_URL=self.dsn, REDIS_URL=self.redis_url, PORT=str(port),
                   ADMIT_RATE="1000000", MAX_ACTIVE="10000000", ACTIVE_TTL="3600",
                   MAX_SEATS_PER_USER="1000", LOG_LEVEL="WARNING", ALLOW_UNSIGNED_JOINS="true",
                   RATE_LIMIT_JOINS="0", RATE_LIMIT_CALLS="0")
        self.web = Proc("stadium-web", [sys.executable, "-m", "waitingroom", "web", "--host",
                                        "127.0.0.1", "--port", str(port)], env)
        wait_http(f"{self.url}/readyz", self.web)
        say("tokens: joining and admitting the buyers")
        settings = Settings(database_url=self.dsn, redis_url=self.redis_url, admit_rate=1_000_000,
                            max_active=10_000_000, active_ttl=3600, admit_batch=100_000)
        self.hold_tokens = await admitted_tokens(self.url, settings, v.concert,
                                                 range(HOLD_USERS, HOLD_USERS + 300))
        self.map_tokens = await admitted_tokens(self.url, settings, v.concert,
                                                range(MAP_USERS, MAP_USERS + p.clients))
        self.pay_tokens = await admitted_tokens(self.url, settings, v.concert,
                                                range(data.PAY_BASE + 1, data.PAY_BASE + p.payers + 1))
        # The seat map as the gateway sends it: the bare process answers with the same bytes.
        self.map_path = f"/api/v1/schedules/{v.seat_map}/seats"
        auth = {"Authorization": f"Bearer {self.hold_tokens[0]}"}
        async with aiohttp.ClientSession(auto_decompress=False) as http:
            async with http.get(self.url + self.map_path,
                                headers={**auth, "Accept-Encoding": "gzip"}) as r:
                self.map_gz, self.map_etag = await r.read(), r.headers["ETag"]
                assert r.headers.get("Content-Encoding") == "gzip", r.headers
            async with http.get(self.url + self.map_path,
                                headers={**auth, "Accept-Encoding": "identity"}) as r:
                self.map_plain = await r.read()
        body = self.folder / "seats.json.gz"
        body.write_bytes(self.map_gz)
        bare_port = free_port()
        self.bare_url = f"http://127.0.0.1:{bare_port}"
        self.bare = Proc("stadium-bare", [
            sys.executable, "-m", "loadtest.bare_booking", "--port", str(bare_port), "--dsn",
            self.dsn, "--body", str(body), "--etag", self.map_etag, "--encoding", "gzip"],
            dict(os.environ))
        wait_http(f"{self.bare_url}/stats", self.bare)

    def stop(self) -> None:
        for proc in (self.bare, self.web):
            if proc is not None:
                proc.stop()

    # -- 1. hold cost at empty and at 90 % sold --------------------------------------------
    async def http_hold_release(self, schedule: int, quantity: int, clients: int) -> list[float]:
        """Hold (timed) and release, over and over, from `clients` buyers: hold latencies."""
        times: list[float] = []
        deadline = time.perf_counter() + self.plan.seconds
        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector) as http:
            async def buyer(token: str) -> None:
                headers = {"Authorization": f"Bearer {token}"}
                body = {"schedule_id": schedule, "quantity": quantity}
                while time.perf_counter() < deadline:
                    t0 = time.perf_counter()
                    async with http.post(self.url + "/api/v1/reservations", json=body,
                                         headers=headers) as r:
                        answer = await r.json()
                        if r.status != 201:
                            raise RuntimeError(f"hold answered {r.status}: {answer}")
                    times.append(time.perf_counter() - t0)
                    async with http.delete(f"{self.url}/api/v1/reservations/{answer['id']}",
                                           headers=headers) as r:
                        assert r.status == 204, r.status

            await asyncio.gather(*(buyer(t) for t in self.hold_tokens[:clients]))
        return times

    async def direct_hold_release(self, schedule: int, quantity: int, clients: int) -> list[float]:
        """The same through booking.holds.hold and release on a pool of our own."""
        times: list[float] = []
        deadline = time.perf_counter() + self.plan.seconds
        pool = await asyncpg.create_pool(self.dsn, min_size=clients, max_size=clients)

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
            await asyncio.gather(*(buyer(DIRECT_USERS + i) for i in range(clients)))
        finally:
            await pool.close()
        return times

    async def fill_level(self) -> dict[tuple[str, int, int], float]:
        """p50 hold latency (ms) of each way, quantity and number of clients; pgbench's mean."""
        out: dict[tuple[str, int, int], float] = {}
        for quantity in (1, 4):
            for clients in (1, 10):
                h = await self.http_hold_release(self.venue.fill, quantity, clients)
                d = await self.direct_hold_release(self.venue.fill, quantity, clients)
                p, _ = await self.pgbench(plain.hold_release_script(data.PLAIN_FILL, quantity),
                                          clients)
                out["HTTP", quantity, clients] = statistics.median(h) * 1000
                out["direct", quantity, clients] = statistics.median(d) * 1000
                out["pgbench", quantity, clients] = next(
                    ms for ms, text in p.statements if "'PENDING'" in text)
                say(f"q={quantity} c={clients}: HTTP {out['HTTP', quantity, clients]:.2f} ms, "
                    f"direct {out['direct', quantity, clients]:.2f} ms, pgbench "
                    f"{out['pgbench', quantity, clients]:.2f} ms")
        return out

    async def holds_by_fill(self) -> None:
        say("holds at empty")
        empty = await self.fill_level()
        explain_empty = await self.explain_pick()
        sold = int(data.SEATS * FILL)
        await data.sell(self.dsn, self.venue.fill, data.PLAIN_FILL, sold)
        say("holds at 90 % sold")
        full = await self.fill_level()
        explain_full = await self.explain_pick()
        t = Table("1. Hold latency at empty and at 90 % sold (one 50,000-seat date, seats sold "
                  "lowest first)",
                  ("way", "quantity", "clients", "p50 empty", "p50 90 % sold", "90 % ÷ empty",
                   "target", "result"))
        for (way, q, c), e in empty.items():
            f = full[way, q, c]
            name = {"HTTP": "ours over HTTP", "direct": "ours, `booking.holds.hold`",
                    "pgbench": "ceiling: plain statement, pgbench (mean)"}[way]
            target = way != "pgbench"
            t.add(name, str(q), str(c), fmt(e, " ms", 2), fmt(f, " ms", 2), f"{f / e:.2f}×",
                  "≤ 1.50×" if target else "", self.check(f / e <= 1.5, f"fill {way} q={q} c={c}")
                  if target else "—")
        self.tables.append(t)
        self.notes.append("Each buyer holds (timed) and releases (not timed) over and over, so the "
                          "date stays at its fill level; pgbench's script does the same with the "
                          "plain statement on a 50,000-seat table of its own, sold the same way, "
                          "and gives the hold statement's mean latency (`-r`). After selling, both "
                          "tables are vacuumed, as autovacuum would.")
        self.notes.append("The picker's free-seat scan, `EXPLAIN (ANALYZE, BUFFERS)` at empty and "
                          f"at 90 % sold:\n\n```\n{explain_empty}\n-- 90 % sold --\n{explain_full}"
                          "\n```")

    async def explain_pick(self) -> str:
        conn = await asyncpg.connect(self.dsn)
        try:
            tx = conn.transaction()
            await tx.start()
            try:
                rows = await conn.fetch(
                    "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) "
                    "SELECT s.id, s.seat_number, s.price, s.reservation_id FROM concert_seats s "
                    "WHERE s.schedule_id = $1 AND s.status = 'AVAILABLE' ORDER BY s.seat_number "
                    "LIMIT 4 FOR NO KEY UPDATE SKIP LOCKED", self.venue.fill)
            finally:
                await tx.rollback()
        finally:
            await conn.close()
        return "\n".join(r[0] for r in rows)

    # -- 2. holds/s and payments/s, and PostgreSQL's time for each ---------------------------
    def hold_requests(self, schedule: int) -> list[wrk.Request]:
        body = f'{{"schedule_id":{schedule},"quantity":1}}'
        return [wrk.Request("POST", "/api/v1/reservations", {
            "Authorization": f"Bearer {t}", "Content-Type": "application/json"}, body)
            for t in self.hold_tokens]

    async def throughput(self) -> None:
        v, c = self.venue, 10
        say("holds/s at 10 clients")
        await data.vacuum(self.dsn)
        await data.reset_plain(self.dsn, data.PLAIN_THROUGHPUT)
        gw, gw_cpu = await self.load(self.url, self.hold_requests(v.throughput[0]), c)
        bare, bare_cpu = await self.load(self.bare_url, [wrk.Request(
            "POST", "/hold", {"Content-Type": "application/json"},
            f'{{"schedule_id":{data.PLAIN_THROUGHPUT},"quantity":1}}')], c)
        await data.reset_plain(self.dsn, data.PLAIN_THROUGHPUT)
        pgb, pgb_cpu = await self.pgbench(plain.hold_script(data.PLAIN_THROUGHPUT), c)
        await data.reset_plain(self.dsn, data.PLAIN_THROUGHPUT)
        direct_rate, direct_per = await self.direct_holds(v.throughput[1], c)
        gw_ok, bare_ok = gw.statuses.get(201, 0), bare.statuses.get(201, 0)
        per = {"gw": gw_cpu / max(1, gw_ok), "bare": bare_cpu / max(1, bare_ok),
               "pgb": pgb_cpu / max(1, pgb.transactions), "direct": direct_per}
        t = Table("2. One round trip per hold (and per payment): 10 clients, quantity 1, empty "
                  "date")
        r = gw_ok / gw.seconds / (bare_ok / bare.seconds)
        t.add("holds/s over HTTP (wrk, 10 connections)", fmt(gw_ok / gw.seconds),
              fmt(bare_ok / bare.seconds) + " bare aiohttp + asyncpg, plain statement",
              f"{r:.2f}×", "≥ 0.50×", self.check(r >= 0.5, "holds/s"))
        t.add("… p50 / p99 latency", f"{gw.p50_ms:.1f} / {gw.p99_ms:.1f} ms",
              f"{bare.p50_ms:.1f} / {bare.p99_ms:.1f} ms", "", "", "—")
        t.add("holds/s, `booking.holds.hold` on asyncpg (10 connections)", fmt(direct_rate),
              fmt(pgb.tps) + " pgbench, plain statement", f"{direct_rate / pgb.tps:.2f}×", "",
              "—")
        r = per["gw"] / per["pgb"]
        t.add("PostgreSQL CPU per hold, HTTP", fmt(per["gw"] * 1000, " ms", 3),
              fmt(per["pgb"] * 1000, " ms", 3) + " pgbench", f"{r:.2f}×", "≤ 2.00×",
              self.check(r <= 2, "PostgreSQL time per hold"))
        t.add("PostgreSQL CPU per hold, direct / bare handler",
              fmt(per["direct"] * 1000, " ms", 3),
              fmt(per["bare"] * 1000, " ms", 3) + " bare handler",
              f"{per['direct'] / per['bare']:.2f}×", "", "—")
        self.hold_pg_ms = per["gw"] * 1000
        await self.payments(t)
        self.tables.append(t)
        self.notes.append(
            "PostgreSQL CPU is the CPU time of the server's processes (the postmaster, its live "
            "backends and those it has reaped, from `/proc`) over the run, divided by the holds "
            "or payments done. A hold of ours is one Redis round trip (the gate) and five "
            "PostgreSQL ones (BEGIN, user lock, pick, create, COMMIT; a sixth when it takes over "
            "seats of a hold that ran out); a payment is nine (BEGIN, key lock, replay lookup, "
            "reservation lock, seat locks, debit, record, COMMIT, and marking the queue token "
            "expired after it) plus two Redis ones; the plain ones are one statement each.")

    async def direct_holds(self, schedule: int, clients: int) -> tuple[float, float]:
        """Holds/s through booking.holds.hold on a pool, and PostgreSQL CPU seconds per hold."""
        pool = await asyncpg.create_pool(self.dsn, min_size=clients, max_size=clients)
        users = iter(range(DIRECT_USERS + 100, DIRECT_USERS + 10**6))

        async def step() -> bool:
            async with pool.acquire() as conn:
                await holds.hold(conn, user_id=next(users), schedule_id=schedule,
                                 seat_numbers=None, quantity=1, ttl_seconds=300, max_seats=1000)
            return True

        try:
            c0 = self.pg_cpu()
            rate, _ = await drive(clients, self.plan.seconds, step)
            return rate, (self.pg_cpu() - c0) / max(1, rate * self.plan.seconds)
        finally:
            await pool.close()

    async def payments(self, t: Table) -> None:
        c, n = 10, self.plan.payers
        say("payments/s at 10 clients")
        rids = range(data.PAY_BASE + 1, data.PAY_BASE + n + 1)
        ours = [wrk.Request("POST", "/api/v1/payments", {
            "Authorization": f"Bearer {token}", "Content-Type": "application/json",
            "Idempotency-Key": f"bench-{rid}"}, f'{{"reservation_id":{rid}}}')
            for token, rid in zip(self.pay_tokens, rids, strict=True)]
        paid = "SELECT count(*) FROM payments WHERE state = 'COMPLETED'"
        before = await self.count(paid)
        gw, gw_cpu = await self.load(self.url, ours, c)
        gw_paid = await self.count(paid) - before
        # The bare process pays for the first n plain seats, pgbench for the next n.
        theirs = [wrk.Request("POST", "/pay", {"Content-Type": "application/json"},
                              f'{{"reservation_id":{data.PLAIN_PAY_BASE + k}}}')
                  for k in range(1, n + 1)]
        plain_paid = "SELECT count(*) FROM plain_payments"
        before = await self.count(plain_paid)
        bare, bare_cpu = await self.load(self.bare_url, theirs, c)
        bare_paid = await self.count(plain_paid) - before
        await self.count("SELECT setval('plain_pay_seq', $1)", n)
        before = await self.count(plain_paid)
        pgb, pgb_cpu = await self.pgbench(plain.pay_script(data.PLAIN_PAY_BASE, data.PRICE), c)
        pgb_paid = await self.count(plain_paid) - before
        if gw.requests > n or bare.requests > n or pgb.transactions > n:
            self.notes.append("Payments: the list of held seats ran out during a run; the "
                              "figures count the payments made, not the requests.")
        gw_rate, bare_rate = gw_paid / gw.seconds, bare_paid / bare.seconds
        r = gw_rate / bare_rate
        t.add("payments/s over HTTP (wrk, 10 connections)", fmt(gw_rate),
              fmt(bare_rate) + " bare aiohttp + asyncpg, plain statement", f"{r:.2f}×", "≥ 0.50×",
              self.check(r >= 0.5, "payments/s"))
        t.add("… p50 / p99 latency", f"{gw.p50_ms:.1f} / {gw.p99_ms:.1f} ms",
              f"{bare.p50_ms:.1f} / {bare.p99_ms:.1f} ms", "", "", "—")
        per_gw, per_pgb = gw_cpu / max(1, gw_paid), pgb_cpu / max(1, pgb_paid)
        r = per_gw / per_pgb
        t.add("PostgreSQL CPU per payment, HTTP", fmt(per_gw * 1000, " ms", 3),
              fmt(per_pgb * 1000, " ms", 3) + f" pgbench ({pgb.tps:,.0f} tps)", f"{r:.2f}×",
              "≤ 2.00×", self.check(r <= 2, "PostgreSQL time per payment"))
        t.add("PostgreSQL CPU per payment, bare handler", "",
              fmt(bare_cpu / max(1, bare_paid) * 1000, " ms", 3), "", "", "—")

    async def evidence(self) -> None:
        """Where a hold's time goes: py-spy on the web process under the holds load, and the
        hold's statements one by one."""
        say("profile: web process under holds")
        assert self.web is not None
        task = asyncio.create_task(wrk.run_list(self.url, self.hold_requests(
            self.venue.throughput[0]), seconds=5, connections=10))
        await asyncio.sleep(0.5)
        out = REPORTS / f"{self.stamp}-stadium-holds.collapsed"
        self.profiles.append(("holds (web process under wrk, 10 connections)",
                              await profile.record(self.web.pid, 3, out)))
        await task
        self.notes.append(await self.round_trips())
        self.notes.append(await self.explain_writes())

    async def explain_writes(self) -> str:
        """`EXPLAIN ANALYZE` of the statements that write a hold and a payment (rolled back):
        the triggers and foreign keys they fire, and their time."""
        from booking import queries

        v = self.venue
        conn = await asyncpg.connect(self.dsn)
        plans: dict[str, list[asyncpg.Record]] = {}
        explain = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "
        try:
            # Twice each: the first run of a trigger or a foreign-key check in a session plans
            # its statements, the second shows what every later hold pays.
            for _ in range(2):
                tx = conn.transaction()
                await tx.start()
                try:
                    user = DIRECT_USERS + 900_000
                    await queries.lock_user(conn, user)
                    rows = await queries.pick_any(conn, user, v.throughput[1], 1)
                    plans["a hold's CREATE_HOLD"] = await conn.fetch(
                        explain + queries.CREATE_HOLD, user, v.throughput[1], [rows[0]["id"]],
                        300.0)
                finally:
                    await tx.rollback()
                tx = conn.transaction()
                await tx.start()
                try:
                    rid = data.PAY_BASE + v.payers  # the last payer: not reached by the runs
                    await queries.lock_reservation(conn, rid, rid)
                    await queries.lock_held_seats(conn, rid)
                    balance = await queries.debit(conn, rid, data.PRICE)
                    plans["a payment's COMPLETE_PAYMENT"] = await conn.fetch(
                        explain + queries.COMPLETE_PAYMENT, rid, rid, data.PRICE, "explain", b"x",
                        "00000000-0000-4000-8000-000000000000", balance)
                finally:
                    await tx.rollback()
        finally:
            await conn.close()
        text = "\n\n".join(f"-- {name}\n" + "\n".join(r[0] for r in rows)
                            for name, rows in plans.items())
        return ("The statements that write a hold and a payment, `EXPLAIN (ANALYZE, BUFFERS)` in "
                "a transaction rolled back: besides the rows themselves, the seat-stock trigger "
                "and the foreign-key checks are PostgreSQL work that the plain statement does "
                f"not do.\n\n```\n{text}\n```")

    async def round_trips(self) -> str:
        """The statements of one hold, timed from the client one at a time, 1 client."""
        from booking import queries

        conn = await asyncpg.connect(self.dsn)
        spent: dict[str, list[float]] = {k: [] for k in ("BEGIN", "lock user", "pick", "create",
                                                          "COMMIT")}
        try:
            for i in range(300):
                user = DIRECT_USERS + 500_000 + i
                marks = [time.perf_counter()]
                tx = conn.transaction()
                await tx.start()
                marks.append(time.perf_counter())
                await queries.lock_user(conn, user)
                marks.append(time.perf_counter())
                rows = await queries.pick_any(conn, user, self.venue.throughput[1], 1)
                marks.append(time.perf_counter())
                await queries.create_hold(conn, user, self.venue.throughput[1], [rows[0]["id"]], 300)
                marks.append(time.perf_counter())
                await tx.commit()
                marks.append(time.perf_counter())
                for name, a, b in zip(spent, marks, marks[1:], strict=False):
                    spent[name].append(b - a)
        finally:
            await conn.close()
        total = sum(statistics.median(v) for v in spent.values())
        cells = ", ".join(f"{k} {statistics.median(v) * 1000:.2f} ms" for k, v in spent.items())
        return (f"One hold's PostgreSQL round trips, timed from the client (median of 300, one "
                f"client, no load): {cells}; {total * 1000:.2f} ms in all, against "
                f"{self.hold_pg_ms:.3f} ms of PostgreSQL CPU per hold under load: most of a "
                "hold's time is round trips and per-statement overhead, not the seat search.")

    # -- 3. seat maps and the dates list --------------------------------------------------
    async def seat_maps(self) -> None:
        v = self.venue
        say("seat maps")
        await data.vacuum(self.dsn)
        auth = {"Authorization": f"Bearer {self.hold_tokens[0]}", "Accept-Encoding": "gzip"}
        ours = [wrk.Request("GET", self.map_path, auth)]
        bare = [wrk.Request("GET", "/seats", {"Accept-Encoding": "gzip"})]
        t = Table("3. Seat maps of a 50,000-seat date (90 % sold) and the dates list")
        t.add("body size, gzip / plain JSON", f"{len(self.map_gz) / 1024:,.0f} KB / "
              f"{len(self.map_plain) / 1024:,.0f} KB", "same bytes",
              f"{len(self.map_gz) / len(self.map_plain):.3f}×", "", "—")
        # Long enough for a few full maps to finish at 10 at once.
        seconds = max(5.0, self.plan.seconds)
        for clients in (1, 10):
            g, g_cpu = await self.load(self.url, ours, clients, seconds)
            b, _ = await self.load(self.bare_url, bare, clients, seconds)
            t.add(f"full map p50, {clients} at once", fmt(g.p50_ms, " ms", 1),
                  fmt(b.p50_ms, " ms", 1) + " bare, same bytes", f"{g.p50_ms / b.p50_ms:.1f}×",
                  "", "—")
            t.add(f"… maps/s, {clients} at once", fmt(g.rps, "", 1), fmt(b.rps), f"{g.rps / b.rps:.3f}×",
                  "", "—")
            if clients == 1:
                full_pg_ms = g_cpu / max(1, g.requests) * 1000
        t.add("PostgreSQL CPU per full map", fmt(full_pg_ms, " ms", 2), "", "", "", "—")
        g, g_cpu = await self.load(self.url, [wrk.Request("GET", self.map_path, {
            **auth, "If-None-Match": self.map_etag})], 10)
        b, _ = await self.load(self.bare_url, [wrk.Request("GET", "/seats", {
            "If-None-Match": self.map_etag})], 10)
        g304, b304 = g.statuses.get(304, 0) / g.seconds, b.statuses.get(304, 0) / b.seconds
        t.add("304 answers/s with If-None-Match (10 connections)", fmt(g304), fmt(b304),
              f"{g304 / b304:.2f}×", "", "—")
        pg_304_ms = g_cpu / max(1, g.requests) * 1000
        t.add("PostgreSQL CPU per 304", fmt(pg_304_ms, " ms", 3), "", "", "", "—")
        await self.refreshers(t)
        dates = f"/api/v1/concerts/{v.concert}/schedules"
        g, _ = await self.load(self.url, [wrk.Request("GET", dates, {
            "Authorization": f"Bearer {self.hold_tokens[0]}"})], 1)
        b, _ = await self.load(self.bare_url, [wrk.Request("GET", f"/dates/{v.concert}")], 1)
        t.add("dates list p50, 1 at a time", fmt(g.p50_ms, " ms", 2),
              fmt(b.p50_ms, " ms", 2) + " bare, plain statement", f"{g.p50_ms / b.p50_ms:.2f}×",
              "", "—")
        self.tables.append(t)
        self.notes.append(
            f"A full map costs PostgreSQL {full_pg_ms:.1f} ms of CPU and a 304 {pg_304_ms:.2f} ms: "
            f"when a seat changes, {self.plan.clients:,} clients refreshing fetch the full map "
            f"once each, about {full_pg_ms * self.plan.clients / 1000:.1f} s of PostgreSQL CPU "
            "per change of the date, which is why a client on a busy date should ask for the "
            "range it shows (`?from=&to=`).")

    async def refreshers(self, t: Table) -> None:
        """Clients each asking for the map again every period (on average) with the ETag they
        hold (wrk, one connection each); PostgreSQL's and the web process's CPU over a window
        that starts once every client has asked once."""
        p = self.plan
        assert self.web is not None
        say(f"{p.clients:,} clients refreshing the map every {p.period:g} s")
        requests = [wrk.Request("GET", self.map_path, {
            "Authorization": f"Bearer {token}", "Accept-Encoding": "gzip",
            "If-None-Match": self.map_etag}) for token in self.map_tokens]
        warm = p.period * 2
        task = asyncio.create_task(wrk.run_list(
            self.url, requests, seconds=warm + p.window + 1, connections=p.clients,
            pause_ms=round(p.period * 1000)))
        await asyncio.sleep(warm)
        pg0, web0, t0 = self.pg_cpu(), cpu_seconds(self.web.pid), time.monotonic()
        await asyncio.sleep(p.window)
        pg1, web1, t1 = self.pg_cpu(), cpu_seconds(self.web.pid), time.monotonic()
        r = await task
        took = t1 - t0
        pg, web = (pg1 - pg0) / took, (web1 - web0) / took
        want = p.clients / p.period
        # On a busy machine the clients may fall short of the rate wanted: PostgreSQL's CPU is
        # then also given per answer, scaled to the rate wanted.
        at_rate = pg / max(1.0, r.rps) * want
        t.add(f"{p.clients:,} clients refreshing every {p.period:g} s: PostgreSQL CPU",
              f"{pg:.1%} of one core measured; {at_rate:.1%} at {want:,.0f}/s", "", "",
              "< 25 % of one core", self.check(max(pg, at_rate) < 0.25,
                                               "seat-map refresh PostgreSQL CPU"))
        t.add("… answers/s (304 share)", f"{r.rps:,.0f} of {want:,.0f} wanted "
              f"({r.statuses.get(304, 0) / max(1, r.requests):.1%} 304)",
              "", "", "", "—")
        t.add("… latency p50 / p99; web process CPU",
              f"{r.p50_ms:.1f} / {r.p99_ms:.1f} ms; {web:.0%} of one core", "", "", "", "—")

    # -- the whole run ----------------------------------------------------------------------
    async def run(self) -> str:
        self.stamp = time.strftime("%Y%m%d-%H%M%S")
        REPORTS.mkdir(exist_ok=True)
        clock = time.monotonic()
        try:
            await self.start()
            await self.holds_by_fill()
            await self.throughput()
            await self.evidence()
            await self.seat_maps()
        finally:
            self.stop()
        return self.render(time.monotonic() - clock)

    def render(self, took: float) -> str:
        p, load = self.plan, os.getloadavg()
        out = ["## Stadium scale: 50,000-seat dates", "",
               f"{os.cpu_count()} cores, load average at the end {load[0]:.2f}; one "
               "`waitingroom web` process, throwaway PostgreSQL and Redis; "
               f"{p.seconds:g} s per measurement; took {took:.0f} s. Every ceiling was measured "
               "in this run: pgbench running the plain statement, or a bare aiohttp + asyncpg "
               "process running it (`loadtest/plain.py`, `loadtest/bare_booking.py`), with the "
               "same HTTP client (wrk, one thread) as the gateway.", ""]
        out.append("Targets missed: " + (", ".join(self.missed) if self.missed else "none") + ".")
        for table in self.tables:
            out += ["", table.render()]
        out += ["", "### Notes", ""] + [f"- {n}" for n in self.notes]
        for what, prof in self.profiles:
            out += ["", f"### Profile: {what}", ""]
            if prof.error:
                out.append(f"py-spy failed: `{prof.error.strip()[:300]}`")
                continue
            out += [f"{prof.samples} samples (py-spy, 200 Hz). Hottest leaf functions:", "",
                    "| share | function |", "| ---: | --- |"]
            out += [f"| {s:.1%} | `{f}` |" for f, s in prof.self_top]
            out += ["", "On the stack (inclusive):", "", "| share | function |", "| ---: | --- |"]
            out += [f"| {s:.1%} | `{f}` |" for f, s in prof.incl_top
                    if not any(x in f for x in ("<module>", "_run_", "run_forever", "run (",
                                                "run_app", "serve_web", "main ("))][:14]
        out.append("\nRe-run: `" + " ".join(["python -m loadtest.stadium_bench", *sys.argv[1:]])
                   + "`")
        return "\n".join(out) + "\n"


@contextlib.contextmanager
def servers() -> Iterator[tuple[str, str]]:
    """(database URL, Redis URL) on throwaway servers of this run's own."""
    with throwaway_postgres() as server, scratch_database("wr_stadium", server) as dsn, \
            throwaway_redis() as redis_url:
        yield dsn, redis_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.stadium_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 s measurements, 10 s window")
    parser.add_argument("--seconds", type=float, help="one measurement (default 2, quick 1)")
    parser.add_argument("--clients", type=int, default=1000, help="seat-map refreshers")
    parser.add_argument("--period", type=float, default=2.0, help="seconds between refreshes")
    args = parser.parse_args(argv)
    if not wrk.available():
        print("needs wrk: apt-get install -y wrk (scripts/bench installs it)", file=sys.stderr)
        return 2
    raise_nofile()
    plan = Plan(seconds=args.seconds or (1.0 if args.quick else 2.0), clients=args.clients,
                period=args.period, window=10.0 if args.quick else 20.0,
                payers=2000 if args.quick else 4000)
    with servers() as (dsn, redis_url), tempfile.TemporaryDirectory(prefix="wr-stadium-") as tmp:
        text = uvloop.run(Run(plan, dsn, redis_url, Path(tmp)).run())
    path = REPORTS / f"{time.strftime('%Y%m%d-%H%M%S')}-stadium.md"
    path.write_text(text)
    print(text)
    print(f"report: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
