"""Demo data: concerts (and, with booking, their dates and seats). Running it twice adds nothing."""

from __future__ import annotations

import asyncpg

ADD_CONCERT = """
INSERT INTO concerts (name, host) VALUES ($1, $2)
ON CONFLICT ON CONSTRAINT concerts_name_host_key DO UPDATE SET name = EXCLUDED.name
RETURNING id
"""

_NAMES = [("Aurora Live", "Skyline Arena"), ("Midnight Orchestra", "Harbour Hall"),
          ("Neon Parade", "Riverside Stadium"), ("Glass Echoes", "Old Town Theatre")]


def concert_name(i: int) -> tuple[str, str]:
    name, host = _NAMES[i % len(_NAMES)]
    return (name if i < len(_NAMES) else f"{name} {i // len(_NAMES) + 1}", host)


async def seed(dsn: str, *, concerts: int = 3, dates: int = 3, seats: int = 50,
               price: int = 100_000) -> str:
    """Make sure the demo data exists; returns a one-line summary."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            ids = [await conn.fetchval(ADD_CONCERT, *concert_name(i)) for i in range(concerts)]
    finally:
        await conn.close()
    return f"seeded concerts {ids}"
