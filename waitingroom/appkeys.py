"""Typed keys of everything an application holds."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from booking.catalog import Schedules

from .concerts import ConcertDirectory
from .hub import Hub
from .metrics import Metrics
from .queue import Queues
from .settings import Settings

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
PG = web.AppKey("pg", asyncpg.Pool)
QUEUES = web.AppKey("queues", Queues)
HUB = web.AppKey("hub", Hub)
CONCERTS = web.AppKey("concerts", ConcertDirectory)
METRICS = web.AppKey("metrics", Metrics)
SCHEDULES = web.AppKey("schedules", Schedules)
