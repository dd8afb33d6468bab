"""Real servers for the tests: a private redis-server and a fresh PostgreSQL database.

PostgreSQL: TEST_DATABASE_URL or DATABASE_URL when it answers (a new database is created in it and
dropped at the end), else a throwaway server. Redis: always a private redis-server of our own,
so tests can flush it and stop it without touching anyone else's data.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import asyncpg
import pytest
import uvloop
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from db.migrate import migrate_url
from waitingroom.servers import free_port, scratch_database, throwaway_redis
from waitingroom.settings import Settings

# The identity secret of every test gateway; most tests still join with a bare user_id, which
# ALLOW_UNSIGNED_JOINS permits (tests/test_identity.py turns it off).
TEST_SECRET = "test-identity-secret-that-is-long-enough"

if TYPE_CHECKING:
    from waitingroom.queue import Queues

# What the `client` fixture and `aiohttp_client(create_app(...))` give: a client of one app.
AppClient = TestClient[Request, Application]
# The `make_settings` fixture: the test settings, keyword arguments overriding fields.
MakeSettings = Callable[..., Settings]


class AddConcert(Protocol):
    """The `add_concert` fixture: inserts a concert and gives its id."""

    def __call__(self, name: str | None = None, host: str = "Test Hall") -> Awaitable[int]: ...


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with throwaway_redis() as url:
        yield url


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with scratch_database("wr_test", os.environ.get("TEST_DATABASE_URL")) as url:
        asyncio.run(migrate_url(url))
        yield url


@pytest.fixture
def make_settings(redis_url: str, database_url: str) -> MakeSettings:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"database_url": database_url, "redis_url": redis_url,
                                  "admin_token": "test-admin", "tick_interval": 0.1,
                                  "identity_secret": TEST_SECRET, "allow_unsigned_joins": True,
                                  "rate_limit_joins": 0, "rate_limit_calls": 0}
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    return make_settings()


async def _tables(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'")
    return [r["tablename"] for r in rows]


@pytest.fixture
async def pg(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test database, emptied before each test."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=20)
    async with pool.acquire() as conn:
        tables = await _tables(conn)
        if tables:
            await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    yield pool
    await pool.close()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the private test Redis, emptied before each test."""
    from waitingroom.app import redis_client

    client = redis_client(redis_url, 50)
    assert isinstance(client, Redis)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def add_concert(pg: asyncpg.Pool) -> AddConcert:
    async def add(name: str | None = None, host: str = "Test Hall") -> int:
        return int(await pg.fetchval("INSERT INTO concerts (name, host) VALUES ($1, $2) RETURNING id",
                                     name or f"Concert {uuid.uuid4().hex[:6]}", host))

    return add


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0,
                     interval: float = 0.02) -> None:
    """Poll check until it holds, failing the test after timeout seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


@pytest.fixture
async def queues(redis: Redis, settings: Settings) -> AsyncIterator[Queues]:
    """The Queues object on the test Redis, with the test settings."""
    from waitingroom.queue import Queues

    yield Queues(redis, settings)


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, settings: Settings, pg: asyncpg.Pool,
                 redis: Redis) -> AppClient:
    """A test client of one real web process (its own pools, tick loop and pub/sub listener)."""
    from waitingroom.app import create_app

    return await aiohttp_client(create_app(settings))


def admin_headers(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.admin_token}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Proc:
    def __init__(self, proc: asyncio.subprocess.Process, port: int | None) -> None:
        self.proc, self.port = proc, port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# `spawn(command, port=None, **env)`: keyword arguments other than port are environment variables.
Spawn = Callable[..., Awaitable[Proc]]


@pytest.fixture
async def spawn(redis_url: str, database_url: str, pg: asyncpg.Pool,
                redis: Redis) -> AsyncIterator[Spawn]:
    """Start `waitingroom <command>` processes; each is stopped (by its pid) after the test.

    `start(command, port=None, output=None, flags=(), **env)`: a web process listens on `port` (a
    free one by default), writing its output to the file `output` if given; `flags` are more
    command-line arguments (`["--reuse-port"]`);
    keyword arguments override environment variables.
    """
    started: list[Proc] = []
    env = dict(os.environ, REDIS_URL=redis_url, DATABASE_URL=database_url, ADMIN_TOKEN="k",
               IDENTITY_SECRET=TEST_SECRET, ALLOW_UNSIGNED_JOINS="true", RATE_LIMIT_JOINS="0",
               RATE_LIMIT_CALLS="0",
               TICK_INTERVAL="0.1", WAIT_GRACE="1", LOG_LEVEL="WARNING")

    async def start(command: str, port: int | None = None, output: Any = None,
                    flags: Sequence[str] = (), **overrides: str) -> Proc:
        if command == "web":
            port = port or free_port()
        args = [command, "--port", str(port), "--host", "127.0.0.1"] if port else [command]
        args += flags
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "waitingroom", *args,
                                                    env=dict(env, **overrides), stdout=output,
                                                    stderr=output)
        p = Proc(proc, port)
        started.append(p)
        if port:
            async def up() -> bool:
                try:
                    async with aiohttp.ClientSession() as s, s.get(p.url + "/readyz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(up, timeout=20, interval=0.1)
        return p

    yield start
    for p in started:
        if p.proc.returncode is None:
            p.proc.kill()
        await p.proc.wait()
