"""The admitter's booking sweeps: run-out holds, stray PENDING seats, unexpired paid tokens.

Any number may run at once: each takes its rows with SKIP LOCKED and changes them only under
the conditions it found them in.
"""

from __future__ import annotations

import dataclasses
import logging

import asyncpg

from . import queries
from .context import BookingSettings
from .gate import Gate
from .payments import expire_token

log = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class SweepOutcome:
    expired_holds: int = 0
    released_seats: int = 0
    expired_tokens: int = 0


async def sweep(gate: Gate | None, pool: asyncpg.Pool,
                settings: BookingSettings | None = None) -> SweepOutcome:
    """One pass of every booking sweep (paid tokens are expired only when a gate is given)."""
    settings = settings or BookingSettings()
    batch = settings.sweep_batch
    out = SweepOutcome()
    out.expired_holds, out.released_seats = await queries.expire_holds(pool, batch)
    out.released_seats += await queries.release_orphans(pool, batch)
    if gate is not None:
        ended = []
        for row in await queries.tokens_to_end(pool, batch):
            # Not knowing whether the payment wrote the token's audit row, it writes it again
            # (only an AVAILABLE row changes).
            if not await expire_token(gate, row["payment_id"], row["token"],
                                      settings.token_expiry_timeout):
                break  # Redis is not answering: try again next tick
            ended.append(row["payment_id"])
        if ended:
            await queries.forget_ended_tokens(pool, ended)
        out.expired_tokens = len(ended)
    return out
