"""The stadium bench's data: 50,000-seat dates of ours and plain tables of the ceilings' own, sold
the same way (lowest seat numbers first, as best-available sells)."""

from __future__ import annotations

import dataclasses

import asyncpg

from db.migrate import migrate_url

from . import plain

SEATS = 50_000
FILL = 0.9  # the sold share of the full dates
HOLD_USERS = 5_000_000  # users of the hold tokens; the direct holds' users start at DIRECT_USERS
DIRECT_USERS = 6_000_000
DIRECT_HOLDERS = 30_000  # users of the direct holds, made beforehand as the admitter makes them
DIRECT_HOLDER_IDS = range(DIRECT_USERS + 100, DIRECT_USERS + 100 + DIRECT_HOLDERS)
MAP_USERS = 7_000_000  # the seat-map refreshers
PRICE = 10_000
HOUSE_USER = 999_999_999  # owns the seats sold before the run
PAY_BASE = 10_000_000  # user, reservation and seat ids of our payment workload start here
# The plain tables' schedules: empty and 90 % sold for the fill figures, holds/s, payments.
PLAIN_EMPTY, PLAIN_SOLD, PLAIN_THROUGHPUT, PLAIN_PAY = 1, 4, 2, 3
PLAIN_PAY_BASE = 20_000_000  # plain seat (and user) ids of the payment workload start here
PLAIN_PAY_BARE = 45_000  # plain held seats for the bare handler's payments
PLAIN_PAY_EXTRA = 60_000  # and after them for pgbench, which pays far faster

ADD_SCHEDULE = """
INSERT INTO concert_schedules (concert_id, concert_date)
SELECT $1, coalesce(max(concert_date) + 1, date '2030-01-01') FROM concert_schedules
RETURNING id
"""

ADD_SEATS = """
INSERT INTO concert_seats (schedule_id, seat_number, price)
SELECT $1, n, $3 FROM generate_series(1, $2::int) n
"""

# Seats up to $2 sold (RESERVED) to the house, in one reservation (the date's seats are all
# AVAILABLE before, and all of one price).
SELL_LOWEST = """
WITH house AS (
    INSERT INTO reservations (user_id, schedule_id, status, seat_count, total_price,
                              hold_expires_at, seat_numbers, seat_prices)
    SELECT $3, $1, 'RESERVED', count(*), sum(price), now(), array_agg(seat_number ORDER BY seat_number),
           array_agg(price ORDER BY seat_number)
    FROM concert_seats WHERE schedule_id = $1 AND seat_number <= $2 AND status = 'AVAILABLE'
    RETURNING id
)
UPDATE concert_seats SET status = 'RESERVED', reservation_id = (SELECT id FROM house)
WHERE schedule_id = $1 AND seat_number <= $2 AND status = 'AVAILABLE'
"""

PLAIN_DATES = """
INSERT INTO plain_dates (id, concert_id, concert_date, available)
SELECT sc.id, sc.concert_id, sc.concert_date, sum(st.available)
FROM concert_schedules sc JOIN schedule_stock st ON st.schedule_id = sc.id
GROUP BY sc.id
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Venue:
    concert: int
    fill: tuple[int, int]  # holds at empty and at 90 % sold
    throughput: tuple[int, int]  # empty dates for the gateway's and the direct holds/s
    pay: int  # one-seat holds waiting for payment
    seat_map: int  # 90 % sold, for the seat-map figures
    payers: int


async def prepare(dsn: str, payers: int, sold: int) -> Venue:
    """Our schema and data, and the plain tables; `sold` seats sold on the seat-map date and on
    one of each pair of fill dates."""
    await migrate_url(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            concert = await _start(conn)
            dates = []
            for _ in range(5):
                dates.append(await conn.fetchval(ADD_SCHEDULE, concert))
                await conn.execute(ADD_SEATS, dates[-1], SEATS, PRICE)
            pay = await conn.fetchval(ADD_SCHEDULE, concert)
            await conn.execute("INSERT INTO users (id) VALUES ($1)", HOUSE_USER)
            await conn.execute("INSERT INTO users (id) SELECT generate_series($1::bigint, $2)",
                               DIRECT_HOLDER_IDS[0], DIRECT_HOLDER_IDS[-1])
            await add_payers(conn, payers, pay)
            for schedule in (dates[3], dates[4]):
                await conn.execute(SELL_LOWEST, schedule, sold, HOUSE_USER)
            for schedule in (PLAIN_EMPTY, PLAIN_SOLD, PLAIN_THROUGHPUT):
                await conn.execute(plain.ADD_SEATS, schedule, schedule * 1_000_000, SEATS, PRICE)
            await conn.execute(plain.FILL, PLAIN_SOLD, sold)
            await _plain_payers(conn)
            await conn.execute(PLAIN_DATES)
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()
    return Venue(concert, (dates[0], dates[4]), (dates[1], dates[2]), pay, dates[3], payers)


async def prepare_payers(dsn: str, payers: int) -> None:
    """Our schema with the payment workload alone (one date of one-seat holds), and the plain
    tables with the plain one's."""
    await migrate_url(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            concert = await _start(conn)
            await add_payers(conn, payers, await conn.fetchval(ADD_SCHEDULE, concert))
            await _plain_payers(conn)
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()


async def _start(conn: asyncpg.Connection) -> int:
    """The plain tables, and the stadium concert of our schema: its id."""
    await conn.execute(plain.SCHEMA)
    concert: int = await conn.fetchval(
        "INSERT INTO concerts (name, host) VALUES ('Stadium', 'Bench Stadium') RETURNING id")
    return concert


async def _plain_payers(conn: asyncpg.Connection) -> None:
    """The plain payment workload: its seats, held for payment."""
    await conn.execute(plain.ADD_SEATS, PLAIN_PAY, PLAIN_PAY_BASE,
                       PLAIN_PAY_BARE + PLAIN_PAY_EXTRA, PRICE)
    await conn.execute(plain.HOLD_FOR_PAYMENT, PLAIN_PAY)


async def add_payers(conn: asyncpg.Connection, count: int, schedule: int) -> None:
    """Users PAY_BASE + 1 .. + count, each with the money and a one-seat WAITING hold on the
    schedule (reservation id = user id = seat id)."""
    users = "FROM generate_series($1::bigint + 1, $1::bigint + $2) u"
    await conn.execute(f"INSERT INTO users (id) SELECT u {users}", PAY_BASE, count)
    await conn.execute(f"INSERT INTO balances (user_id, balance) SELECT u, 1000000000 {users}",
                       PAY_BASE, count)
    await conn.execute("INSERT INTO balance_ledger (user_id, kind, amount, balance_after)"
                       f" SELECT u, 'CHARGE', 1000000000, 1000000000 {users}", PAY_BASE, count)
    await conn.execute("INSERT INTO reservations (id, user_id, schedule_id, status, seat_count,"
                       " total_price, hold_expires_at, seat_numbers, seat_prices) SELECT u, u, $3,"
                       " 'WAITING', 1, $4, now() + interval '1 day', ARRAY[(u - $1)::int],"
                       f" ARRAY[$4::bigint] {users}", PAY_BASE, count, schedule, PRICE)
    await conn.execute("INSERT INTO concert_seats (id, schedule_id, seat_number, price, status,"
                       " reservation_id, hold_expires_at) SELECT u, $3, u - $1, $4, 'PENDING', u,"
                       f" now() + interval '1 day' {users}", PAY_BASE, count, schedule, PRICE)


async def vacuum(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()


async def reset_plain(dsn: str, schedule: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(plain.RESET, schedule)
        await conn.execute("VACUUM (ANALYZE) plain_seats")
    finally:
        await conn.close()
