"""Prometheus metrics of one web process, in a registry of its own."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.joins = Counter("waitingroom_joins", "Queue joins answered", ["result"], registry=r)
        self.polls = Counter("waitingroom_polls", "Queue status polls answered", registry=r)
        self.sockets = Gauge("waitingroom_sockets", "Open queue WebSockets", registry=r)
        self.tick_seconds = Gauge("waitingroom_position_tick_seconds",
                                  "Duration of the last position tick", registry=r)
        self.frames = Gauge("waitingroom_frames_sent", "WebSocket frames sent since start",
                            registry=r)

    def watch(self, sockets: Callable[[], float], tick: Callable[[], float],
              frames: Callable[[], float]) -> None:
        self.sockets.set_function(sockets)
        self.tick_seconds.set_function(tick)
        self.frames.set_function(frames)

    def render(self) -> bytes:
        return generate_latest(self.registry)
