"""The position tick: every waiting socket of this process learns its place.

Positions are worked out locally. A ticket's position is its number minus the admission cursor
minus the tickets that left the queue between the cursor and it. Each tick a process reads the
cursor and only the departures since its last tick, one round trip for every concert: the Redis
work does not grow with the number of waiters, and the CPU grows linearly with this process's
sockets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .lease import Lease
from .metrics import store_failed
from .problems import unavailable
from .queue import Queues
from .sockets import CLOSE_STORE_DOWN, CLOSE_UNKNOWN, ConcertView, Sockets, Waiter
from .ticker import every

# A tick hands the event loop back this often (sockets), so other work is never held up long.
YIELD_EVERY = 256
# An admitted socket whose deadline passed this long ago is checked against Redis.
EXPIRY_SLACK_MS = 1000
# Redis unreachable for this many ticks (and at least STORE_LOST_MIN seconds): the process's
# sockets are closed with 1013 rather than left silent; their clients reconnect with backoff.
STORE_LOST_TICKS, STORE_LOST_MIN = 5, 3.0


class PositionTick:
    def __init__(self, queues: Queues, sockets: Sockets, lease: Lease, interval: float) -> None:
        self.queues = queues
        self.sockets = sockets
        self.lease = lease
        self.interval = interval
        self.last_seconds = 0.0
        self.on_tick: Callable[[float], None] = lambda seconds: None
        self.store_lost_after = max(STORE_LOST_MIN, STORE_LOST_TICKS * interval)
        self.lost_since: float | None = None  # monotonic time of the first failed tick

    async def run(self) -> None:
        await every(self.interval, self.tick, "position tick")

    async def tick(self) -> None:
        started = time.perf_counter()
        try:
            await self.lease.renew()
        except Exception as e:
            if unavailable(e):
                store_failed(e)
                self._store_lost()
            raise
        self.lost_since = None
        concerts = [(cid, view) for cid, view in self.sockets.concerts.items() if view.waiters]
        if concerts:
            await self._update(concerts)
        self.last_seconds = time.perf_counter() - started
        self.on_tick(self.last_seconds)

    def _store_lost(self) -> None:
        """Redis did not answer: past the bound, tell every socket to come back later."""
        now = time.monotonic()
        if self.lost_since is None:
            self.lost_since = now
        elif now - self.lost_since >= self.store_lost_after:
            self.sockets.close_every(CLOSE_STORE_DOWN, b"queue store unreachable; reconnect later")

    async def _update(self, concerts: list[tuple[int, ConcertView]]) -> None:
        snapshots = await self.queues.snapshots([(cid, view.seq) for cid, view in concerts])
        recheck: list[Waiter] = []
        for (_, view), snap in zip(concerts, snapshots, strict=True):
            view.advance(snap.cursor, snap.depseq, snap.departed)
            view.rate = snap.rate
            now_ms = time.time() * 1000
            for n, waiter in enumerate(list(view.waiters), 1):
                if n % YIELD_EVERY == 0:
                    # Let admissions and expiries from pub/sub through: they must not wait
                    # for a tick over tens of thousands of sockets.
                    await asyncio.sleep(0)
                if waiter.ticket > snap.issued:
                    # Redis came back without its data: this token is gone, and the queue the
                    # snapshot describes is another one. Say so; never show its positions.
                    self.sockets.close(waiter, CLOSE_UNKNOWN, b"the queue was reset; join again")
                    continue
                if waiter.waiting and not waiter.ticket:
                    # In the pre-queue: from the opening on, ask for the place the draw gave.
                    if waiter.opens_ms is None or now_ms >= waiter.opens_ms:
                        recheck.append(waiter)
                    continue
                if waiter.waiting:
                    pos = view.position(waiter.ticket)
                    if pos <= 0:
                        recheck.append(waiter)
                        continue
                    # Pub/sub may have been missed: the snapshot says whether it is sold out.
                    await self.sockets.tell_sold_out(waiter, snap.rate.sold_out)
                    if not snap.rate.sold_out:
                        await self.sockets.position(waiter, view, pos)
                elif waiter.expires_ms is not None and now_ms > waiter.expires_ms + EXPIRY_SLACK_MS:
                    recheck.append(waiter)
        if recheck:
            await self._recheck(recheck)

    async def _recheck(self, waiters: list[Waiter]) -> None:
        """Ask Redis where tokens stand whose admission or expiry this process may have missed."""
        records = await self.queues.records([(w.concert_id, w.token) for w in waiters])
        for waiter, rec in zip(waiters, records, strict=True):
            if rec is None:
                await self.sockets.expired(waiter, "dropped")
            elif rec.state == "WAITING" and not waiter.ticket:
                waiter.ticket = rec.ticket  # drawn (or still 0): the next tick sends the place
            elif rec.state == "AVAILABLE" and waiter.waiting:
                await self.sockets.admitted(waiter, rec.expires_ms)
            elif rec.state == "EXPIRED":
                await self.sockets.expired(waiter, rec.reason or "timeout")
