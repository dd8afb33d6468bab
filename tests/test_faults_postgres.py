"""PostgreSQL away and back: booking answers 503 with Retry-After, the queue keeps working, the
pool recovers by itself, and admissions made meanwhile reach the waiting_token table."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.booking_support import Shop, make_shop, shop  # noqa: F401
from tests.conftest import eventually
from tests.test_faults import parse_store_figures
from waitingroom import admission
from waitingroom.appkeys import PG
from waitingroom.servers import with_database

Outage = Callable[[bool], Awaitable[None]]


@pytest.fixture
async def outage(database_url: str) -> AsyncIterator[Outage]:
    """outage(True): the test database refuses connections and loses the ones it had, as if its
    server had stopped (the machine's server itself stays up); outage(False): back."""
    name = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(with_database(database_url, "postgres"))

    async def set_away(away: bool) -> None:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if away else "true"}')
        if away:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE datname = $1 AND pid <> pg_backend_pid()", name)

    yield set_away
    await set_away(False)
    await admin.close()


async def store_figures(shop: Shop) -> dict[tuple[str, str], float]:
    """The store counters of /metrics: (errors|opened, redis|postgres) → value."""
    answer = await shop.client.get("/metrics")
    return parse_store_figures(await answer.text())


async def test_booking_503_while_away_queue_goes_on_rows_catch_up(shop: Shop, outage: Outage) -> None:
    concert_id, (s1,) = await shop.concert(seats=4)
    buyer = await shop.buyer(concert_id, 1)
    waiter = await shop.join(concert_id, 2)
    before = await store_figures(shop)
    await outage(True)
    try:
        held = await shop.call("POST", "/api/v1/reservations", buyer,
                               json={"schedule_id": s1, "quantity": 1})
        assert (held.status, held.body["code"]) == (503, "service_unavailable")
        charge = await shop.call("POST", "/api/v1/balance/charges", buyer, json={"amount": 5})
        assert charge.status == 503
        # The queue does not need PostgreSQL: polls answer, and admission goes on.
        assert (await shop.call("GET", "/api/v1/queue", waiter)).status == 200
        await admission.tick(shop.queues, shop.client.app[PG])
        _, record = await shop.queues.lookup(waiter)
        assert record.state == "AVAILABLE"
        assert len(await shop.queues.redis.lrange("wr:deferred", 0, -1)) == 1
    finally:
        await outage(False)

    async def recovered() -> bool:
        answer = await shop.call("POST", "/api/v1/reservations", buyer,
                                 json={"schedule_id": s1, "quantity": 1})
        return answer.status == 201

    await eventually(recovered, timeout=15)  # the pool recovers without a restart
    # The operator sees it: the failures, and the connections made again.
    after = await store_figures(shop)
    assert after["errors", "postgres"] >= before["errors", "postgres"] + 2, (before, after)
    assert after["opened", "postgres"] > before["opened", "postgres"], (before, after)
    await admission.tick(shop.queues, shop.pg)
    state = await shop.pg.fetchval("SELECT state FROM waiting_token WHERE token = $1::uuid", waiter)
    assert state == "AVAILABLE"  # the admission made while away reached the table
    assert await shop.queues.redis.llen("wr:deferred") == 0
    await shop.audit()


async def test_a_refused_connection_is_a_connection_failure(database_url: str,
                                                            outage: Outage) -> None:
    # Refused while connecting (here: the database takes no connections) is a connection
    # failure, whatever error PostgreSQL sends: the request gets a 503, never a 500.
    from waitingroom.app import pg_connect
    from waitingroom.problems import unavailable

    await outage(True)
    with pytest.raises(asyncpg.exceptions.ClientCannotConnectError) as caught:
        await pg_connect(database_url)
    assert unavailable(caught.value) and "accepting connections" in str(caught.value)
