"""Numbered SQL migrations, applied in order in one transaction under an advisory lock."""

from __future__ import annotations

import re
from importlib import resources

import asyncpg

# Any constant shared by every process of the project: only one migrator runs at a time.
ADVISORY_LOCK = 7_301_146_220

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
APPLIED = "SELECT version FROM schema_migrations"
RECORD = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"

_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration file, in order."""
    found = []
    for entry in (resources.files("db") / "migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append((int(m[1]), m[2], entry.read_text()))
    return sorted(found)


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply what is pending; returns the names applied. Safe from many processes at once."""
    done = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", ADVISORY_LOCK)
        await conn.execute(CREATE_TABLE)
        applied = {r["version"] for r in await conn.fetch(APPLIED)}
        for version, name, sql in migrations():
            if version in applied:
                continue
            await conn.execute(sql)
            await conn.execute(RECORD, version, name)
            done.append(f"{version:04d}_{name}")
    return done


async def migrate_url(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
