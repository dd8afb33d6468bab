"""The booking API's latency as this web process sees it, reported to Redis every second, where
the admitter reads the worst p95 across processes (inventory-aware admission slows down while it
is above its bound). The hot path (edge.py) only appends to a bounded deque."""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable

from .queue import Queues

# The booking API's calls (holds, payments, balance, seat maps); the queue's own are not timed.
BOOKING_PATHS = ("/api/v1/reservations", "/api/v1/payments", "/api/v1/balance",
                 "/api/v1/schedules/")
# At most this many recent calls are kept: the p95 of the newest of them.
KEEP = 20_000


class LatencyWindow:
    """Durations of this process's recent booking calls, in milliseconds."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self.samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=KEEP)

    def add(self, ms: float) -> None:
        self.samples.append((self.clock(), ms))

    def p95(self) -> float | None:
        """The 95th percentile over the window (nearest rank); None without calls in it."""
        since = self.clock() - self.window
        while self.samples and self.samples[0][0] < since:
            self.samples.popleft()
        if not self.samples:
            return None
        ordered = sorted(ms for _, ms in self.samples)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


async def report(queues: Queues, window: LatencyWindow, proc_id: str) -> None:
    """One report of this process's p95 (nothing without calls: the last one goes stale)."""
    p95 = window.p95()
    if p95 is not None:
        await queues.report_latency(proc_id, p95)
