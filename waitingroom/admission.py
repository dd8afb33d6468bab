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

from . import draw, inventory, queries, tokenlog
from .gate import QueueGate
from .logs import describe
from .queue import Admission, Queues
from .ticker import every

log = logging.getLogger(__name__)


async def admit_concert(queues: Queues, pool: asyncpg.Pool | None, concert_id: int,
                        choice: inventory.Choice | None = None) -> Admission:
    """One admission tick of one concert: admit, time out, drop; tell sockets; write audit rows.

    choice: inventory mode's rate and bound on AVAILABLE tokens for this tick."""
    if choice is None:
        out = await queues.admit(concert_id)
    else:
        out = await queues.admit(concert_id, choice.rate_cap, choice.people_cap)
    try:
        await queues.log_eta(concert_id, [a.ticket for a in out.admitted])
    except RedisError as e:  # measuring must never hold up admission's own bookkeeping
        log.warning("could not log the ETAs of concert %s: %s", concert_id, describe(e))
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
        log.warning("booking sweep failed: %s", describe(e))


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
        log.warning("could not count the seats on sale: %s", describe(e))
        return
    await queues.record_on_sale(counts)


async def restore_settings(queues: Queues, pool: asyncpg.Pool) -> None:
    """Settings Redis lost (it came back empty) come back from PostgreSQL before anyone is
    admitted at the defaults."""
    try:
        saved = [(r["concert_id"], r["admit_rate"], r["max_active"], r["paused"],
                  r["admission_mode"]) for r in await queries.queue_settings(pool)]
    except (OSError, asyncpg.PostgresError) as e:
        log.warning("could not read the queue settings: %s", describe(e))
        return
    restored = await queues.restore(saved)
    if restored:
        log.warning("restored the settings of %s concerts to Redis", restored)
    try:
        reopened = await draw.restore(queues, pool)
    except (OSError, asyncpg.PostgresError) as e:
        log.warning("could not read the scheduled openings: %r", e)
        return
    if reopened:
        log.warning("restored the scheduled openings of %s concerts to Redis", reopened)


async def open_if_due(queues: Queues, pool: asyncpg.Pool | None, concert_id: int) -> None:
    """A concert whose opening came: its pre-queue drawn, then published (see draw.py)."""
    if pool is None:
        return
    try:
        await draw.open_if_due(queues, pool, concert_id)
    except (OSError, asyncpg.PostgresError) as e:
        # Admission waits for the draw: the opening is late while PostgreSQL is away.
        log.warning("concert %s: could not draw its opening: %r", concert_id, e)


async def demand(pool: asyncpg.Pool | None, concert_ids: list[int],
                 measures: inventory.Measures | None = None) -> dict[int, inventory.Demand] | None:
    """The seats and buyers of these concerts; None if PostgreSQL could not tell."""
    if pool is None or not concert_ids:
        return None if pool is None else {}
    try:
        return await (measures or inventory.Measures()).read(pool, concert_ids)
    except (OSError, asyncpg.PostgresError) as e:
        log.warning("could not measure the seats left: %s", describe(e))
        return None


async def choices(queues: Queues, pool: asyncpg.Pool | None, concert_ids: list[int],
                  measures: inventory.Measures | None = None) -> dict[int, inventory.Choice]:
    """Inventory mode's choice for each concert in that mode, recorded for the admin API (a
    switch back to fixed forgets it: Queues.configure)."""
    modes = await queues.modes(concert_ids)
    chosen = [cid for cid in concert_ids if modes[cid] == "inventory"]
    out: dict[int, inventory.Choice] = {}
    if chosen:
        s = queues.settings
        measured = await demand(pool, chosen, measures)
        p95 = await queues.booking_p95(int(2 * s.booking_latency_window * 1000))
        figures = await queues.figures(chosen)
        for cid in chosen:
            f = figures[cid]
            choice = inventory.choose(f.admit_rate, f.paused, f.active,
                                      None if measured is None else measured.get(cid), p95,
                                      s.booking_p95_bound, s.max_seats_per_user)
            await queues.record_choice(cid, choice.rate, choice.reason, choice.detail)
            out[cid] = choice
    return out


async def tick(queues: Queues, pool: asyncpg.Pool | None, check_stock: bool = False,
               measures: inventory.Measures | None = None) -> dict[int, Admission]:
    # Admission first, so that its timing does not depend on how long the sweeps take; the
    # booking sweep runs even when Redis is down (holds run out in PostgreSQL alone). The seats
    # on sale are counted after the sweep, so that holds that ran out count as on sale again.
    outcomes = {}
    try:
        if pool is not None:
            await restore_settings(queues, pool)
            await tokenlog.catch_up(queues, pool)
        concert_ids = await queues.concert_ids()
        chosen = await choices(queues, pool, concert_ids, measures)
        for cid in concert_ids:
            await open_if_due(queues, pool, cid)
            outcomes[cid] = await admit_concert(queues, pool, cid, chosen.get(cid))
        await reap_dead_processes(queues)
    finally:
        if pool is not None:
            await sweep_booking(queues, pool)
    if pool is not None:
        await count_stock(queues, pool, check_stock)
        if check_stock:
            await reconcile_rows(queues, pool)
    return outcomes


async def reconcile_rows(queues: Queues, pool: asyncpg.Pool) -> None:
    """Rows of admissions that an admitter stopped mid-tick never wrote (see tokenlog.reconcile)."""
    try:
        await tokenlog.reconcile(queues, pool)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        log.warning("could not check the admitted tokens' rows: %s", describe(e))


async def run(queues: Queues, pool: asyncpg.Pool | None) -> None:
    """Admit every tick until cancelled; check the stock counters every so often."""
    loop = asyncio.get_running_loop()
    next_check = loop.time()
    measures = inventory.Measures()

    async def step() -> None:
        nonlocal next_check
        check = loop.time() >= next_check
        if check:
            next_check = loop.time() + queues.settings.stock_check_interval
        await tick(queues, pool, check, measures)

    await every(queues.settings.tick_interval, step, "admission tick")
