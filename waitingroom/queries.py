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
INSERT INTO queue_settings AS q (concert_id, admit_rate, max_active, paused)
VALUES ($1, $2, $3, $4)
ON CONFLICT (concert_id) DO UPDATE
SET admit_rate = coalesce(EXCLUDED.admit_rate, q.admit_rate),
    max_active = coalesce(EXCLUDED.max_active, q.max_active),
    paused = coalesce(EXCLUDED.paused, q.paused),
    updated_at = now()
"""

QUEUE_SETTINGS = "SELECT concert_id, admit_rate, max_active, paused FROM queue_settings"


async def save_queue_settings(conn: asyncpg.Pool | asyncpg.Connection, concert_id: int,
                              admit_rate: float | None, max_active: int | None,
                              paused: bool | None) -> None:
    await conn.execute(SAVE_QUEUE_SETTINGS, concert_id, admit_rate, max_active, paused)


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
