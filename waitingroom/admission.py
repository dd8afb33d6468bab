"""The admitter: one Lua call per concert per tick, then the news to the sockets and the audit rows.

Any number of admitters may run: the script keeps the budget in Redis, timed by Redis's clock.
"""

from __future__ import annotations

import dataclasses
import logging

import asyncpg

from booking import sweeper

from . import keys, queries
from .hub import reap
from .queue import Queues, concert_keys, publish, redis_ms
from .records import text
from .schemas import AdmittedEvent, ExpiredEvent
from .ticker import every

log = logging.getLogger(__name__)

# At most this many tokens admitted, timed out or dropped per concert per tick.
BATCH = 10_000


@dataclasses.dataclass(slots=True)
class TickOutcome:
    admitted: list[str] = dataclasses.field(default_factory=list)
    timed_out: list[str] = dataclasses.field(default_factory=list)
    dropped: list[str] = dataclasses.field(default_factory=list)


async def admit_concert(queues: Queues, pool: asyncpg.Pool | None, concert_id: int) -> TickOutcome:
    """One admission tick of one concert: admit, time out, drop; tell sockets; write audit rows."""
    s = queues.settings
    admitted_raw, timed_out_raw, dropped_raw, deadline = await queues.scripts.admit(
        keys=concert_keys(concert_id),
        args=[s.admit_rate, s.max_active, s.active_ttl * 1000, s.wait_grace * 1000,
              s.token_retention * 1000, BATCH, s.tick_interval])
    out = TickOutcome(
        admitted=[t.decode() for t in admitted_raw[0::3]],
        timed_out=[t.decode() for t in timed_out_raw],
        dropped=[t.decode() for t in dropped_raw],
    )
    redis = queues.redis
    if out.admitted:
        await publish(redis, concert_id, AdmittedEvent(tokens=out.admitted, expires_ms=int(deadline)))
    for reason, tokens in (("timeout", out.timed_out), ("dropped", out.dropped)):
        if not tokens:
            continue
        await publish(redis, concert_id, ExpiredEvent(tokens=tokens, reason=reason))  # type: ignore[arg-type]
        async with redis.pipeline(transaction=False) as pipe:
            for token in tokens:
                pipe.expire(keys.token_index(token), s.token_retention)
            await pipe.execute()
    if pool is not None and (out.admitted or out.timed_out):
        try:
            async with pool.acquire() as conn:
                if out.admitted:
                    async with conn.transaction():
                        await queries.record_admitted(
                            conn, concert_id, out.admitted,
                            [int(u) for u in admitted_raw[1::3]],
                            [int(t) for t in admitted_raw[2::3]], int(deadline))
                if out.timed_out:
                    await queries.record_expired(conn, out.timed_out, "timeout")
        except (OSError, asyncpg.PostgresError) as e:
            # Admission already happened in Redis; the audit rows are best effort.
            log.warning("could not record admissions of concert %s: %r", concert_id, e)
    return out


async def reap_dead_processes(queues: Queues) -> int:
    """Release the sockets' tokens of web processes whose lease ran out."""
    redis = queues.redis
    now_ms = await redis_ms(redis)
    dead = [text(p) for p in await redis.zrangebyscore(keys.PROCS, "-inf", now_ms)]
    return await reap(queues, dead)


async def sweep_booking(queues: Queues, pool: asyncpg.Pool) -> None:
    """Run-out holds and unexpired paid tokens; a database failure never stops admission."""
    try:
        await sweeper.sweep(queues, pool)
    except (OSError, asyncpg.PostgresError) as e:
        log.warning("booking sweep failed: %r", e)


async def tick(queues: Queues, pool: asyncpg.Pool | None) -> dict[int, TickOutcome]:
    # Admission first, so that its timing does not depend on how long the sweeps take; the
    # booking sweep runs even when Redis is down (holds run out in PostgreSQL alone).
    outcomes = {}
    try:
        for raw in await queues.redis.smembers(keys.CONCERTS):
            cid = int(text(raw))
            outcomes[cid] = await admit_concert(queues, pool, cid)
        await reap_dead_processes(queues)
    finally:
        if pool is not None:
            await sweep_booking(queues, pool)
    return outcomes


async def run(queues: Queues, pool: asyncpg.Pool | None) -> None:
    """Admit every tick until cancelled."""
    await every(queues.settings.tick_interval, lambda: tick(queues, pool), "admission tick")
