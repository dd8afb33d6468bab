"""Which concerts exist: cached so that a flash crowd of joins never reaches PostgreSQL."""

from __future__ import annotations

import time

import asyncpg

from . import queries
from .errors import ConcertNotFound

# An unknown id is remembered this long, so a flood of joins to it costs one query.
MISSING_TTL = 5.0
LIST_TTL = 1.0


class ConcertDirectory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._known: dict[int, asyncpg.Record] = {}
        self._missing: dict[int, float] = {}
        self._listed: tuple[float, list[asyncpg.Record]] | None = None

    async def require(self, concert_id: int) -> asyncpg.Record:
        """The concert, or ConcertNotFound."""
        row = self._known.get(concert_id)
        if row is not None:
            return row
        if self._missing.get(concert_id, 0.0) > time.monotonic():
            raise ConcertNotFound(f"There is no concert {concert_id}")
        row = await queries.get_concert(self.pool, concert_id)
        if row is None:
            if len(self._missing) > 10_000:
                self._missing.clear()
            self._missing[concert_id] = time.monotonic() + MISSING_TTL
            raise ConcertNotFound(f"There is no concert {concert_id}")
        self._known[concert_id] = row
        return row

    async def all(self) -> list[asyncpg.Record]:
        now = time.monotonic()
        if self._listed is None or self._listed[0] < now:
            rows = await queries.list_concerts(self.pool)
            self._listed = (now + LIST_TTL, rows)
            self._known.update((r["id"], r) for r in rows)
        return self._listed[1]
