"""What booking is handed by the application that mounts it."""

from __future__ import annotations

import dataclasses

import asyncpg
from aiohttp import web

from . import queries
from .catalog import Schedules
from .gate import Gate
from .payments import EndedTokens
from .preview import Shared


@dataclasses.dataclass(frozen=True, slots=True)
class BookingSettings:
    hold_ttl: int = 300
    max_seats_per_user: int = 4
    # Rows per sweep statement; one admitter tick runs each sweep once.
    sweep_batch: int = 1000
    # Expiring a paid token must not hold up the buyer's answer; the sweeper retries later.
    token_expiry_timeout: float = 2.0


@dataclasses.dataclass(frozen=True, slots=True)
class Booking:
    pool: asyncpg.Pool
    gate: Gate
    settings: BookingSettings
    schedules: Schedules = dataclasses.field(default_factory=Schedules)
    preview_dates: Shared[int, list[asyncpg.Record]] = dataclasses.field(init=False)
    preview_maps: Shared[int, list[asyncpg.Record]] = dataclasses.field(init=False)
    ended_tokens: EndedTokens = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        # Frozen, so set once here: read-only views shared by every waiter of this process.
        object.__setattr__(self, "preview_dates",
                           Shared(lambda cid: queries.preview_schedules(self.pool, cid)))
        object.__setattr__(self, "preview_maps",
                           Shared(lambda sid: queries.seat_map(self.pool, sid)))
        object.__setattr__(self, "ended_tokens", EndedTokens(self.pool))


BOOKING = web.AppKey("booking", Booking)
