"""SQL of the waiting room. The caller owns the connection and the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

LIST_CONCERTS = "SELECT id, name, host FROM concerts ORDER BY id"
GET_CONCERT = "SELECT id, name, host FROM concerts WHERE id = $1"

ADD_USERS = "INSERT INTO users (id) SELECT unnest($1::bigint[]) ON CONFLICT DO NOTHING"

RECORD_ADMITTED = """
INSERT INTO waiting_token (token, user_id, concert_id, ticket, state, expires_at)
SELECT t, u, $4, k, 'AVAILABLE', $5
FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS a (t, u, k)
ON CONFLICT (token) DO NOTHING
"""

RECORD_EXPIRED = """
UPDATE waiting_token SET state = 'EXPIRED', reason = $2, expired_at = now()
WHERE token = ANY($1::uuid[]) AND state = 'AVAILABLE'
"""


# Only the fields given change; the others keep what they were (NULL: the default).
SAVE_QUEUE_SETTINGS = """
INSERT INTO queue_settings AS q (concert_id, admit_rate, max_active, paused, admission_mode)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (concert_id) DO UPDATE
SET admit_rate = coalesce(EXCLUDED.admit_rate, q.admit_rate),
    max_active = coalesce(EXCLUDED.max_active, q.max_active),
    paused = coalesce(EXCLUDED.paused, q.paused),
    admission_mode = coalesce(EXCLUDED.admission_mode, q.admission_mode),
    updated_at = now()
"""

QUEUE_SETTINGS = ("SELECT concert_id, admit_rate, max_active, paused, admission_mode"
                  " FROM queue_settings")

# What inventory-aware admission and the console measure of each concert. Fresh every tick and
# cheap: seats not sold (the seats-on-sale counters plus the seats held, live or run out, found
# through the partial index on held seats) and seats in live holds.
CONCERT_SEATS_LEFT = """
WITH stock AS (
    SELECT sc.concert_id, sum(st.available)::bigint AS available
    FROM concert_schedules sc JOIN schedule_stock st ON st.schedule_id = sc.id
    WHERE sc.concert_id = ANY($1::bigint[])
    GROUP BY sc.concert_id
), held AS (
    SELECT sc.concert_id, count(*) AS pending,
           count(*) FILTER (WHERE s.hold_expires_at > now()) AS holds
    FROM concert_schedules sc JOIN concert_seats s ON s.schedule_id = sc.id
    WHERE sc.concert_id = ANY($1::bigint[]) AND s.status = 'PENDING'
    GROUP BY sc.concert_id
)
SELECT c.id AS concert_id,
       coalesce(stock.available, 0) + coalesce(held.pending, 0) AS seats_left,
       coalesce(held.holds, 0) AS holds
FROM unnest($1::bigint[]) AS c (id)
LEFT JOIN stock ON stock.concert_id = c.id
LEFT JOIN held ON held.concert_id = c.id
"""

# The slow-moving part, read every few seconds: seats sold and paid orders, and the admitted
# tokens that ended, by reason (completed: paid).
CONCERT_SALES = """
WITH orders AS (
    SELECT sc.concert_id, coalesce(sum(r.seat_count), 0)::bigint AS sold, count(*) AS orders
    FROM concert_schedules sc JOIN reservations r ON r.schedule_id = sc.id
    WHERE sc.concert_id = ANY($1::bigint[]) AND r.status = 'RESERVED'
    GROUP BY sc.concert_id
), tokens AS (
    SELECT concert_id,
           count(*) FILTER (WHERE reason = 'completed') AS completed,
           count(*) FILTER (WHERE reason = 'timeout') AS timed_out,
           count(*) FILTER (WHERE reason = 'left') AS left_early
    FROM waiting_token
    WHERE concert_id = ANY($1::bigint[]) AND reason IS NOT NULL
    GROUP BY concert_id
)
SELECT c.id AS concert_id, coalesce(o.sold, 0) AS sold, coalesce(o.orders, 0) AS orders,
       coalesce(t.completed, 0) AS completed, coalesce(t.timed_out, 0) AS timed_out,
       coalesce(t.left_early, 0) AS left_early
FROM unnest($1::bigint[]) AS c (id)
LEFT JOIN orders o ON o.concert_id = c.id
LEFT JOIN tokens t ON t.concert_id = c.id
"""


async def save_queue_settings(conn: asyncpg.Pool | asyncpg.Connection, concert_id: int,
                              admit_rate: float | None, max_active: int | None,
                              paused: bool | None, admission_mode: str | None = None) -> None:
    await conn.execute(SAVE_QUEUE_SETTINGS, concert_id, admit_rate, max_active, paused,
                       admission_mode)


async def concert_seats_left(conn: asyncpg.Pool | asyncpg.Connection,
                             concert_ids: Sequence[int]) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(CONCERT_SEATS_LEFT, list(concert_ids))
    return rows


async def concert_sales(conn: asyncpg.Pool | asyncpg.Connection,
                        concert_ids: Sequence[int]) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(CONCERT_SALES, list(concert_ids))
    return rows


async def queue_settings(conn: asyncpg.Pool | asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(QUEUE_SETTINGS)
    return rows


async def list_concerts(conn: asyncpg.Pool | asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(LIST_CONCERTS)
    return rows


async def get_concert(conn: asyncpg.Pool | asyncpg.Connection, concert_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_CONCERT, concert_id)


async def record_admitted(conn: asyncpg.Connection, concert_id: int, tokens: Sequence[str],
                          users: Sequence[int], tickets: Sequence[int], expires_ms: int) -> None:
    expires = datetime.fromtimestamp(expires_ms / 1000, UTC)
    await conn.execute(ADD_USERS, list(users))
    await conn.execute(RECORD_ADMITTED, list(tokens), list(users), list(tickets), concert_id, expires)


async def record_expired(conn: asyncpg.Pool | asyncpg.Connection, tokens: Sequence[str],
                         reason: str) -> None:
    await conn.execute(RECORD_EXPIRED, list(tokens), reason)


# -- scheduled openings and their draws -----------------------------------------------------
PENDING_DRAW = """
SELECT id, concert_id, opens_at, seed, commitment FROM concert_draws
WHERE concert_id = $1 AND drawn_at IS NULL
"""

PENDING_DRAWS = "SELECT concert_id, opens_at FROM concert_draws WHERE drawn_at IS NULL"

LATEST_DRAW = """
SELECT concert_id, opens_at, seed, commitment, drawn_at, hmacs FROM concert_draws
WHERE concert_id = $1 ORDER BY id DESC LIMIT 1
"""

# One waiting opening per concert (concert_draws_pending_key): a new one, or a new time for it
# with the seed and commitment it already published.
SCHEDULE_DRAW = """
INSERT INTO concert_draws AS d (concert_id, opens_at, seed, commitment) VALUES ($1, $2, $3, $4)
ON CONFLICT (concert_id) WHERE drawn_at IS NULL DO UPDATE SET opens_at = EXCLUDED.opens_at
"""

REVEAL_DRAW = """
UPDATE concert_draws SET drawn_at = now(), hmacs = $3
WHERE concert_id = $1 AND opens_at = $2 AND drawn_at IS NULL
"""


async def pending_draw(conn: asyncpg.Pool | asyncpg.Connection,
                       concert_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(PENDING_DRAW, concert_id)


async def pending_draws(conn: asyncpg.Pool | asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(PENDING_DRAWS)
    return rows


async def latest_draw(conn: asyncpg.Pool | asyncpg.Connection,
                      concert_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(LATEST_DRAW, concert_id)


async def schedule_draw(conn: asyncpg.Pool | asyncpg.Connection, concert_id: int,
                        opens_at: datetime, seed: bytes, commitment: str) -> None:
    await conn.execute(SCHEDULE_DRAW, concert_id, opens_at, seed, commitment)


async def reveal_draw(conn: asyncpg.Pool | asyncpg.Connection, concert_id: int,
                      opens_at: datetime, hmacs: bytes) -> None:
    await conn.execute(REVEAL_DRAW, concert_id, opens_at, hmacs)
