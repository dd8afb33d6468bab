"""The admitter: one Lua call per concert per tick, then the audit rows and the booking sweeps.

Any number of admitters may run: the script keeps the budget in Redis, timed by Redis's clock.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from redis.exceptions import RedisError

from booking import queries as queries_booking
from booking import sweeper

from . import queries, tokenlog
from .gate import QueueGate
from .queue import Admission, Queues
from .ticker import every

log = logging.getLogger(__name__)


async def admit_concert(queues: Queues, pool: asyncpg.Pool | None, concert_id: int) -> Admission:
    """One admission tick of one concert: admit, time out, drop; tell sockets; write audit rows."""
    out = await queues.admit(concert_id)
    try:
        await queues.log_eta(concert_id, [a.ticket for a in out.admitted])
    except RedisError as e:  # measuring must never hold up admission's own bookkeeping
        log.warning("could not log the ETAs of concert %s: %r", concert_id, e)
    if out.admitted or out.timed_out:
        # Admission already happened in Redis; its rows follow now, or once PostgreSQL is back.
        await tokenlog.record(queues, pool, tokenlog.TokenChange(
            concert_id, [(a.token, a.user_id, a.ticket) for a in out.admitted], out.deadline_ms,
            out.timed_out, "timeout" if out.timed_out else None))
    return out


async def reap_dead_processes(queues: Queues) -> int:
    """Release the sockets' tokens of web processes whose lease ran out."""
    return await queues.reap(await queues.dead_processes())


async def sweep_booking(queues: Queues, pool: asyncpg.Pool) -> None:
    """Run-out holds and unexpired paid tokens; a database failure never stops admission."""
    try:
        await sweeper.sweep(QueueGate(queues, pool), pool, queues.settings.booking)
    except (OSError, asyncpg.PostgresError) as e:
        log.warning("booking sweep failed: %r", e)


async def count_stock(queues: Queues, pool: asyncpg.Pool, check: bool) -> None:
    """Tell the queues how many seats each concert has on sale (sold out at zero); with check,
    first set right any counter that drifted from a full count."""
    try:
        if check:
            repaired = await queries_booking.reconcile_stock(pool)
            if repaired:
                log.warning("seats-on-sale counters of dates %s had drifted: repaired", repaired)
        counts = await queries_booking.on_sale(pool)
    except (OSError, asyncpg.PostgresError) as e:
        log.warning("could not count the seats on sale: %r", e)
        return
    await queues.record_on_sale(counts)


async def restore_settings(queues: Queues, pool: asyncpg.Pool) -> None:
    """Settings Redis lost (it came back empty) come back from PostgreSQL before anyone is
    admitted at the defaults."""
    try:
        saved = [(r["concert_id"], r["admit_rate"], r["max_active"], r["paused"])
                 for r in await queries.queue_settings(pool)]
    except (OSError, asyncpg.PostgresError) as e:
        log.warning("could not read the queue settings: %r", e)
        return
    restored = await queues.restore(saved)
    if restored:
        log.warning("restored the settings of %s concerts to Redis", restored)


async def tick(queues: Queues, pool: asyncpg.Pool | None,
               check_stock: bool = False) -> dict[int, Admission]:
    # Admission first, so that its timing does not depend on how long the sweeps take; the
    # booking sweep runs even when Redis is down (holds run out in PostgreSQL alone). The seats
    # on sale are counted after the sweep, so that holds that ran out count as on sale again.
    outcomes = {}
    try:
        if pool is not None:
            await restore_settings(queues, pool)
            await tokenlog.catch_up(queues, pool)
        for cid in await queues.concert_ids():
            outcomes[cid] = await admit_concert(queues, pool, cid)
        await reap_dead_processes(queues)
    finally:
        if pool is not None:
            await sweep_booking(queues, pool)
    if pool is not None:
        await count_stock(queues, pool, check_stock)
    return outcomes


async def run(queues: Queues, pool: asyncpg.Pool | None) -> None:
    """Admit every tick until cancelled; check the stock counters every so often."""
    loop = asyncio.get_running_loop()
    next_check = loop.time()

    async def step() -> None:
        nonlocal next_check
        check = loop.time() >= next_check
        if check:
            next_check = loop.time() + queues.settings.stock_check_interval
        await tick(queues, pool, check)

    await every(queues.settings.tick_interval, step, "admission tick")
