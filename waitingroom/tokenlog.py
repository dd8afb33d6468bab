"""The waiting_token table: a row for every admitted token, and how it ended. Written as it
happens; while PostgreSQL is away the changes wait in Redis and are written once it is back."""

from __future__ import annotations

import contextlib
import logging

import asyncpg
import msgspec

from . import queries
from .logs import describe
from .queue import Queues
from .records import ExpiryReason

log = logging.getLogger(__name__)

# Deferred changes written per tick once PostgreSQL is back.
CATCH_UP_BATCH = 100

_encode = msgspec.json.Encoder().encode


class TokenChange(msgspec.Struct, array_like=True):
    concert_id: int
    admitted: list[tuple[str, int, int]] = []  # (token, user id, ticket)
    deadline_ms: int = 0
    expired: list[str] = []
    reason: ExpiryReason | None = None


_decode = msgspec.json.Decoder(TokenChange).decode


async def write(pool: asyncpg.Pool, change: TokenChange) -> None:
    both = bool(change.admitted) and bool(change.expired)
    # One statement is its own transaction: BEGIN and COMMIT would be two more round trips
    # (a paid token's expiry writes only its one row).
    async with pool.acquire() as conn, conn.transaction() if both else contextlib.nullcontext():
        if change.admitted:
            await queries.record_admitted(
                conn, change.concert_id, [t for t, _, _ in change.admitted],
                [u for _, u, _ in change.admitted], [n for _, _, n in change.admitted],
                change.deadline_ms)
        if change.expired and change.reason is not None:
            await queries.record_expired(conn, change.expired, change.reason)


async def record(queues: Queues, pool: asyncpg.Pool | None, change: TokenChange) -> None:
    """Write the change now, or keep it for when PostgreSQL answers again."""
    if pool is not None:
        try:
            await write(pool, change)
            return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:  # away, or refusing
            log.warning("PostgreSQL is away: keeping token changes of concert %s for later: %s",
                        change.concert_id, describe(e))
    await queues.defer(_encode(change))


async def catch_up(queues: Queues, pool: asyncpg.Pool) -> int:
    """Write what waited while PostgreSQL was away; returns how many changes were written."""
    blobs = await queues.take_deferred(CATCH_UP_BATCH)
    for i, blob in enumerate(blobs):
        try:
            await write(pool, _decode(blob))
        except msgspec.DecodeError:
            log.error("dropped an unreadable deferred token change: %r", blob[:100])
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await queues.put_back(blobs[i:])
            return i
    return len(blobs)


async def reconcile(queues: Queues, pool: asyncpg.Pool) -> int:
    """Write the rows of admitted tokens that have none: an admitter stopped between admitting
    in Redis and writing the rows (killed, or its machine lost) leaves them unwritten. Run when
    an admitter starts and at every stock check; returns how many tokens were looked at."""
    seen = 0
    for concert_id in await queues.concert_ids():
        by_deadline: dict[int, list[tuple[str, int, int]]] = {}
        for token, user_id, ticket, deadline in await queues.admitted_now(concert_id):
            by_deadline.setdefault(deadline, []).append((token, user_id, ticket))
        for deadline, admitted in by_deadline.items():
            # ON CONFLICT DO NOTHING: rows already written stay as they are.
            await write(pool, TokenChange(concert_id, admitted, deadline))
            seen += len(admitted)
    return seen
