"""SQL of booking. The caller owns the connection and the transaction.

A seat is on sale when it is AVAILABLE or its hold ran out (PENDING past hold_expires_at): an
expired hold frees its seats at once, whether or not a sweeper has run (lazy expiry).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import asyncpg

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

# Advisory lock namespaces (two-key form, apart from the migrator's one-key lock). Holds take
# theirs inside hold_seats (migration 0007).
LOCK_USER_HOLDS = 7301
LOCK_IDEMPOTENCY_KEY = 7302

# -- catalogue ----------------------------------------------------------------------------
SCHEDULE_CONCERT = "SELECT concert_id FROM concert_schedules WHERE id = $1"

# From the counters (schedule_stock), never by counting seats. A hold that ran out counts once
# the sweeper has freed it (within a tick).
LIST_SCHEDULES = """
SELECT sc.id, sc.concert_date, sum(st.available)::bigint AS available_seats
FROM concert_schedules sc
JOIN schedule_stock st ON st.schedule_id = sc.id
WHERE sc.concert_id = $1
GROUP BY sc.id
HAVING sum(st.available) > 0
ORDER BY sc.concert_date, sc.id
"""

SEAT_MAP = """
SELECT seat_number, price,
       CASE WHEN status = 'PENDING' AND hold_expires_at <= now() THEN 'AVAILABLE' ELSE status END
         AS status
FROM concert_seats
WHERE schedule_id = $1 AND seat_number BETWEEN $2 AND $3
ORDER BY seat_number
"""

# What a seat map's answer depends on: the date's version (raised by every change of a seat)
# and the holds that ran out since the sweeper last ran (lazy expiry changes the map without a
# row changing). NULL version: no such date.
SEAT_MAP_VERSION = """
SELECT (SELECT sum(version) FROM schedule_stock WHERE schedule_id = $1) AS version,
       (SELECT count(*) FROM concert_seats
        WHERE schedule_id = $1 AND status = 'PENDING' AND hold_expires_at <= now()) AS ran_out
"""

# Every date of a concert with what is on sale and the price range: what a waiter may preview.
PREVIEW_SCHEDULES = """
SELECT sc.id, sc.concert_date,
       count(*) FILTER (WHERE s.status = 'AVAILABLE'
                           OR (s.status = 'PENDING' AND s.hold_expires_at <= now())) AS available_seats,
       min(s.price) AS price_min, max(s.price) AS price_max
FROM concert_schedules sc
JOIN concert_seats s ON s.schedule_id = sc.id
WHERE sc.concert_id = $1
GROUP BY sc.id
ORDER BY sc.concert_date, sc.id
"""

# -- holds ------------------------------------------------------------------------------
# A whole hold in one call (migrations 0007, 0012): the user's lock, the pick (these seat
# numbers, or the lowest run of $4 adjacent seats on sale, else the lowest $4), taking over
# seats of holds that ran out, and the reservation. Refusals are raised: see the migration.
HOLD_SEATS = """
SELECT hold_id, expires_at, total, held_numbers, held_prices
FROM hold_seats($1, $2, $3::int[], $4, $5, $6)
"""

# A reservation keeps its seat numbers and prices (in seat order) after it ends.
GET_RESERVATION = """
SELECT r.id, r.schedule_id, sc.concert_id, r.status, r.total_price, r.hold_expires_at,
       r.status = 'WAITING' AND r.hold_expires_at <= now() AS ran_out,
       r.seat_numbers, r.seat_prices AS prices
FROM reservations r
JOIN concert_schedules sc ON sc.id = r.schedule_id
WHERE r.id = $1 AND r.user_id = $2
"""

# The caller's own reservation, locked: payments and releases of it run one at a time. Expiry is
# judged by the clock at the moment the lock is held, not when the transaction began.
LOCK_RESERVATION = """
SELECT r.id, r.schedule_id, sc.concert_id, r.status, r.seat_count, r.total_price,
       r.hold_expires_at <= clock_timestamp() AS ran_out
FROM reservations r
JOIN concert_schedules sc ON sc.id = r.schedule_id
WHERE r.id = $1 AND r.user_id = $2
FOR UPDATE OF r
"""

# End a WAITING hold ($2: CANCELED or EXPIRED) and put its seats back on sale.
END_HOLD = """
WITH ended AS (
    UPDATE reservations SET status = $2, updated_at = now()
    WHERE id = $1 AND status = 'WAITING'
    RETURNING id
)
SELECT count(*) FROM put_back_on_sale(array(
    SELECT id FROM concert_seats
    WHERE reservation_id IN (SELECT id FROM ended) AND status = 'PENDING'))
"""

# -- payments -----------------------------------------------------------------------------
# Held to commit: a second request with the same key meanwhile is told it is in progress.
TRY_LOCK_KEY = "SELECT pg_try_advisory_xact_lock($3, hashtext($1::bigint::text || ':' || $2))"

# The payment made with this key, as it was answered (also once refunded: a replay answers the
# first result again).
FIND_PAYMENT = """
SELECT p.id, p.reservation_id, p.amount, p.request_hash, l.balance_after
FROM payments p
JOIN balance_ledger l ON l.payment_id = p.id AND l.kind = 'PAYMENT'
WHERE p.user_id = $1 AND p.idempotency_key = $2
"""

# The whole payment in one call (db/migrations/0008_one_call_payments.sql).
PAY_RESERVATION = """
SELECT payment_id, reservation_id, amount, balance_after, replayed, token_logged
FROM pay_reservation($1, $2, $3, $4, $5::uuid, $6, $7)
"""

# pay_reservation's statements one by one (db/migrations/0015_payment_writes_once.sql), for
# loadtest.payment_steps and the stadium bench's EXPLAIN; the API calls the function.
# The holder's WAITING, not run-out reservation of concert $3 sold, and locked by that.
SELL_RESERVATION = """
UPDATE reservations r SET status = 'RESERVED', updated_at = now()
FROM concert_schedules sc
WHERE r.id = $1 AND r.user_id = $2 AND sc.id = r.schedule_id AND sc.concert_id = $3
  AND r.status = 'WAITING' AND r.hold_expires_at > clock_timestamp()
RETURNING r.seat_count, r.total_price
"""

# Its seats sold (their number must be the reservation's seat count).
SELL_HELD_SEATS = """
UPDATE concert_seats SET status = 'RESERVED', hold_expires_at = NULL
WHERE reservation_id = $1 AND status = 'PENDING'
"""

# Takes the money only if it is there: no row back means not enough, and nothing changed.
DEBIT = """
UPDATE balances SET balance = balance - $2, updated_at = now()
WHERE user_id = $1 AND balance >= $2
RETURNING balance
"""

# The payment, its ledger line and its token to end.
RECORD_PAYMENT = """
WITH payment AS (
    INSERT INTO payments (reservation_id, user_id, amount, state, idempotency_key, request_hash,
                          token)
    VALUES ($1, $2, $3, 'COMPLETED', $4, $5, $6)
    RETURNING id
), ledger AS (
    INSERT INTO balance_ledger (user_id, kind, amount, balance_after, payment_id)
    SELECT $2, 'PAYMENT', -$3::bigint, $7, id FROM payment
), to_end AS (
    INSERT INTO payment_tokens_to_end (payment_id, token) SELECT id, $6 FROM payment
)
SELECT id FROM payment
"""

# Paid tokens that the queue may not have ended yet (db/migrations/0011_cheaper_payments.sql).
TOKENS_TO_END = """
SELECT payment_id, token::text AS token FROM payment_tokens_to_end
ORDER BY payment_id
LIMIT $1
"""

FORGET_ENDED_TOKENS = "DELETE FROM payment_tokens_to_end WHERE payment_id = ANY($1::bigint[])"

# -- refunds ------------------------------------------------------------------------------
FIND_REFUND = """
SELECT r.payment_id, p.reservation_id, p.amount, r.balance_after
FROM refunds r JOIN payments p ON p.id = r.payment_id
WHERE r.user_id = $1 AND r.idempotency_key = $2
"""

# The caller's own payment with its reservation, both locked (reservation first, as everywhere),
# and whether the date has passed.
LOCK_PAYMENT = """
SELECT p.id, p.reservation_id, p.amount, p.state, sc.concert_date < (now() AT TIME ZONE 'UTC')::date
       AS closed
FROM payments p
JOIN reservations r ON r.id = p.reservation_id
JOIN concert_schedules sc ON sc.id = r.schedule_id
WHERE p.id = $1 AND p.user_id = $2
FOR UPDATE OF r, p
"""

# One statement: payment and reservation CANCELED, seats on sale, the money back with its ledger
# line, and the refund recorded under its key. Returns the balance after.
REFUND = """
WITH payment AS (
    UPDATE payments SET state = 'CANCELED', updated_at = now()
    WHERE id = $1 AND user_id = $2 AND state = 'COMPLETED'
    RETURNING id, reservation_id, amount
), reservation AS (
    UPDATE reservations SET status = 'CANCELED', updated_at = now()
    WHERE id = (SELECT reservation_id FROM payment) AND status = 'RESERVED'
    RETURNING id
), balance AS (
    UPDATE balances SET balance = balance + (SELECT amount FROM payment), updated_at = now()
    WHERE user_id = $2 AND EXISTS (SELECT 1 FROM payment)
    RETURNING balance
), ledger AS (
    INSERT INTO balance_ledger (user_id, kind, amount, balance_after, payment_id)
    SELECT $2, 'REFUND', payment.amount, balance.balance, payment.id FROM payment, balance
), refund AS (
    INSERT INTO refunds (payment_id, user_id, idempotency_key, balance_after)
    SELECT payment.id, $2, $3, balance.balance FROM payment, balance
)
SELECT (SELECT balance FROM balance) AS balance,
       (SELECT count(*) FROM put_back_on_sale(array(
            SELECT s.id FROM concert_seats s JOIN reservation r ON s.reservation_id = r.id
            WHERE s.status = 'RESERVED'), 'RESERVED')) AS seats
"""

# -- my bookings --------------------------------------------------------------------------
MY_RESERVATIONS = """
SELECT r.id, r.schedule_id, sc.concert_id, r.status, r.total_price, r.hold_expires_at,
       r.status = 'WAITING' AND r.hold_expires_at <= now() AS ran_out,
       r.seat_numbers, r.seat_prices AS prices,
       (SELECT p.id FROM payments p WHERE p.reservation_id = r.id
        ORDER BY p.state = 'COMPLETED' DESC, p.id DESC LIMIT 1) AS payment_id
FROM reservations r
JOIN concert_schedules sc ON sc.id = r.schedule_id
WHERE r.user_id = $1
ORDER BY r.id DESC
LIMIT $2
"""

# -- balance ------------------------------------------------------------------------------
GET_BALANCE = "SELECT balance FROM balances WHERE user_id = $1"

CHARGE = """
WITH new_user AS (
    INSERT INTO users (id) VALUES ($1) ON CONFLICT DO NOTHING
), balance AS (
    INSERT INTO balances (user_id, balance) VALUES ($1, $2)
    ON CONFLICT (user_id) DO UPDATE SET balance = balances.balance + EXCLUDED.balance,
                                        updated_at = now()
    RETURNING balance
)
INSERT INTO balance_ledger (user_id, kind, amount, balance_after)
SELECT $1, 'CHARGE', $2, balance FROM balance
RETURNING balance_after
"""

# -- stock --------------------------------------------------------------------------------
# Seats on sale per concert, from the counters (dates with no seats at all are not listed).
ON_SALE = """
SELECT sc.concert_id, sum(st.available)::bigint AS on_sale
FROM schedule_stock st JOIN concert_schedules sc ON sc.id = st.schedule_id
GROUP BY sc.concert_id
"""

# The counters against a full count, in one snapshot; a date whose counter drifted (the triggers
# were bypassed: a restore, a hand edit) is set right. Returns the dates repaired.
RECONCILE_STOCK = """
WITH actual AS (
    SELECT schedule_id, count(*) FILTER (WHERE status = 'AVAILABLE') AS n
    FROM concert_seats GROUP BY schedule_id
), counted AS (
    SELECT schedule_id, sum(available) AS n FROM schedule_stock GROUP BY schedule_id
), drift AS (
    SELECT coalesce(a.schedule_id, c.schedule_id) AS schedule_id,
           coalesce(a.n, 0) - coalesce(c.n, 0) AS d
    FROM actual a FULL JOIN counted c ON c.schedule_id = a.schedule_id
    WHERE coalesce(a.n, 0) <> coalesce(c.n, 0)
)
INSERT INTO schedule_stock AS st (schedule_id, stripe, available, version)
SELECT schedule_id, 0, d, 1 FROM drift
ON CONFLICT (schedule_id, stripe) DO UPDATE
SET available = st.available + EXCLUDED.available, version = st.version + 1
RETURNING schedule_id
"""

# -- sweeper ------------------------------------------------------------------------------
# Holds that ran out: EXPIRED, seats back on sale. Reservations being paid or released, or taken
# by another sweeper, are skipped; a seat being looked at by a hold is waited for (briefly).
EXPIRE_HOLDS = """
WITH expired AS (
    UPDATE reservations SET status = 'EXPIRED', updated_at = now()
    WHERE id IN (SELECT id FROM reservations
                 WHERE status = 'WAITING' AND hold_expires_at <= now()
                 ORDER BY hold_expires_at
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED)
      AND status = 'WAITING'
    RETURNING id
), released AS (
    SELECT put_back_on_sale(array(
        SELECT s.id FROM concert_seats s JOIN expired e ON s.reservation_id = e.id
        WHERE s.status = 'PENDING')) AS id
)
SELECT (SELECT count(*) FROM expired) AS reservations, (SELECT count(*) FROM released) AS seats
"""

# Seats still PENDING after their reservation ended some other way (a hold took one of its
# seats and could not lock the rest at that moment).
RELEASE_ORPHANS = """
SELECT count(*) FROM put_back_on_sale(array(
    SELECT s.id FROM concert_seats s
    WHERE s.status = 'PENDING' AND s.hold_expires_at <= now()
      AND NOT EXISTS (SELECT 1 FROM reservations r
                      WHERE r.id = s.reservation_id AND r.status = 'WAITING')
    ORDER BY s.hold_expires_at
    LIMIT $1
    FOR NO KEY UPDATE OF s SKIP LOCKED))
"""


# -- functions ----------------------------------------------------------------------------
async def schedule_concert(conn: Conn, schedule_id: int) -> int | None:
    value = await conn.fetchval(SCHEDULE_CONCERT, schedule_id)
    return int(value) if value is not None else None


async def list_schedules(conn: Conn, concert_id: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(LIST_SCHEDULES, concert_id)
    return rows


async def preview_schedules(conn: Conn, concert_id: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(PREVIEW_SCHEDULES, concert_id)
    return rows


async def seat_map(conn: Conn, schedule_id: int, first: int = 1,
                   last: int = 2**31 - 1) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(SEAT_MAP, schedule_id, first, last)
    return rows


async def seat_map_version(conn: Conn, schedule_id: int) -> str:
    """A token that changes whenever the date's seat map does."""
    row = await conn.fetchrow(SEAT_MAP_VERSION, schedule_id)
    assert row is not None
    return f"{row['version'] or 0}.{row['ran_out']}"


async def hold_seats(conn: asyncpg.Connection, user_id: int, schedule_id: int,
                     numbers: Sequence[int] | None, quantity: int | None, ttl_seconds: int,
                     max_seats: int) -> asyncpg.Record:
    row = await conn.fetchrow(HOLD_SEATS, user_id, schedule_id,
                              list(numbers) if numbers is not None else None, quantity,
                              float(ttl_seconds), max_seats)
    assert row is not None
    return row


async def get_reservation(conn: Conn, reservation_id: int, user_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_RESERVATION, reservation_id, user_id)


async def lock_reservation(conn: asyncpg.Connection, reservation_id: int,
                           user_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(LOCK_RESERVATION, reservation_id, user_id)


async def end_hold(conn: asyncpg.Connection, reservation_id: int, status: str) -> None:
    await conn.execute(END_HOLD, reservation_id, status)


async def try_lock_key(conn: asyncpg.Connection, user_id: int, key: str) -> bool:
    return bool(await conn.fetchval(TRY_LOCK_KEY, user_id, key, LOCK_IDEMPOTENCY_KEY))


async def find_payment(conn: Conn, user_id: int, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(FIND_PAYMENT, user_id, key)


async def pay_reservation(conn: asyncpg.Connection, *, user_id: int, reservation_id: int,
                          key: str, request_hash: bytes, token: str, concert_id: int,
                          token_refused: bool) -> asyncpg.Record:
    row = await conn.fetchrow(PAY_RESERVATION, user_id, reservation_id, key, request_hash, token,
                              concert_id, token_refused)
    assert row is not None
    return row


async def debit(conn: asyncpg.Connection, user_id: int, amount: int) -> int | None:
    value = await conn.fetchval(DEBIT, user_id, amount)
    return int(value) if value is not None else None


async def tokens_to_end(conn: Conn, limit: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(TOKENS_TO_END, limit)
    return rows


async def forget_ended_tokens(conn: Conn, payment_ids: Sequence[int]) -> None:
    await conn.execute(FORGET_ENDED_TOKENS, list(payment_ids))


async def find_refund(conn: Conn, user_id: int, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(FIND_REFUND, user_id, key)


async def lock_payment(conn: asyncpg.Connection, payment_id: int,
                       user_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(LOCK_PAYMENT, payment_id, user_id)


async def refund(conn: asyncpg.Connection, payment_id: int, user_id: int, key: str) -> int:
    """Refund a locked COMPLETED payment; the balance after."""
    row = await conn.fetchrow(REFUND, payment_id, user_id, key)
    assert row is not None and row["balance"] is not None
    return int(row["balance"])


async def my_reservations(conn: Conn, user_id: int, limit: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(MY_RESERVATIONS, user_id, limit)
    return rows


async def get_balance(conn: Conn, user_id: int) -> int:
    value = await conn.fetchval(GET_BALANCE, user_id)
    return int(value) if value is not None else 0


async def charge(conn: Conn, user_id: int, amount: int) -> int:
    return int(await conn.fetchval(CHARGE, user_id, amount))


async def expire_holds(conn: Conn, limit: int) -> tuple[int, int]:
    """(reservations expired, seats released) of at most limit run-out holds."""
    row = await conn.fetchrow(EXPIRE_HOLDS, limit)
    assert row is not None
    return int(row["reservations"]), int(row["seats"])


async def on_sale(conn: Conn) -> dict[int, int]:
    return {r["concert_id"]: int(r["on_sale"]) for r in await conn.fetch(ON_SALE)}


async def reconcile_stock(conn: Conn) -> list[int]:
    return [r["schedule_id"] for r in await conn.fetch(RECONCILE_STOCK)]


async def release_orphans(conn: Conn, limit: int) -> int:
    return int(await conn.fetchval(RELEASE_ORPHANS, limit))

