"""The application's PostgreSQL pool: connections come back to it clean without a reset query."""

from __future__ import annotations

from waitingroom.app import pg_pool


async def test_a_connection_left_in_a_transaction_comes_back_clean(database_url: str) -> None:
    pool = await pg_pool(database_url, 1)
    try:
        async with pool.acquire() as conn:
            first = conn.get_server_pid()
            # A request that failed half-way: its transaction, row and lock are left open.
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE left_open (n int)")
            await conn.execute("SELECT pg_advisory_xact_lock(7399, 1)")
        async with pool.acquire() as conn:
            assert conn.get_server_pid() == first  # the same connection, reused
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
            assert await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                " AND pid = pg_backend_pid()") == 0
    finally:
        await pool.close()
