"""What people may look at while they wait: dates with price ranges, and seat maps, a few
seconds stale. Every waiter may ask, so each answer is read once per process and interval and
shared (concurrent askers wait for the one read in flight)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

# How stale a preview may be, in seconds.
PREVIEW_TTL = 5.0
# Far more keys than a sale has; past it the memory starts over.
MAX_KEYS = 10_000


class Shared(Generic[K, V]):
    """A value per key, loaded at most once per ttl seconds however many ask at once."""

    def __init__(self, load: Callable[[K], Awaitable[V]], ttl: float = PREVIEW_TTL) -> None:
        self._load = load
        self._ttl = ttl
        self._entries: dict[K, tuple[float, asyncio.Task[V]]] = {}

    async def _run(self, key: K) -> V:
        return await self._load(key)

    def _forget_failure(self, key: K, task: asyncio.Task[V]) -> None:
        if not task.cancelled() and task.exception() is not None:
            if self._entries.get(key, (0.0, None))[1] is task:
                del self._entries[key]

    async def get(self, key: K) -> V:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or entry[0] < now:
            if len(self._entries) >= MAX_KEYS:
                self._entries.clear()
            # A task of its own: an asker that goes away does not cancel it for the others.
            task = asyncio.get_running_loop().create_task(self._run(key))
            task.add_done_callback(lambda t: self._forget_failure(key, t))
            entry = (now + self._ttl, task)
            self._entries[key] = entry
        return await asyncio.shield(entry[1])
