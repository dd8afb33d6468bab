"""This web process's lease in Redis: while it lives, the tokens its sockets hold are never
dropped as abandoned; once it lapses, an admitter releases them (see Queues.reap)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from .logs import describe
from .metrics import store_failed
from .problems import unavailable
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
        # Token -> concert id of tokens whose last socket here closed while Redis could not be
        # told: released by the next tick that reaches it, so no token stays held by a socket
        # that is gone.
        self.unreleased: dict[str, int] = {}
        self._busy: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    async def renew(self) -> None:
        """Renew the lease; if it had lapsed, hold this process's waiting tokens again. Then
        release the tokens whose sockets closed while Redis was away."""
        lapsed, self.others = await self.queues.lease(self.proc_id, self.lease_ms)
        if lapsed and self.sockets.by_token:
            # A long pause: an admitter may have released our sockets' tokens. Hold them again
            # before their grace period ends.
            await self.queues.hold_again(self.proc_id, self.sockets.waiting_tokens())
        for token, concert_id in list(self.unreleased.items()):
            async with self.one_at_a_time(token):
                if token not in self.sockets.by_token:  # unless a socket here holds it again
                    await self.queues.detach(concert_id, token, self.proc_id, self.others)
            self.unreleased.pop(token, None)

    @contextlib.asynccontextmanager
    async def one_at_a_time(self, token: str) -> AsyncIterator[None]:
        """Attaching and detaching one token, one at a time in this process.

        Pooled connections do not keep order: a detach for a closed socket sent just before the
        same client's reconnect could run after its attach and release a token that a socket
        holds. Within the lock, the attach and the tracking of its socket happen together."""
        entry = self._busy.get(token)
        if entry is None:
            entry = self._busy[token] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._busy[token]

    async def closed(self, waiter: Waiter) -> None:
        """A socket closed: the token's grace period starts if no socket anywhere holds it."""
        if not self.sockets.remove(waiter):
            return
        async with self.one_at_a_time(waiter.token):
            if waiter.token in self.sockets.by_token:
                return  # the same client is back on a new socket here
            try:
                await self.queues.detach(waiter.concert_id, waiter.token, self.proc_id,
                                         self.others)
            except Exception as e:
                if not unavailable(e):
                    raise
                store_failed(e)
                self.unreleased[waiter.token] = waiter.concert_id

    async def release(self) -> None:
        """Give up the lease: this process's held tokens start their grace period now.

        With Redis unreachable this is left to the admitters, once the lease runs out."""
        try:
            await self.queues.reap([self.proc_id])
        except Exception as e:
            if not (unavailable(e) or isinstance(e, OSError)):
                raise
            log.warning("could not release this process's tokens: %s", describe(e))
