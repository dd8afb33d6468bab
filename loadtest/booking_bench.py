"""Booking throughput on one PostgreSQL: holds/s and payments/s, three ways, in one run.

1. asyncpg: the handlers' own functions (booking.holds.hold, booking.payments.pay) on a pool.
2. HTTP: the same through a real `waitingroom web` process (gate in Redis, JSON, problems).
3. pgbench: a script made from the very SQL constants in booking/queries.py.

    python -m loadtest.booking_bench [--seconds 3] [--levels 1,10,100]

Uses DATABASE_URL when it answers (in a database of its own, dropped at the end), else a
throwaway server; Redis is always a throwaway one. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import uvloop

from booking import holds, payments, queries
from booking.errors import SeatUnavailable
from booking.gate import Holder
from booking.schemas import PaymentRequest
from db.migrate import migrate_url
from waitingroom import admission
from waitingroom.app import redis_client
from waitingroom.queue import Queues
from waitingroom.servers import free_port, scratch_database, throwaway_redis
from waitingroom.settings import Settings

from .pgbench import run as pgbench_run

SCHEDULES = 5000
SEATS = 40  # per schedule: any-seat holds walk at most this far
PRICE = 10_000
PAY_BASE_ID = 10_000_000  # reservation ids and user ids of the payment workload start here
HTTP_TOKENS = 300


# -- servers ------------------------------------------------------------------------------
def database() -> contextlib.AbstractContextManager[str]:
    """A fresh database on DATABASE_URL's server, or on a throwaway one; dropped on exit."""
    return scratch_database("wr_bench")


# -- data ---------------------------------------------------------------------------------
async def prepare(dsn: str, pay_count: int) -> tuple[int, int, int]:
    """Seats for holds, and pay_count WAITING one-seat holds with money to pay them.

    Returns (concert id, first schedule id, last schedule id).
    """
    await migrate_url(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            concert = await conn.fetchval(
                "INSERT INTO concerts (name, host) VALUES ('Bench', 'Bench Hall') RETURNING id")
            first = await conn.fetchval("""
                INSERT INTO concert_schedules (concert_id, concert_date)
                SELECT $1, date '2030-01-01' + n FROM generate_series(0, $2 - 1) n
                RETURNING id""", concert, SCHEDULES + 1)
            last = first + SCHEDULES - 1
            await conn.execute("""
                INSERT INTO concert_seats (schedule_id, seat_number, price)
                SELECT s, n, $3 FROM generate_series($1::bigint, $2::bigint) s,
                                     generate_series(1, $4) n""", first, last, PRICE, SEATS)
            # The payment workload: one schedule of pay_count seats, each on hold for its user.
            pay_schedule = last + 1
            await conn.execute("""
                INSERT INTO concert_seats (id, schedule_id, seat_number, price)
                SELECT $2 + n, $1, n, $3 FROM generate_series(1, $4) n""",
                               pay_schedule, PAY_BASE_ID, PRICE, pay_count)
            await conn.execute("""
                INSERT INTO users (id) SELECT $1 + n FROM generate_series(1, $2) n""",
                               PAY_BASE_ID, pay_count)
            await conn.execute("""
                INSERT INTO balances (user_id, balance) SELECT $1 + n, 1000000000
                FROM generate_series(1, $2) n""", PAY_BASE_ID, pay_count)
            await conn.execute("""
                INSERT INTO balance_ledger (user_id, kind, amount, balance_after)
                SELECT $1 + n, 'CHARGE', 1000000000, 1000000000 FROM generate_series(1, $2) n""",
                               PAY_BASE_ID, pay_count)
            await conn.execute("""
                INSERT INTO reservations (id, user_id, schedule_id, status, seat_count, total_price,
                                          hold_expires_at, seat_numbers, seat_prices)
                SELECT $1 + n, $1 + n, $3, 'WAITING', 1, $4, now() + interval '1 day',
                       ARRAY[n], ARRAY[$4::bigint]
                FROM generate_series(1, $2) n""", PAY_BASE_ID, pay_count, pay_schedule, PRICE)
            await conn.execute("""
                UPDATE concert_seats SET status = 'PENDING', reservation_id = id,
                       hold_expires_at = now() + interval '1 day' WHERE schedule_id = $1""",
                               pay_schedule)
            await conn.execute("CREATE SEQUENCE bench_pay_seq")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return concert, first, last


# -- drivers ------------------------------------------------------------------------------
async def drive(concurrency: int, seconds: float,
                step: Callable[[], Awaitable[bool | None]]) -> tuple[float, float]:
    """Run step from concurrency workers for seconds (or until a step answers None, out of
    work): (attempts/s, successes/s)."""
    done = ok = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done, ok
        while time.perf_counter() < deadline:
            result = await step()
            if result is None:
                return
            ok += result
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    took = time.perf_counter() - started
    return done / took, ok / took


async def asyncpg_holds(dsn: str, concurrency: int, seconds: float,
                        schedules: tuple[int, int]) -> float:
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)

    async def step() -> bool:
        async with pool.acquire() as conn:
            try:
                await holds.hold(conn, user_id=random.randint(1, 1_000_000),
                                 schedule_id=random.randint(*schedules), seat_numbers=None,
                                 quantity=1, ttl_seconds=300, max_seats=1000)
            except SeatUnavailable:
                return False
        return True

    try:
        _, rate = await drive(concurrency, seconds, step)
    finally:
        await pool.close()
    return rate


async def asyncpg_payments(dsn: str, concurrency: int, seconds: float, concert: int) -> float:
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)

    async def step() -> bool:
        async with pool.acquire() as conn:
            k = await conn.fetchval("SELECT nextval('bench_pay_seq')")
            rid = uid = PAY_BASE_ID + k
            who = Holder(str(uuid.uuid4()), concert, uid, "AVAILABLE")
            await payments.pay(conn, holder=who, reservation_id=rid, key=f"bench-{k}",
                               fingerprint=payments.request_hash(PaymentRequest(reservation_id=rid)))
        return True

    try:
        _, rate = await drive(concurrency, seconds, step)
    finally:
        await pool.close()
    return rate


def _pgbench_sql(sql: str, names: dict[int, str]) -> str:
    """A queries.py statement with $n replaced by pgbench :variables, on one line."""
    text = re.sub(r"\$(\d+)", lambda m: ":" + names[int(m[1])], sql)
    return " ".join(text.split())


def pgbench_scripts(folder: Path, schedules: tuple[int, int], concert: int) -> dict[str, Path]:
    hold = folder / "hold.sql"
    hold.write_text("\n".join([
        "\\set uid random(1, 1000000)",
        f"\\set sid random({schedules[0]}, {schedules[1]})",
        "\\set qty 1",
        "\\set ttl 300",
        "\\set most 1000",
        # Any seat: no seat numbers (NULL, which a pgbench variable cannot hold).
        _pgbench_sql(queries.HOLD_SEATS, {1: "uid", 2: "sid", 3: "numbers", 4: "qty", 5: "ttl",
                                          6: "most"}).replace(":numbers", "NULL") + ";",
        ""]))
    pay = folder / "pay.sql"
    # What booking.payments.pay sends: one call of pay_reservation, its own transaction.
    pay.write_text("\n".join([
        "SELECT k, 'bench-' || k AS key FROM nextval('bench_pay_seq') k",
        "\\gset",
        f"\\set rid {PAY_BASE_ID} + :k",
        f"\\set uid {PAY_BASE_ID} + :k",
        f"\\set concert {concert}",
        _pgbench_sql(queries.PAY_RESERVATION, {
            1: "uid", 2: "rid", 3: "key", 4: "hash", 5: "token", 6: "concert",
            7: "refused"}) + ";", ""]).replace(":hash", "'\\x00'").replace(
            ":token", f"'{uuid.UUID(int=0)}'").replace(":refused", "false"))
    return {"holds": hold, "payments": pay}


def pgbench(dsn: str, script: Path, concurrency: int, seconds: float) -> float:
    """Transactions per second of pgbench running script (prepared statements, like asyncpg)."""
    return pgbench_run(dsn, script, concurrency, seconds).tps


# -- HTTP ---------------------------------------------------------------------------------
@contextlib.contextmanager
def web_process(dsn: str, redis_url: str) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, DATABASE_URL=dsn, REDIS_URL=redis_url, ADMIT_RATE="1000000",
               MAX_ACTIVE="10000000", MAX_SEATS_PER_USER="1000", LOG_LEVEL="WARNING",
               # The bench joins by user id, from one address, and calls far more than a person.
               ALLOW_UNSIGNED_JOINS="true", RATE_LIMIT_JOINS="0", RATE_LIMIT_CALLS="0")
    proc = subprocess.Popen([sys.executable, "-m", "waitingroom", "web", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def admitted_tokens(base: str, settings: Settings, concert: int,
                          users: range) -> list[str]:
    """Tokens of these users, joined over HTTP and let in by the real admitter."""
    async with aiohttp.ClientSession() as http:
        for _ in range(100):  # the web process may still be starting
            try:
                async with http.get(base + "/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
        sem = asyncio.Semaphore(50)

        async def join(user: int) -> str:
            async with sem, http.post(f"{base}/api/v1/concerts/{concert}/queue",
                                      json={"user_id": user}) as r:
                return str((await r.json())["token"])

        tokens = list(await asyncio.gather(*(join(u) for u in users)))
    redis = redis_client(settings.redis_url, 10)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    queues = Queues(redis, settings)
    try:
        while True:
            await admission.tick(queues, pool)
            states = [(await queues.lookup(t))[1].state for t in tokens]
            if all(s == "AVAILABLE" for s in states):
                return tokens
            await asyncio.sleep(0.01)
    finally:
        await pool.close()
        await redis.aclose()


async def http_holds(base: str, tokens: list[str], concurrency: int, seconds: float,
                     schedules: tuple[int, int]) -> float:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        async def step() -> bool:
            body = {"schedule_id": random.randint(*schedules), "quantity": 1}
            headers = {"Authorization": f"Bearer {random.choice(tokens)}"}
            async with http.post(base + "/api/v1/reservations", json=body, headers=headers) as r:
                await r.read()
                return r.status == 201

        _, rate = await drive(concurrency, seconds, step)
    return rate


async def http_payments(base: str, dsn: str, tokens: list[str], first_user: int, concurrency: int,
                        seconds: float) -> float:
    """Each token pays its user's one hold (and is spent by it)."""
    conn = await asyncpg.connect(dsn)
    try:
        rids = {r["user_id"]: r["id"] for r in await conn.fetch(
            "SELECT id, user_id FROM reservations WHERE user_id >= $1 AND status = 'WAITING'",
            first_user)}
    finally:
        await conn.close()
    work = iter(list(enumerate(tokens)))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        async def step() -> bool | None:
            try:
                i, token = next(work)
            except StopIteration:
                return None
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"http-{i}"}
            body = {"reservation_id": rids[first_user + i]}
            async with http.post(base + "/api/v1/payments", json=body, headers=headers) as r:
                await r.read()
                return r.status == 201

        _, rate = await drive(concurrency, seconds, step)
    return rate


async def hold_for(dsn: str, concert: int, users: range) -> None:
    """A date of its own with one held seat and money for each of these users."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            schedule = await conn.fetchval(
                "INSERT INTO concert_schedules (concert_id, concert_date)"
                " SELECT $1, max(concert_date) + 1 FROM concert_schedules RETURNING id", concert)
            await conn.execute("INSERT INTO concert_seats (schedule_id, seat_number, price)"
                               " SELECT $1, n, $3 FROM generate_series(1, $2) n",
                               schedule, len(users), PRICE)
            for user in users:
                await conn.execute(queries.CHARGE, user, 10_000_000)
        for i, user in enumerate(users):
            await holds.hold(conn, user_id=user, schedule_id=schedule, seat_numbers=[i + 1],
                             quantity=None, ttl_seconds=3600, max_seats=1000)
    finally:
        await conn.close()


# -- the run ------------------------------------------------------------------------------
Row = tuple[str, int, float, float, float]


async def max_clients(dsn: str) -> int:
    """Clients a run may open: the server's limit, less room for everything else."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SHOW max_connections")) - 15
    finally:
        await conn.close()


async def run(dsn: str, redis_url: str, levels: list[int], seconds: float,
              folder: Path) -> list[Row]:
    pay_count = 60_000
    concert, first, last = await prepare(dsn, pay_count)
    schedules = (first, last)
    scripts = pgbench_scripts(folder, schedules, concert)
    levels = [min(c, await max_clients(dsn)) for c in levels]
    direct: dict[tuple[str, int], tuple[float, float]] = {}
    for c in levels:
        a = await asyncpg_holds(dsn, c, seconds, schedules)
        p = await asyncio.to_thread(pgbench, dsn, scripts["holds"], c, seconds)
        direct["holds (any seat)", c] = (a, p)
        print(f"holds c={c}: asyncpg {a:.0f}/s, pgbench {p:.0f}/s", flush=True)
    for c in levels:
        a = await asyncpg_payments(dsn, c, seconds, concert)
        p = await asyncio.to_thread(pgbench, dsn, scripts["payments"], c, seconds)
        direct["payments", c] = (a, p)
        print(f"payments c={c}: asyncpg {a:.0f}/s, pgbench {p:.0f}/s", flush=True)
    # The direct payments used made-up queue tokens: nothing for the admitter's sweeper to expire.
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM payment_tokens_to_end")
    finally:
        await conn.close()
    http: dict[tuple[str, int], float] = {}
    http_users = 5_000_000
    settings = Settings(database_url=dsn, redis_url=redis_url, admit_rate=1_000_000,
                        max_active=10_000_000)
    with web_process(dsn, redis_url) as base:
        hold_tokens = await admitted_tokens(base, settings, concert,
                                            range(http_users, http_users + HTTP_TOKENS))
        for c in levels:
            http["holds (any seat)", c] = await http_holds(base, hold_tokens, c, seconds, schedules)
            print(f"holds c={c}: HTTP {http['holds (any seat)', c]:.0f}/s", flush=True)
        for i, c in enumerate(levels):
            # Each HTTP payment spends its buyer's token: as many buyers as a run can serve.
            start = http_users + 1_000_000 * (i + 1)
            users = range(start, start + int(max(200, min(c, 20) * 150 * seconds)))
            await hold_for(dsn, concert, users)
            tokens = await admitted_tokens(base, settings, concert, users)
            http["payments", c] = await http_payments(base, dsn, tokens, start, c, seconds)
            print(f"payments c={c}: HTTP {http['payments', c]:.0f}/s", flush=True)
    return [(name, c, a, http[name, c], p) for (name, c), (a, p) in direct.items()]


def table(rows: list[tuple[str, int, float, float, float]]) -> str:
    lines = ["| workload | clients | asyncpg (tx/s) | HTTP (req/s) | pgbench (tps) "
             "| asyncpg / pgbench | HTTP / pgbench |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, c, a, h, p in rows:
        lines.append(f"| {name} | {c} | {a:,.0f} | {h:,.0f} | {p:,.0f} | {a / p:.2f} "
                     f"| {h / p:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.booking_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--levels", default="1,10,100")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    with database() as dsn, throwaway_redis() as redis_url, \
            tempfile.TemporaryDirectory(prefix="wr-bench-") as tmp:
        rows = uvloop.run(run(dsn, redis_url, levels, args.seconds, Path(tmp)))
    print()
    print(f"Booking throughput, {os.cpu_count()} CPUs, one PostgreSQL, {args.seconds:g} s a run; "
          "HTTP through one `waitingroom web` process.\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
