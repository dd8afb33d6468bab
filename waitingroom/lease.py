"""This web process's lease in Redis: while it lives, the tokens its sockets hold are never
dropped as abandoned; once it lapses, an admitter releases them (see Queues.reap)."""

from __future__ import annotations

import logging
import uuid

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .queue import Queues
from .sockets import Sockets, Waiter

log = logging.getLogger(__name__)


class Lease:
    def __init__(self, queues: Queues, sockets: Sockets, tick_interval: float) -> None:
        self.queues = queues
        self.sockets = sockets
        self.proc_id = uuid.uuid4().hex
        # Long enough to survive a few slow ticks, never under two seconds.
        self.lease_ms = int(max(2.0, 5 * tick_interval) * 1000)
        self.others: list[str] = []

    async def renew(self) -> None:
        """Renew the lease; if it had lapsed, hold this process's waiting tokens again."""
        lapsed, self.others = await self.queues.lease(self.proc_id, self.lease_ms)
        if lapsed and self.sockets.by_token:
            # A long pause: an admitter may have released our sockets' tokens. Hold them again
            # before their grace period ends.
            await self.queues.hold_again(self.proc_id, self.sockets.waiting_tokens())

    async def closed(self, waiter: Waiter) -> None:
        """A socket closed: the token's grace period starts if no socket anywhere holds it."""
        if self.sockets.remove(waiter):
            await self.queues.detach(waiter.concert_id, waiter.token, self.proc_id, self.others)

    async def release(self) -> None:
        """Give up the lease: this process's held tokens start their grace period now.

        With Redis unreachable this is left to the admitters, once the lease runs out."""
        try:
            await self.queues.reap([self.proc_id])
        except (RedisConnectionError, RedisTimeoutError, OSError) as e:
            log.warning("could not release this process's tokens: %r", e)
