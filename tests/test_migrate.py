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


async def test_reservations_keep_their_seats_when_the_seat_links_go(database_url: str) -> None:
    """0012 moves each reservation's seat numbers and prices from its links onto the row, ended
    reservations (whose seats are on sale again) included."""
    name = f"wr_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(with_database(database_url, name))
    try:
        for version, _, sql in migrations():
            if version < 12:
                await conn.execute(sql)
        await conn.execute("""
            INSERT INTO concerts (id, name, host) VALUES (1, 'c', 'h');
            INSERT INTO concert_schedules (id, concert_id, concert_date) VALUES (1, 1, '2030-01-01');
            INSERT INTO users (id) VALUES (7);
            INSERT INTO concert_seats (id, schedule_id, seat_number, price)
            SELECT n, 1, n, 100 * n FROM generate_series(1, 5) n;
            INSERT INTO reservations (id, user_id, schedule_id, status, seat_count, total_price,
                                      hold_expires_at)
            VALUES (1, 7, 1, 'WAITING', 2, 700, now() + interval '1 hour'),
                   (2, 7, 1, 'EXPIRED', 1, 100, now() - interval '1 hour');
            UPDATE concert_seats SET status = 'PENDING', reservation_id = 1,
                   hold_expires_at = now() + interval '1 hour' WHERE id IN (4, 3);
            INSERT INTO reservation_seats (reservation_id, reservation_status, seat_id,
                                           seat_number, price)
            VALUES (1, 'WAITING', 4, 4, 400), (1, 'WAITING', 3, 3, 300), (2, 'EXPIRED', 1, 1, 100);
        """)
        for version, _, sql in migrations():
            if version == 12:
                await conn.execute(sql)
        rows = await conn.fetch("SELECT id, seat_numbers, seat_prices FROM reservations ORDER BY id")
        assert [tuple(r) for r in rows] == [(1, [3, 4], [300, 400]), (2, [1], [100])]
        assert await conn.fetchval("SELECT to_regclass('reservation_seats')") is None
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def test_holds_and_payments_are_planned_once_per_connection(database_url: str) -> None:
    # A migration that replaces either function must say so again (0013, 0014, 0015): planning
    # them on every call was a fifth of a hold's and a sixth of a payment's PostgreSQL time.
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT proname, proconfig FROM pg_proc"
                                " WHERE proname IN ('hold_seats', 'pay_reservation')")
    finally:
        await conn.close()
    assert {r["proname"]: r["proconfig"] for r in rows} == {
        name: ["plan_cache_mode=force_generic_plan"] for name in ("hold_seats", "pay_reservation")}
