"""A scheduled opening and its verifiable draw.

When an operator schedules an opening, a 32-byte seed is drawn and kept in PostgreSQL; its
SHA-256 (the commitment) is public at once. Whoever joins before the opening waits in the
pre-queue with no place. At the opening the admitter places them in the order of
HMAC-SHA256(seed, token) (ascending hex), in one Lua call (lua/draw.lua), then publishes the
seed and the sorted HMACs: anyone can check the seed against the commitment, find their own
HMAC in the list and so their rank. Arriving one millisecond or fifty minutes early is the same.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import secrets
from datetime import UTC, datetime, timedelta, timezone

import asyncpg

from booking.errors import ValidationFailed

from . import queries
from .queue import Queues
from .verify import mac

log = logging.getLogger(__name__)

SEED_BYTES = 32
LATEST_MS = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()) * 1000
MAC_HEX = 64


def new_seed() -> tuple[bytes, str]:
    """A fresh secret seed and its commitment, sha256(seed) in hex."""
    seed = secrets.token_bytes(SEED_BYTES)
    return seed, hashlib.sha256(seed).hexdigest()


def ordered(seed: bytes, tokens: list[str]) -> list[tuple[str, str]]:
    """(token, HMAC) in the drawn order: ascending HMAC."""
    return sorted(((t, mac(seed, t)) for t in tokens), key=lambda pair: pair[1])


# RFC 3339 date-time (a leap second counts as the second before it).
_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


def parse_opens_at(raw: str, now_ms: int) -> int:
    """An opening as given in the admin API (RFC 3339 with an offset), in ms rounded up to the
    whole second; a time already past is now. ValidationFailed naming opens_at otherwise."""
    m = _RFC3339.fullmatch(raw)
    try:
        if m is None:
            raise ValueError(raw)
        year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
        zone = m[8].upper()
        offset = timedelta(0) if zone == "Z" else (1 if zone[0] == "+" else -1) * timedelta(
            hours=int(zone[1:3]), minutes=int(zone[4:6]))
        when = datetime(year, month, day, hour, minute, min(second, 59),
                        tzinfo=timezone(offset)) + timedelta(seconds=float(m[7] or 0))
        ms = math.ceil(when.timestamp()) * 1000
    except (ValueError, OverflowError):
        raise ValidationFailed("opens_at must be an RFC 3339 time with an offset, "
                               "e.g. 2026-12-24T19:00:00Z", field="opens_at") from None
    # The latest time an answer can spell (year 9999) is as far as an opening goes.
    return min(max(ms, now_ms), LATEST_MS)


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def ms_of(when: datetime) -> int:
    return round(when.timestamp() * 1000)


async def schedule(queues: Queues, pool: asyncpg.Pool, concert_id: int,
                   opens_ms: int | None) -> None:
    """Schedule (or move) a concert's opening; None opens a waiting pre-queue now.

    A moved opening keeps the seed whose commitment is already public. PostgreSQL first: it
    keeps the seed and restores Redis if Redis comes back empty."""
    if opens_ms is None:
        row = await queries.pending_draw(pool, concert_id)
        if row is None:
            return
        opens_ms = await queues.clock_ms()
    seed, commitment = new_seed()
    await queries.schedule_draw(pool, concert_id, at(opens_ms), seed, commitment)
    await queues.schedule(concert_id, opens_ms)


async def open_if_due(queues: Queues, pool: asyncpg.Pool, concert_id: int) -> None:
    """At the opening, draw the pre-queue's order; then publish the draw in PostgreSQL."""
    opens_ms, unrevealed = await queues.opening(concert_id)
    if opens_ms is not None and await queues.clock_ms() >= opens_ms:
        row = await queries.pending_draw(pool, concert_id)
        if row is None:
            log.error("concert %s: an opening in Redis with no seed in PostgreSQL", concert_id)
        elif ms_of(row["opens_at"]) <= opens_ms:
            drawn = ordered(bytes(row["seed"]), await queues.pre_queue(concert_id))
            # -1: someone joined between the read and the draw (Redis's clock went back): the
            # next tick reads the pre-queue again.
            unrevealed = await queues.draw(concert_id, opens_ms, drawn) == 1 or unrevealed
    if unrevealed:
        pending = await queues.unrevealed(concert_id)
        if pending is not None:
            opened, hexes = pending
            await queries.reveal_draw(pool, concert_id, at(opened), bytes.fromhex(hexes))
            await queues.revealed(concert_id)


async def restore(queues: Queues, pool: asyncpg.Pool) -> int:
    """Scheduled openings that Redis lost (it came back empty) come back from PostgreSQL."""
    pending = [(r["concert_id"], ms_of(r["opens_at"])) for r in await queries.pending_draws(pool)]
    return await queues.restore_openings(pending) if pending else 0


def rfc3339_of(when: datetime) -> str:
    """RFC 3339 in UTC, whole seconds (openings are whole seconds)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
