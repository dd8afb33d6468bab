"""Migrations: in order, once, safe from many processes at once."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from db.migrate import migrate, migrate_url, migrations
from waitingroom.servers import with_database


async def test_concurrent_migrations_apply_each_once(database_url: str) -> None:
    name = f"wr_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(database_url, name)
    try:
        results = await asyncio.gather(*(migrate_url(url) for _ in range(6)))
        applied = [r for r in results if r]
        assert len(applied) == 1
        assert applied[0] == [f"{v:04d}_{n}" for v, n, _ in migrations()]
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(migrations())
            assert await migrate(conn) == []
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def test_migrations_are_numbered_in_order() -> None:
    versions = [v for v, _, _ in migrations()]
    assert versions == list(range(1, len(versions) + 1))
