"""The application factory: one cleanup context per resource, nothing done at import time."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

import booking.views
from booking.context import BOOKING, Booking

from . import console, inventory, latency, openapi
from .appkeys import (
    CONCERTS,
    IDENTITIES,
    LATENCY,
    LEASE,
    MEASURES,
    METRICS,
    PG,
    POSITIONS,
    QUEUES,
    REDIS,
    SETTINGS,
    SOCKETS,
)
from .cluster import HealingCluster
from .concerts import ConcertDirectory
from .edge import edge_middleware
from .gate import QueueGate
from .identity import Identities
from .lease import Lease
from .listener import listen
from .metrics import CountedConnection, Metrics, connection_opened
from .positions import PositionTick
from .queue import Queues
from .scripts import Client
from .settings import Settings
from .sockets import Sockets
from .ticker import every
from .views import add_routes

# How long a connection from the pool may be waited for before the request fails with 503.
REDIS_POOL_TIMEOUT = 10
# A Redis that does not accept a connection this fast is down: answer 503, never hang.
REDIS_CONNECT_TIMEOUT = 2.0
# PostgreSQL: seconds to connect, and the longest any statement may run.
PG_CONNECT_TIMEOUT = 5.0
PG_COMMAND_TIMEOUT = 15.0
# Reconnections tried for one command (a restart closes every pooled connection at once).
REDIS_RETRIES = 2
# On a cluster a retry also reads the slot map again: enough of them to ride out a failover's
# first seconds before answering 503.
REDIS_CLUSTER_RETRIES = 3
# How long shutdown waits for the background loops to stop.
STOP_TIMEOUT = 5
# Allocations (less deallocations) between two collections of the youngest generation.
GC_YOUNG_THRESHOLD = 7000


async def pg_connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
    """asyncpg.connect, where every way of not reaching PostgreSQL (a refused port, a Unix
    socket that is gone because the server is stopped, a connect timeout) fails as asyncpg's
    connection failure, not as a missing file or a bare OSError; counted in the metrics."""
    try:
        conn = await asyncpg.connect(*args, **kwargs)
    except OSError as e:  # TimeoutError included
        raise asyncpg.exceptions.ClientCannotConnectError(
            f"PostgreSQL is not reachable: {e!r}") from e
    except asyncpg.PostgresError as e:
        # Refused while connecting (the database is not accepting connections, the server is
        # starting or stopping, too many clients): no session was had, so it is unavailable.
        raise asyncpg.exceptions.ClientCannotConnectError(
            f"PostgreSQL refused the connection: {e}") from e
    connection_opened("postgres")
    return conn


async def _keep_session(conn: asyncpg.Connection) -> None:
    """asyncpg's reset on release, less its reset query: nothing here keeps session state (no
    LISTEN, SET, cursor or session-level advisory lock; advisory locks are transaction-scoped),
    so the query (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`) would be one
    more round trip per request for nothing. An open transaction is still rolled back by the
    pool itself before this is called."""


async def pg_pool(url: str, max_size: int) -> asyncpg.Pool:
    """A pool that gives up fast when PostgreSQL is down (503, never a hang) and replaces the
    connections a restart closed by itself."""
    return await asyncpg.create_pool(url, min_size=1, max_size=max_size, timeout=PG_CONNECT_TIMEOUT,
                                     command_timeout=PG_COMMAND_TIMEOUT, connect=pg_connect,
                                     reset=_keep_session)


def redis_client(url: str, max_connections: int, cluster: bool = False) -> Client:
    """A client whose pooled connections reconnect by themselves: after a Redis restart the
    first command on a stale connection is retried on a new one, not failed.

    cluster: url names any node of a Redis Cluster; the client learns the others and their
    slots from it, follows MOVED/ASK, and on a lost node reads the slot map again and retries
    (a replica promoted in its place is found that way; see HealingCluster). max_connections
    is per node there."""
    if cluster:
        return HealingCluster.from_url(
            url, max_connections=max_connections, socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), REDIS_CLUSTER_RETRIES))
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=REDIS_POOL_TIMEOUT,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), REDIS_RETRIES),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        connection_class=CountedConnection)
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = redis_client(settings.redis_url, settings.redis_pool_size, settings.redis_cluster)
    app[REDIS] = client
    app[QUEUES] = Queues(client, settings)
    yield
    await client.aclose()


async def _postgres(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pool = await pg_pool(settings.database_url, settings.pg_pool_size)
    app[PG] = pool
    app[CONCERTS] = ConcertDirectory(pool)
    app[BOOKING] = Booking(pool, QueueGate(app[QUEUES], pool), settings.booking)
    yield
    await app[BOOKING].ended_tokens.close(STOP_TIMEOUT)
    await pool.close()


async def _sockets(app: web.Application) -> AsyncIterator[None]:
    settings, queues = app[SETTINGS], app[QUEUES]
    sockets = Sockets(settings.admit_rate, settings.slow_client_bytes, settings.slow_client_ticks,
                      settings.adaptive_updates)
    lease = Lease(queues, sockets, settings.tick_interval)
    positions = PositionTick(queues, sockets, lease, settings.tick_interval)
    app[SOCKETS], app[LEASE], app[POSITIONS] = sockets, lease, positions
    app[METRICS].watch(lambda: sockets.count, lambda: positions.last_seconds,
                       lambda: sockets.frames_sent, lambda: sockets.aborted)
    positions.on_tick = app[METRICS].ticks.observe
    tasks = [asyncio.create_task(listen(queues, sockets), name="pubsub"),
             asyncio.create_task(positions.run(), name="position-tick")]
    yield
    for task in tasks:
        task.cancel()
    # Bounded: a task that does not stop in time must not hold up the process's shutdown.
    await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
    await lease.release()


async def _latency_reports(app: web.Application) -> AsyncIterator[None]:
    queues, window, proc_id = app[QUEUES], app[LATENCY], app[LEASE].proc_id
    task = asyncio.create_task(every(1.0, lambda: latency.report(queues, window, proc_id),
                                     "latency report"), name="latency-report")
    yield
    task.cancel()
    await asyncio.wait([task], timeout=STOP_TIMEOUT)


async def _gc_timing(app: web.Application) -> AsyncIterator[None]:
    callback = app[METRICS].gc_callback
    thresholds = gc.get_threshold()
    # A youngest generation ten times Python's default: objects of a request are mostly freed
    # by their reference counts before a collection looks at them, and the collections a flash
    # crowd sets off (one every few dozen joins at the default) cost less in all.
    gc.set_threshold(GC_YOUNG_THRESHOLD, *thresholds[1:])
    gc.callbacks.append(callback)
    yield
    gc.callbacks.remove(callback)
    gc.set_threshold(*thresholds)


async def _close_sockets(app: web.Application) -> None:
    # Runs before the cleanup contexts: clients are told to reconnect elsewhere (1001).
    await app[SOCKETS].close_all()


def create_app(settings: Settings) -> web.Application:
    """A web process: public API, WebSockets, admin API. Opens its pools when started.

    ConfigError if it could not check who joins (see Settings.check_web)."""
    metrics = Metrics()
    window = latency.LatencyWindow(settings.booking_latency_window)
    app = web.Application(middlewares=[edge_middleware(metrics, window)],
                          client_max_size=settings.max_body)
    app[SETTINGS] = settings
    app[IDENTITIES] = Identities.from_settings(settings)
    app[METRICS] = metrics
    app[LATENCY] = window
    app[MEASURES] = inventory.Measures()
    app.cleanup_ctx.extend([_redis, _postgres, _sockets, _latency_reports, _gc_timing])
    app.on_shutdown.append(_close_sockets)
    add_routes(app)
    booking.views.add_routes(app)
    console.add_routes(app)
    openapi.add_routes(app)
    return app
