"""Demo data: concerts, their dates and numbered seats. Running it twice adds nothing."""

from __future__ import annotations

from datetime import date, timedelta

import asyncpg

ADD_CONCERT = """
INSERT INTO concerts (name, host) VALUES ($1, $2)
ON CONFLICT ON CONSTRAINT concerts_name_host_key DO UPDATE SET name = EXCLUDED.name
RETURNING id
"""

ADD_SCHEDULE = """
INSERT INTO concert_schedules (concert_id, concert_date) VALUES ($1, $2)
ON CONFLICT ON CONSTRAINT concert_schedules_concert_date_key
DO UPDATE SET concert_date = EXCLUDED.concert_date
RETURNING id
"""

# Seats 1..$2 at price $3; seats that exist keep their price and state.
ADD_SEATS = """
INSERT INTO concert_seats (schedule_id, seat_number, price)
SELECT $1, n, $3 FROM generate_series(1, $2::int) AS n
ON CONFLICT ON CONSTRAINT concert_seats_schedule_seat_key DO NOTHING
"""

_NAMES = [("Aurora Live", "Skyline Arena"), ("Midnight Orchestra", "Harbour Hall"),
          ("Neon Parade", "Riverside Stadium"), ("Glass Echoes", "Old Town Theatre")]
# Fixed dates, so that a second run finds the same ones rather than adding new ones.
FIRST_DATE = date(2026, 12, 24)


def concert_name(i: int) -> tuple[str, str]:
    name, host = _NAMES[i % len(_NAMES)]
    return (name if i < len(_NAMES) else f"{name} {i // len(_NAMES) + 1}", host)


def concert_date(concert: int, n: int) -> date:
    """The n-th date of the concert-th concert: a week apart, concerts a day apart."""
    return FIRST_DATE + timedelta(days=concert + 7 * n)


async def seed(dsn: str, *, concerts: int = 3, dates: int = 3, seats: int = 50,
               price: int = 100_000) -> str:
    """Make sure the demo data exists; returns a one-line summary."""
    if min(concerts, dates, seats) < 0 or price < 1:
        raise ValueError("counts must be 0 or more and the price at least 1 won")
    conn = await asyncpg.connect(dsn)
    added = 0
    try:
        async with conn.transaction():
            ids = [await conn.fetchval(ADD_CONCERT, *concert_name(i)) for i in range(concerts)]
            for i, concert_id in enumerate(ids):
                for n in range(dates):
                    schedule_id = await conn.fetchval(ADD_SCHEDULE, concert_id, concert_date(i, n))
                    if seats:
                        status = await conn.execute(ADD_SEATS, schedule_id, seats, price)
                        added += int(status.split()[-1])
    finally:
        await conn.close()
    return f"seeded concerts {ids}, {dates} dates each, {added} new seats"
