"""Prometheus metrics of one web process, in a registry of its own."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.joins = Counter("waitingroom_joins", "Queue joins answered", ["result"], registry=r)
        self.polls = Counter("waitingroom_polls", "Queue status polls answered", registry=r)
        self.sockets = Gauge("waitingroom_sockets", "Open queue WebSockets", registry=r)
        self.tick_seconds = Gauge("waitingroom_position_tick_seconds",
                                  "Duration of the last position tick", registry=r)
        self.gc_pauses = Histogram("waitingroom_gc_pause_seconds", "Garbage collection pauses",
                                   ["generation"], registry=r,
                                   buckets=(0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
        self._gc_started = 0.0
        self.frames = Gauge("waitingroom_frames_sent", "WebSocket frames sent since start",
                            registry=r)

    def gc_callback(self, phase: str, info: dict[str, int]) -> None:
        """gc.callbacks hook: times every collection; a long one stalls every socket."""
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_started
        self.gc_pauses.labels(str(info["generation"])).observe(pause)
        if pause > 0.1:
            log.warning("garbage collection of generation %s took %.0f ms",
                        info["generation"], pause * 1000)

    def watch(self, sockets: Callable[[], float], tick: Callable[[], float],
              frames: Callable[[], float]) -> None:
        self.sockets.set_function(sockets)
        self.tick_seconds.set_function(tick)
        self.frames.set_function(frames)

    def render(self) -> bytes:
        return generate_latest(self.registry)
