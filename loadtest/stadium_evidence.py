"""Stadium bench, evidence: where a hold's time goes (py-spy on the web process, one hold at a
time, EXPLAIN ANALYZE of the writes, PostgreSQL CPU with the triggers off)."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import asyncpg

from booking import holds, queries

from . import plain, profile, wrk
from . import stadium_data as data
from .report import REPORTS, Table, fmt, say
from .stadium_holds import hold_requests

if TYPE_CHECKING:
    from .stadium_bench import Run


async def evidence(run: Run) -> None:
    """Where a hold's time goes: py-spy on the web process under the holds load, and the
    hold's statements one by one."""
    say("profile: web process under holds")
    assert run.web is not None
    task = asyncio.create_task(wrk.run_list(run.url, hold_requests(run,
        run.venue.throughput[0]), seconds=5, connections=10))
    await asyncio.sleep(0.5)
    out = REPORTS / f"{run.stamp}-stadium-holds.collapsed"
    run.profiles.append(("holds (web process under wrk, 10 connections)",
                          await profile.record(run.web.pid, 3, out)))
    await task
    run.notes.append(await round_trips(run))
    run.notes.append(await explain_writes(run))


async def round_trips(run: Run) -> str:
    """One hold at a time from one client, ours and the plain statement: median latency."""
    v = run.venue
    conn = await asyncpg.connect(run.dsn)
    ours: list[float] = []
    theirs: list[float] = []
    try:
        for i in range(300):
            t0 = time.perf_counter()
            await holds.hold(conn, user_id=data.DIRECT_HOLDER_IDS[-1 - i],
                             schedule_id=v.throughput[1], seat_numbers=None, quantity=1,
                             ttl_seconds=300, max_seats=1000)
            t1 = time.perf_counter()
            await conn.fetch(plain.HOLD, data.PLAIN_THROUGHPUT, 1)
            theirs.append(time.perf_counter() - t1)
            ours.append(t1 - t0)
    finally:
        await conn.close()
    await data.reset_plain(run.dsn, data.PLAIN_THROUGHPUT)
    a, b = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
    return (f"One hold at a time from one client, no other load (median of 300): "
            f"`booking.holds.hold` {a:.2f} ms, the plain statement {b:.2f} ms ({a / b:.1f}×); "
            f"PostgreSQL CPU per hold under load {run.hold_pg_ms:.3f} ms.")


async def explain_writes(run: Run) -> str:
    """`EXPLAIN ANALYZE` of a hold (ours and the plain one) and of the statement that writes a
    payment, each in a transaction rolled back: the work each does in PostgreSQL."""

    v = run.venue
    conn = await asyncpg.connect(run.dsn)
    plans: dict[str, list[asyncpg.Record]] = {}
    explain = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "
    user = data.DIRECT_USERS + 900_000
    # A payer whose hold the runs left unpaid (a payer's user id is its reservation's id).
    rid = await conn.fetchval(
        "SELECT max(id) FROM reservations WHERE id BETWEEN $1 AND $2 AND status = 'WAITING'",
        data.PAY_BASE + 1, data.PAY_BASE + v.payers)
    try:
        # Twice each: the first run of a trigger or a foreign-key check in a session plans
        # its statements, the second shows what every later call pays.
        for _ in range(2):
            async with _rolled_back(conn):
                plans["our hold: hold_seats (one call)"] = await conn.fetch(
                    explain + queries.HOLD_SEATS, user, v.throughput[1], None, 1, 300.0, 1000)
            async with _rolled_back(conn):
                plans["the plain hold"] = await conn.fetch(explain + plain.HOLD,
                                                           data.PLAIN_THROUGHPUT, 1)
            if rid is None:
                continue  # every payer paid: no payment to explain
            async with _rolled_back(conn):
                await conn.fetchrow(queries.SELL_RESERVATION, rid, rid, v.concert)
                plans["a payment's SELL_HELD_SEATS"] = await conn.fetch(
                    explain + queries.SELL_HELD_SEATS, rid)
                balance = await queries.debit(conn, rid, data.PRICE)
                plans["a payment's RECORD_PAYMENT"] = await conn.fetch(
                    explain + queries.RECORD_PAYMENT, rid, rid, data.PRICE, "explain", b"x",
                    "00000000-0000-4000-8000-000000000000", balance)
    finally:
        await conn.close()
    text = "\n\n".join(f"-- {name}\n" + "\n".join(r[0] for r in rows)
                       for name, rows in plans.items())
    return ("A hold and the statement that writes a payment, `EXPLAIN (ANALYZE, BUFFERS)` in "
            "a transaction rolled back (the second of two runs). Buffers and time show the "
            "work: besides its seat rows, ours writes a reservation row, and fires "
            "the seat-stock trigger and foreign-key checks that the plain statement does not "
            f"have.\n\n```\n{text}\n```")


async def attribution(run: Run) -> None:
    """PostgreSQL CPU per hold with pgbench calling hold_seats, as it is and with the seat
    tables' triggers switched off, beside the plain statement: what the rest of the cost is.
    Last in the run: it changes the schema for a moment (a throwaway database)."""

    say("PostgreSQL CPU per hold: what it is spent on")
    schedule, c = run.venue.throughput[1], 10
    call = plain.pgbench_sql(queries.HOLD_SEATS, {
        1: "uid", 2: "sid", 3: "numbers", 4: "qty", 5: "ttl", 6: "most"}).replace(
        ":numbers", "NULL")
    script = "\n".join([
        f"\\set uid random({data.DIRECT_HOLDER_IDS[0]}, {data.DIRECT_HOLDER_IDS[-1]})",
        f"\\set sid {schedule}", "\\set qty 1", "\\set ttl 300", "\\set most 1000",
        call + ";", ""])
    tables = ("concert_seats", "reservations")
    variants = [
        ("`hold_seats`, as it is", []),
        ("… without the seat-stock trigger",
         ["ALTER TABLE concert_seats DISABLE TRIGGER concert_seats_stock_update"]),
        ("… and without the foreign-key checks of the two tables it writes",
         [f"ALTER TABLE {t} DISABLE TRIGGER ALL" for t in tables])]
    await data.reset_plain(run.dsn, data.PLAIN_THROUGHPUT)
    conn = await asyncpg.connect(run.dsn)
    try:
        wal0 = await conn.fetchval("SELECT pg_current_wal_lsn()")
        base, base_cpu = await run.pgbench(plain.hold_script(data.PLAIN_THROUGHPUT), c)
        base_wal = await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)", wal0)
    finally:
        await conn.close()
    per_plain = base_cpu / base.transactions
    t = Table("2b. PostgreSQL CPU per hold under pgbench (10 clients): where it goes",
              ("statement", "holds/s", "PostgreSQL CPU per hold", "÷ plain statement",
               "WAL per hold"))
    conn = await asyncpg.connect(run.dsn)
    try:
        for name, statements in variants:
            for statement in statements:
                await conn.execute(statement)
            await data.vacuum(run.dsn)
            wal0 = await conn.fetchval("SELECT pg_current_wal_lsn()")
            r, cpu = await run.pgbench(script, c)
            wal = await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)", wal0)
            per = cpu / r.transactions
            t.add(name, fmt(r.tps), fmt(per * 1000, " ms", 3), f"{per / per_plain:.2f}×",
                  fmt(float(wal) / r.transactions, " B"))
    finally:
        for table in tables:
            await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER ALL")
        await conn.close()
    t.add("the plain statement", fmt(base.tps), fmt(per_plain * 1000, " ms", 3), "1.00×",
          fmt(float(base_wal) / base.transactions, " B"))
    run.tables.append(t)


@contextlib.asynccontextmanager
async def _rolled_back(conn: asyncpg.Connection) -> AsyncIterator[None]:
    tx = conn.transaction()
    await tx.start()
    try:
        yield
    finally:
        await tx.rollback()
