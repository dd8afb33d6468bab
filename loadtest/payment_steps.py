"""Where a payment's PostgreSQL time goes: the statements `pay_reservation` runs, then the one
written after its commit and the queue's end of the token (its row in payment_tokens_to_end
deleted; one statement for many in the web process), sent one by one from one connection,
each one's backend CPU summed over many payments; beside them the plain one-statement payment
and the whole `pay_reservation` call.

    python -m loadtest.payment_steps [--payments 2000]

Starts a throwaway PostgreSQL of its own and stops it. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Iterator

import asyncpg
import uvloop

from booking import queries
from waitingroom.queries import RECORD_EXPIRED
from waitingroom.servers import scratch_database, throwaway_postgres

from . import plain
from . import stadium_data as data
from .procstat import cpu_seconds
from .report import say

WARM = 50  # payments not counted: the connection's first plans

Args = Callable[[int, dict[str, object]], tuple[object, ...]]

# (name, SQL, its arguments from the reservation id and what earlier steps returned)
STEPS: list[tuple[str, str, Args]] = [
    ("BEGIN", "BEGIN", lambda r, s: ()),
    ("idempotency-key lock", queries.TRY_LOCK_KEY,
     lambda r, s: (r, f"k{r}", queries.LOCK_IDEMPOTENCY_KEY)),
    ("replay lookup", queries.FIND_PAYMENT, lambda r, s: (r, f"k{r}")),
    ("reservation sold (its lock)", queries.SELL_RESERVATION, lambda r, s: (r, r, s["concert"])),
    ("its seats sold (their locks)", queries.SELL_HELD_SEATS, lambda r, s: (r,)),
    ("debit", queries.DEBIT, lambda r, s: (r, data.PRICE)),
    ("the token's audit row", RECORD_EXPIRED, lambda r, s: ([s["token"]], "completed")),
    ("payment, ledger row, token to end", queries.RECORD_PAYMENT,
     lambda r, s: (r, r, data.PRICE, f"k{r}", b"x" * 32, s["token"], 1)),
    ("COMMIT", "COMMIT", lambda r, s: ()),
    ("after commit: the payment's token-to-end row deleted", queries.FORGET_ENDED_TOKENS,
     lambda r, s: ([s["payment"]],)),
]


async def measure(dsn: str, payments: int) -> tuple[list[tuple[str, float]], dict[str, AtOnce]]:
    """(step, PostgreSQL CPU ms per payment), and ours and the plain payment from 10
    connections at once."""
    await data.prepare_payers(dsn, 4 * payments + 4 * WARM)
    conn = await asyncpg.connect(dsn)
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    rids = iter(range(data.PAY_BASE + 1, data.PAY_BASE + 3 * payments + 3 * WARM + 1))
    spent: collections.defaultdict[str, float] = collections.defaultdict(float)
    try:
        concert = await conn.fetchval(
            "SELECT sc.concert_id FROM reservations r JOIN concert_schedules sc"
            " ON sc.id = r.schedule_id WHERE r.id = $1", data.PAY_BASE + 1)
        for i in range(payments + WARM):
            r = next(rids)
            seen: dict[str, object] = {"token": str(uuid.uuid4()), "concert": concert}
            for name, sql, args in STEPS:
                c0 = cpu_seconds(pid)
                value = await conn.fetchval(sql, *args(r, seen))
                if i >= WARM:
                    spent[name] += cpu_seconds(pid) - c0
                if name.startswith("payment,"):
                    seen["payment"] = value
        out = [(name, spent[name] / payments * 1000) for name, _, _ in STEPS]
        out.append(("all of the above", sum(spent.values()) / payments * 1000))

        async def one_call(r: int) -> None:
            await conn.fetchval(queries.PAY_RESERVATION, r, r, f"k{r}", b"x" * 32,
                                str(uuid.uuid4()), concert, False)

        async def plain_pay(r: int) -> None:
            await conn.fetchval(plain.PAY, r, r, data.PRICE)

        plain_ids = iter(range(data.PLAIN_PAY_BASE + 1, data.PLAIN_PAY_BASE + 2 * (payments + WARM) + 1))
        for name, step, ids in (("`pay_reservation`, one call (its own transaction)", one_call, rids),
                                ("the plain payment, one statement", plain_pay, plain_ids)):
            for _ in range(WARM):
                await step(next(ids))
            c0 = cpu_seconds(pid)
            for _ in range(payments):
                await step(next(ids))
            out.append((name, (cpu_seconds(pid) - c0) / payments * 1000))
        together: dict[str, AtOnce] = {}
        for name, ids, paying in (("`pay_reservation`", rids, True),
                                  ("the plain payment", plain_ids, False)):
            async def call(c: asyncpg.Connection, ids: Iterator[int] = ids,
                           paying: bool = paying) -> None:
                r = next(ids)
                if paying:
                    await c.fetchval(queries.PAY_RESERVATION, r, r, f"k{r}", b"x" * 32,
                                     str(uuid.uuid4()), concert, False)
                else:
                    await c.fetchval(plain.PAY, r, r, data.PRICE)

            together[name] = await at_once(dsn, call, payments)
        return out, together
    finally:
        await conn.close()


@dataclasses.dataclass
class AtOnce:
    """Calls made by 10 connections at once, as a web process's pool makes them."""

    cpu_ms: float  # PostgreSQL CPU per call (the backends' CPU summed)
    wal_bytes: float  # WAL written per call
    waits: collections.Counter[str]  # what the active backends were doing, sampled


async def at_once(dsn: str, call: Callable[[asyncpg.Connection], Awaitable[object]],
                  payments: int) -> AtOnce:
    conns = [await asyncpg.connect(dsn) for _ in range(10)]
    watcher = await asyncpg.connect(dsn)
    try:
        pids = [await c.fetchval("SELECT pg_backend_pid()") for c in conns]

        async def payer(conn: asyncpg.Connection, n: int) -> None:
            for _ in range(n):
                await call(conn)

        await asyncio.gather(*(payer(c, WARM // 10) for c in conns))
        waits: collections.Counter[str] = collections.Counter()
        done = asyncio.Event()

        async def sample() -> None:
            while not done.is_set():
                for row in await watcher.fetch(WAITS, pids):
                    waits[row[0]] += 1
                await asyncio.sleep(0.002)

        w0 = await watcher.fetchval(WAL_LSN)
        c0 = sum(cpu_seconds(p) for p in pids)
        sampler = asyncio.create_task(sample())  # the watcher's only user until it is done
        await asyncio.gather(*(payer(c, payments // 10) for c in conns))
        calls = payments // 10 * 10
        cpu = (sum(cpu_seconds(p) for p in pids) - c0) / calls * 1000
        done.set()
        await sampler  # its reads write no WAL
        wal = float(await watcher.fetchval(WAL_SINCE, w0)) / calls
        return AtOnce(cpu, wal, waits)
    finally:
        for c in [*conns, watcher]:
            await c.close()


WAL_LSN = "SELECT pg_current_wal_lsn()"
WAL_SINCE = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)"
# On CPU, or the wait event of an active backend.
WAITS = """
SELECT coalesce(wait_event_type || ' ' || wait_event, 'on CPU') FROM pg_stat_activity
WHERE pid = ANY($1::int[]) AND state = 'active'
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.payment_steps", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=2000)
    args = parser.parse_args(argv)
    with throwaway_postgres() as server, scratch_database("wr_pay_steps", server) as dsn:
        say("payments one statement at a time")
        rows, together = uvloop.run(measure(dsn, args.payments))
    print("| step | PostgreSQL CPU per payment |\n| --- | ---: |")
    for name, ms in rows:
        print(f"| {name} | {ms:.3f} ms |")
    print("\nFrom 10 connections at once, and what their backends were doing (sampled every 2 ms):"
          "\n\n| payment | PostgreSQL CPU | WAL | busiest states |\n| --- | ---: | ---: | --- |")
    for name, t in together.items():
        total = sum(t.waits.values()) or 1
        states = ", ".join(f"{state} {n / total:.0%}" for state, n in t.waits.most_common(4))
        print(f"| {name} | {t.cpu_ms:.3f} ms | {t.wal_bytes:,.0f} B | {states} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
