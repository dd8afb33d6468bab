"""What booking is handed by the application that mounts it."""

from __future__ import annotations

import dataclasses

import asyncpg
from aiohttp import web

from .catalog import Schedules
from .gate import Gate


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


BOOKING = web.AppKey("booking", Booking)
