async def test_pg_and_redis(pg, redis):
    assert await pg.fetchval("SELECT count(*) FROM concerts") == 0
    assert await redis.ping()
