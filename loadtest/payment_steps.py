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
import uuid
from collections.abc import Callable, Iterator

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


async def measure(dsn: str, payments: int) -> list[tuple[str, float]]:
    """(step, PostgreSQL CPU ms per payment)."""
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

        plain_ids = iter(range(data.PLAIN_PAY_BASE + 1, data.PLAIN_PAY_BASE + payments + WARM + 1))
        for name, step, ids in (("`pay_reservation`, one call (its own transaction)", one_call, rids),
                                ("the plain payment, one statement", plain_pay, plain_ids)):
            for _ in range(WARM):
                await step(next(ids))
            c0 = cpu_seconds(pid)
            for _ in range(payments):
                await step(next(ids))
            out.append((name, (cpu_seconds(pid) - c0) / payments * 1000))
        out.append(("`pay_reservation` from 10 connections at once",
                    await at_once(dsn, concert, rids, payments)))
        return out
    finally:
        await conn.close()


async def at_once(dsn: str, concert: int, rids: Iterator[int], payments: int) -> float:
    """PostgreSQL CPU ms per `pay_reservation` call made by 10 connections at once, as a web
    process's pool makes them (the backends' CPU summed)."""
    conns = [await asyncpg.connect(dsn) for _ in range(10)]
    try:
        pids = [await c.fetchval("SELECT pg_backend_pid()") for c in conns]

        async def payer(conn: asyncpg.Connection, n: int) -> None:
            for _ in range(n):
                r = next(rids)
                await conn.fetchval(queries.PAY_RESERVATION, r, r, f"k{r}", b"x" * 32,
                                    str(uuid.uuid4()), concert, False)

        await asyncio.gather(*(payer(c, WARM // 10) for c in conns))
        c0 = sum(cpu_seconds(p) for p in pids)
        await asyncio.gather(*(payer(c, payments // 10) for c in conns))
        return (sum(cpu_seconds(p) for p in pids) - c0) / (payments // 10 * 10) * 1000
    finally:
        for c in conns:
            await c.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.payment_steps", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=2000)
    args = parser.parse_args(argv)
    with throwaway_postgres() as server, scratch_database("wr_pay_steps", server) as dsn:
        say("payments one statement at a time")
        rows = uvloop.run(measure(dsn, args.payments))
    print("| step | PostgreSQL CPU per payment |\n| --- | ---: |")
    for name, ms in rows:
        print(f"| {name} | {ms:.3f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
