"""The admitter's booking sweeps: run-out holds, stray PENDING seats, unexpired paid tokens.

Any number may run at once: each takes its rows with SKIP LOCKED and changes them only under
the conditions it found them in.
"""

from __future__ import annotations

import dataclasses
import logging

import asyncpg

from waitingroom.queue import Queues

from . import queries
from .payments import expire_token

log = logging.getLogger(__name__)

# Rows per statement; one tick runs each sweep once.
BATCH = 1000


@dataclasses.dataclass(slots=True)
class SweepOutcome:
    expired_holds: int = 0
    released_seats: int = 0
    expired_tokens: int = 0


async def sweep(queues: Queues | None, pool: asyncpg.Pool, batch: int = BATCH) -> SweepOutcome:
    """One pass of every booking sweep."""
    out = SweepOutcome()
    out.expired_holds, out.released_seats = await queries.expire_holds(pool, batch)
    out.released_seats += await queries.release_orphans(pool, batch)
    if queues is not None:
        for row in await queries.tokens_to_expire(pool, batch):
            if not await expire_token(queues, pool, row["id"], row["token"]):
                break  # Redis is not answering: try again next tick
            out.expired_tokens += 1
    return out
