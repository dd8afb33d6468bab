"""The admitter: FIFO, rate, fractional budget, MAX_ACTIVE, expiry, several admitters at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
from redis.asyncio import Redis

from tests.conftest import AddConcert, MakeSettings, eventually
from waitingroom import admission
from waitingroom.queue import Admission, Queues

STATE = "wr:{c:1}:state"


async def _tick_after(queues: Queues, seconds: float) -> Admission:
    """One admission tick as if `seconds` of Redis time had passed since the last one."""
    await queues.redis.hset(STATE, "last_ms", await queues.clock_ms() - int(seconds * 1000))
    return (await admission.tick(queues, None))[1]


async def _admitted_total(queues: Queues) -> int:
    return (await queues.figures([1]))[1].admitted_total


@contextlib.asynccontextmanager
async def running(*admitters: Queues, pool: asyncpg.Pool | None = None) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(admission.run(q, pool)) for q in admitters]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t


async def _measured_rate(queues: Queues, count: int) -> float:
    """Admissions per second of Redis time over the next `count` admissions."""
    await eventually(lambda: _admitted(queues, 1), timeout=5)
    a0, t0 = await _admitted_total(queues), await queues.clock_ms()
    await eventually(lambda: _admitted(queues, a0 + count), timeout=30)
    a1, t1 = await _admitted_total(queues), await queues.clock_ms()
    return (a1 - a0) / ((t1 - t0) / 1000)


async def _admitted(queues: Queues, at_least: int) -> bool:
    return await _admitted_total(queues) >= at_least


async def test_admission_is_fifo(queues: Queues) -> None:
    tickets = [await queues.join(1, u) for u in range(1, 31)]
    await queues.configure(1, admit_rate=7.0)
    order: list[str] = []
    await admission.tick(queues, None)
    while len(order) < 30:
        order += (await _tick_after(queues, 1.0)).admitted_tokens
    assert order == [t.token for t in tickets]


async def test_fractional_budget_admits_five_every_two_seconds(queues: Queues) -> None:
    for u in range(1, 21):
        await queues.join(1, u)
    await queues.configure(1, admit_rate=2.5)
    await admission.tick(queues, None)
    counts = [len((await _tick_after(queues, 1.0)).admitted_tokens) for _ in range(6)]
    assert counts == [2, 3, 2, 3, 2, 3]


async def test_no_banking_after_a_pause(queues: Queues) -> None:
    for u in range(1, 101):
        await queues.join(1, u)
    await queues.configure(1, admit_rate=10.0, paused=True)
    await admission.tick(queues, None)
    for _ in range(30):  # thirty seconds of paused ticks
        assert len((await _tick_after(queues, 1.0)).admitted_tokens) == 0
    await queues.configure(1, paused=False)
    # They saved up nothing: one second's worth comes in on the next tick.
    assert len((await _tick_after(queues, 1.0)).admitted_tokens) == 10


async def test_no_banking_while_no_admitter_ran(make_settings: MakeSettings, redis: Redis) -> None:
    queues = Queues(redis, make_settings(tick_interval=1.0))
    for u in range(1, 101):
        await queues.join(1, u)
    await queues.configure(1, admit_rate=10.0)
    await admission.tick(queues, None)
    # A minute with no admitter: about a second's worth at once (room for one late tick).
    assert 10 <= len((await _tick_after(queues, 60.0)).admitted_tokens) <= 16


async def test_late_and_early_ticks_keep_the_exact_rate(make_settings: MakeSettings, redis: Redis) -> None:
    queues = Queues(redis, make_settings(tick_interval=1.0))
    for u in range(1, 201):
        await queues.join(1, u)
    await queues.configure(1, admit_rate=10.0)
    await admission.tick(queues, None)
    counts = [len((await _tick_after(queues, gap)).admitted_tokens) for gap in (1.4, 0.6) * 5]
    assert sum(counts) == 100


async def test_rate_is_accurate_in_real_time(queues: Queues, make_settings: MakeSettings,
                                             redis: Redis) -> None:
    q = Queues(redis, make_settings(tick_interval=0.05))
    for u in range(1, 301):
        await q.join(1, u)
    await q.configure(1, admit_rate=40.0)
    async with running(q):
        rate = await _measured_rate(q, 80)
    assert 36 <= rate <= 44


async def test_two_admitters_admit_no_more_than_one(queues: Queues, make_settings: MakeSettings,
                                                    redis_url: str) -> None:
    from waitingroom.app import redis_client

    for u in range(1, 301):
        await queues.join(1, u)
    await queues.configure(1, admit_rate=40.0)
    other = redis_client(redis_url, 10)
    try:
        a = Queues(queues.redis, make_settings(tick_interval=0.05))
        b = Queues(other, make_settings(tick_interval=0.07))
        async with running(a, b):
            rate = await _measured_rate(queues, 80)
    finally:
        await other.aclose()
    assert 36 <= rate <= 44


async def test_max_active_is_never_exceeded(queues: Queues, make_settings: MakeSettings,
                                            redis: Redis) -> None:
    tickets = [await queues.join(1, u) for u in range(1, 41)]
    await queues.configure(1, admit_rate=1000.0, max_active=5)
    await admission.tick(queues, None)
    for _ in range(5):
        await _tick_after(queues, 1.0)
        assert (await queues.figures([1]))[1].active <= 5
    assert (await queues.figures([1]))[1].active == 5
    # A finished buyer frees exactly one slot for the next in line.
    await queues.end(tickets[0].token, "completed")
    outcome = await _tick_after(queues, 1.0)
    assert outcome.admitted_tokens == [tickets[5].token]


async def test_admitted_tokens_time_out_and_free_their_slot(make_settings: MakeSettings, redis: Redis,
                                                            pg: asyncpg.Pool,
                                                            add_concert: AddConcert) -> None:
    cid = await add_concert()
    q = Queues(redis, make_settings(active_ttl=1))
    first, second = await q.join(cid, 1), await q.join(cid, 2)
    await q.configure(cid, admit_rate=1000.0, max_active=1)
    async with running(q, pool=pg):
        await eventually(lambda: _state_is(q, first.token, "AVAILABLE"))
        await eventually(lambda: _state_is(q, first.token, "EXPIRED"), timeout=5)
        await eventually(lambda: _state_is(q, second.token, "AVAILABLE"))
        # The admitter's audit rows: the user, and the token's row marked expired.
        await eventually(lambda: _audit_is(pg, first.token, "EXPIRED"))
    assert (await q.status(first.token)).record.reason == "timeout"
    row = await pg.fetchrow("SELECT reason, user_id FROM waiting_token WHERE token = $1",
                            first.token)
    assert dict(row) == {"reason": "timeout", "user_id": 1}


async def _audit_is(pg: asyncpg.Pool, token: str, state: str) -> bool:
    recorded: str | None = await pg.fetchval("SELECT state FROM waiting_token WHERE token = $1", token)
    return recorded == state


async def _state_is(q: Queues, token: str, state: str) -> bool:
    return (await q.status(token)).record.state == state
