"""The application factory: one cleanup context per resource, nothing done at import time."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis

import booking.views

from . import openapi
from .appkeys import CONCERTS, HUB, METRICS, PG, QUEUES, REDIS, SETTINGS
from .concerts import ConcertDirectory
from .hub import Hub
from .metrics import Metrics
from .problems import problem_middleware
from .queue import Queues
from .settings import Settings
from .views import add_routes

# Request bodies are small JSON objects; anything larger is refused with 413.
MAX_BODY = 64 * 1024


def redis_client(url: str, max_connections: int = 200) -> Redis:
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=10)
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


async def _redis(app: web.Application) -> AsyncIterator[None]:
    client = redis_client(app[SETTINGS].redis_url)
    app[REDIS] = client
    app[QUEUES] = Queues(client, app[SETTINGS])
    yield
    await client.aclose()


async def _postgres(app: web.Application) -> AsyncIterator[None]:
    pool = await asyncpg.create_pool(app[SETTINGS].database_url, min_size=1, max_size=10)
    app[PG] = pool
    app[CONCERTS] = ConcertDirectory(pool)
    yield
    await pool.close()


async def _hub(app: web.Application) -> AsyncIterator[None]:
    hub = Hub(app[QUEUES], app[SETTINGS].tick_interval)
    app[HUB] = hub
    app[METRICS].watch(lambda: hub.socket_count, lambda: hub.last_tick_seconds,
                       lambda: hub.frames_sent)
    tasks = [asyncio.create_task(hub.listen(), name="pubsub"),
             asyncio.create_task(hub.run(), name="position-tick")]
    yield
    for task in tasks:
        task.cancel()
    # Bounded: a task that does not stop in time must not hold up the process's shutdown.
    await asyncio.wait(tasks, timeout=5)
    await hub.release()


async def _gc_timing(app: web.Application) -> AsyncIterator[None]:
    callback = app[METRICS].gc_callback
    gc.callbacks.append(callback)
    yield
    gc.callbacks.remove(callback)


async def _close_sockets(app: web.Application) -> None:
    # Runs before the cleanup contexts: clients are told to reconnect elsewhere (1001).
    await app[HUB].close_all()


def create_app(settings: Settings) -> web.Application:
    """A web process: public API, WebSockets, admin API. Opens its pools when started."""
    app = web.Application(middlewares=[problem_middleware], client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app.cleanup_ctx.extend([_redis, _postgres, _hub, _gc_timing])
    app.on_shutdown.append(_close_sockets)
    add_routes(app)
    booking.views.add_routes(app)
    openapi.add_routes(app)
    return app
