"""Booking's gate, kept by the queue: who a bearer token is, and ending it once it has paid."""

from __future__ import annotations

import asyncpg
import redis.exceptions

from booking.errors import ServiceUnavailable
from booking.gate import Holder

from . import tokenlog
from .metrics import store_failed
from .queue import Queues


class QueueGate:
    """booking.gate.Gate over the Redis queue."""

    def __init__(self, queues: Queues, pool: asyncpg.Pool | None) -> None:
        self.queues = queues
        self.pool = pool

    async def holder(self, token: str) -> Holder:
        concert_id, record = await self.queues.lookup(token)
        return Holder(token, concert_id, record.user_id, record.state, record.expires_ms)

    async def complete(self, token: str, *, logged: bool = False) -> None:
        try:
            concert_id, before = await self.queues.end(token, "completed", only="AVAILABLE")
            if before.state == "AVAILABLE" and not logged:
                await tokenlog.record(self.queues, self.pool,
                                      tokenlog.TokenChange(concert_id, expired=[token],
                                                           reason="completed"))
        except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException,
                OSError) as e:
            store_failed(e)
            raise ServiceUnavailable(f"The queue is not answering: {e!r}") from e
