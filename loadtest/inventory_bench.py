"""What inventory-aware admission costs the admitter: ticks of a stadium-sized concert in fixed
and in inventory mode, in turns on the same data, beside the plain round trips they make.

    python -m loadtest.inventory_bench [--seats 50000] [--ended 20000] [--ticks 30]

A throwaway redis-server always (never the machine's own); a scratch database on DATABASE_URL's
server when it answers, else a throwaway PostgreSQL, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from db.migrate import migrate_url
from waitingroom import admission, queries
from waitingroom import inventory as inventory_mod
from waitingroom.app import redis_client
from waitingroom.keys import ConcertKeys
from waitingroom.queue import Queues
from waitingroom.servers import scratch_database, throwaway_redis
from waitingroom.settings import Settings


async def _setup(pool: asyncpg.Pool, seats: int, ended: int) -> int:
    """A concert with one date of `seats` seats, a tenth of them sold, and `ended` admitted
    tokens that ended (a third of them paid)."""
    async with pool.acquire() as conn, conn.transaction():
        cid: int = await conn.fetchval("INSERT INTO concerts (name, host) VALUES ('Bench', 'Hall')"
                                       " RETURNING id")
        sid = await conn.fetchval("INSERT INTO concert_schedules (concert_id, concert_date)"
                                  " VALUES ($1, '2026-12-24') RETURNING id", cid)
        await conn.execute("INSERT INTO concert_seats (schedule_id, seat_number, price)"
                           " SELECT $1, n, 10000 FROM generate_series(1, $2) n", sid, seats)
        await conn.execute("INSERT INTO users (id) SELECT generate_series(1, $1)", ended)
        await conn.execute(
            "INSERT INTO waiting_token (token, user_id, concert_id, ticket, state, reason,"
            " expires_at, expired_at) SELECT gen_random_uuid(), n, $1, n, 'EXPIRED',"
            " CASE n % 3 WHEN 0 THEN 'completed' WHEN 1 THEN 'timeout' ELSE 'left' END,"
            " now(), now() FROM generate_series(1, $2) n", cid, ended)
        sold = seats // 10
        for first in range(1, sold + 1, 2):  # orders of two seats
            rid = await conn.fetchval(
                "INSERT INTO reservations (user_id, schedule_id, status, seat_count, total_price,"
                " hold_expires_at) VALUES ($1, $2, 'RESERVED', 2, 20000, now()) RETURNING id",
                (first % ended) + 1, sid)
            await conn.execute("UPDATE concert_seats SET status = 'RESERVED', reservation_id = $1"
                               " WHERE schedule_id = $2 AND seat_number IN ($3, $3 + 1)",
                               rid, sid, first)
        await conn.execute("ANALYZE")
    return cid


async def _time(step: Callable[[], Awaitable[object]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await step()
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def bench(redis_url: str, dsn: str, seats: int, ended: int, ticks: int) -> None:
    await migrate_url(dsn)
    settings = Settings(database_url=dsn, redis_url=redis_url, allow_unsigned_joins=True)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    redis = redis_client(redis_url, 10)
    queues = Queues(redis, settings)
    try:
        cid = await _setup(pool, seats, ended)
        for user in range(1, 2001):
            await queues.join(cid, 10_000_000 + user)
        await queues.configure(cid, admit_rate=0.001, max_active=100_000)
        state = ConcertKeys(cid).state

        measures = inventory_mod.Measures()

        async def tick() -> None:
            # Nobody leaves the queue between turns: the same work each time.
            await redis.hset(state, "last_ms", await queues.clock_ms())
            await admission.tick(queues, pool, measures=measures)

        fixed: list[float] = []
        inventory: list[float] = []
        fresh: list[float] = []
        sales: list[float] = []
        select1: list[float] = []
        ping: list[float] = []
        for _ in range(3):  # in turns, so that drift falls on both sides
            await queues.configure(cid, admission_mode="fixed")
            fixed += await _time(tick, ticks)
            await queues.configure(cid, admission_mode="inventory")
            inventory += await _time(tick, ticks)
            fresh += await _time(lambda: queries.concert_seats_left(pool, [cid]), ticks)
            sales += await _time(lambda: queries.concert_sales(pool, [cid]), ticks)
            select1 += await _time(lambda: pool.fetchval("SELECT 1"), ticks)
            ping += await _time(redis.ping, ticks)
        f = (await queues.figures([cid]))[cid]
        med = statistics.median
        print(f"seats {seats:,}, ended tokens {ended:,}, {ticks * 3} ticks per mode "
              f"(medians, ms)")
        print(f"  admitter tick, fixed mode      {med(fixed):8.2f}")
        print(f"  admitter tick, inventory mode  {med(inventory):8.2f}   "
              f"{med(inventory) / med(fixed):.2f}x fixed")
        print(f"  seats left query (every tick)  {med(fresh):8.2f}   "
              f"{med(fresh) / med(select1):.1f}x a plain SELECT 1 ({med(select1):.2f})")
        print(f"  sales query (every {inventory_mod.SALES_REFRESH:g} s)      {med(sales):8.2f}   "
              f"{med(sales) / med(select1):.1f}x a plain SELECT 1")
        print(f"  redis PING                     {med(ping):8.2f}")
        print(f"  chosen: {f.chosen_rate} /s, {f.rate_reason}: {f.rate_detail}")
    finally:
        await redis.aclose()
        await pool.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seats", type=int, default=50_000)
    p.add_argument("--ended", type=int, default=20_000)
    p.add_argument("--ticks", type=int, default=30)
    a = p.parse_args()
    with throwaway_redis(appendonly=False) as redis_url, \
            scratch_database(f"wr_bench_{uuid.uuid4().hex[:4]}") as dsn:
        asyncio.run(bench(redis_url, dsn, a.seats, a.ended, a.ticks))


if __name__ == "__main__":
    main()
