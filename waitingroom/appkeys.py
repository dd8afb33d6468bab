"""Typed keys of everything the web application holds (booking keeps its own: booking.context)."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from .concerts import ConcertDirectory
from .identity import Identities
from .inventory import Measures
from .latency import LatencyWindow
from .lease import Lease
from .metrics import Metrics
from .positions import PositionTick
from .queue import Queues
from .scripts import Client
from .settings import Settings
from .sockets import Sockets

SETTINGS = web.AppKey("settings", Settings)
REDIS: web.AppKey[Client] = web.AppKey("redis")
PG = web.AppKey("pg", asyncpg.Pool)
QUEUES = web.AppKey("queues", Queues)
SOCKETS = web.AppKey("sockets", Sockets)
LEASE = web.AppKey("lease", Lease)
POSITIONS = web.AppKey("positions", PositionTick)
CONCERTS = web.AppKey("concerts", ConcertDirectory)
METRICS = web.AppKey("metrics", Metrics)
IDENTITIES = web.AppKey("identities", Identities)
LATENCY = web.AppKey("latency", LatencyWindow)
MEASURES = web.AppKey("measures", Measures)
