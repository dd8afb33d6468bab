"""Prometheus metrics of one web process, in a registry of its own."""

from __future__ import annotations

import bisect
import collections
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import asyncpg
import redis.asyncio
import redis.exceptions
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

Store = Literal["redis", "postgres"]
STORES: tuple[Store, ...] = ("redis", "postgres")
# Per process, whichever app, pool or loop saw them: the pools' connections are made deep in
# redis-py and asyncpg, far from any app.
_opened: collections.Counter[Store] = collections.Counter()
_failures: collections.Counter[Store] = collections.Counter()


def connection_opened(store: Store) -> None:
    """A connection to a store was made: after start-up, each one is a reconnect."""
    _opened[store] += 1


def store_failed(e: BaseException) -> None:
    """A store did not answer (a request answered 503, a background loop's call failed)."""
    if isinstance(e, redis.exceptions.RedisError):
        _failures["redis"] += 1
    elif isinstance(e, (asyncpg.PostgresError, asyncpg.InterfaceError,
                        asyncpg.InternalClientError)):
        _failures["postgres"] += 1


class CountedConnection(redis.asyncio.Connection):
    """A Redis connection that counts itself each time it connects (reconnects included)."""

    async def on_connect_check_health(self, check_health: bool = True) -> None:
        await super().on_connect_check_health(check_health)
        connection_opened("redis")


class _StoreCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        opened = CounterMetricFamily(
            "waitingroom_store_connections_opened", "Connections made to Redis and PostgreSQL by "
            "this process (a rise after start-up: reconnects)", labels=["store"])
        failed = CounterMetricFamily(
            "waitingroom_store_errors", "Calls to Redis and PostgreSQL that failed because the "
            "store did not answer (requests answered 503, background loops)", labels=["store"])
        for store in STORES:
            opened.add_metric([store], _opened[store])
            failed.add_metric([store], _failures[store])
        yield opened
        yield failed


# Upper bounds of the request duration histogram's buckets, in seconds.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# A method label is one of these or "other": a client may send any token as a method, and each
# new label would be a series kept for good.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _RequestDurations(Collector):
    """waitingroom_http_request_duration_seconds: every answer counted here, in plain lists, and
    handed to prometheus_client as a histogram when scraped. A prometheus_client Histogram
    takes a lock twice and walks its buckets on every observation, which cost a join more than
    its own answer did; this process counts from its event loop alone, where scrapes run too."""

    name = "waitingroom_http_request_duration_seconds"

    def __init__(self) -> None:
        # By (route's resource, method label, status): the count per bucket, +Inf last, then the
        # sum of durations. Resources are a fixed set and statuses few: this stays small.
        self._series: dict[tuple[Any, str, int], list[float]] = {}
        self._labels: dict[tuple[Any, str, int], tuple[str, str, str]] = {}

    def observe(self, request: web.Request, status: int, seconds: float) -> None:
        method = request.method
        key = (request.match_info.route.resource, method if method in METHODS else "other", status)
        counts = self._series.get(key)
        if counts is None:
            counts = self._series[key] = [0.0] * (len(REQUEST_BUCKETS) + 2)
            self._labels[key] = (route_of(request), key[1], str(status))
        counts[bisect.bisect_left(REQUEST_BUCKETS, seconds)] += 1
        counts[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, "HTTP requests by route, method and status",
                                       labels=["route", "method", "status"])
        merged: dict[tuple[str, str, str], list[float]] = {}
        for key, counts in self._series.items():  # resources of one template count as one
            into = merged.setdefault(self._labels[key], [0.0] * len(counts))
            for i, n in enumerate(counts):
                into[i] += n
        bounds = [str(b) for b in REQUEST_BUCKETS] + ["+Inf"]  # as "0.001", "1.0"
        for labels, counts in merged.items():
            cumulative = list(itertools.accumulate(counts[:-1]))
            family.add_metric(list(labels), list(zip(bounds, cumulative, strict=True)),
                              sum_value=counts[-1])
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.joins = Counter("waitingroom_joins", "Queue joins answered", ["result"], registry=r)
        # Its two children, ready: a join counts itself without labels() each time.
        self.joins_new, self.joins_again = self.joins.labels("new"), self.joins.labels("again")
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
        self.aborted = Gauge("waitingroom_sockets_cut_off", "Sockets cut off (floods, no reading)",
                             registry=r)
        self.ticks = Histogram("waitingroom_position_tick_duration_seconds",
                               "Position ticks of this process", registry=r,
                               buckets=(0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
        self.requests = _RequestDurations()
        r.register(self.requests)
        self.problems = Counter("waitingroom_problems", "Problem answers by code (conflicts, "
                                "limits, outages and all)", ["code"], registry=r)
        self.pg_pool = Gauge("waitingroom_pg_connections", "PostgreSQL pool connections",
                             ["state"], registry=r)
        r.register(_StoreCollector())
        # Per concert, read from Redis when scraped: the whole sale as every process sees it.
        concert = ["concert_id"]
        self.waiting = Gauge("waitingroom_queue_waiting", "Tokens waiting", concert, registry=r)
        self.active = Gauge("waitingroom_queue_active", "Tokens admitted and not yet ended", concert,
                            registry=r)
        self.admitted = Gauge("waitingroom_queue_admitted_total", "Tokens admitted since the start",
                              concert, registry=r)
        self.dropped = Gauge("waitingroom_queue_dropped_total", "Waiting tokens dropped as abandoned",
                             concert, registry=r)
        self.ended = Gauge("waitingroom_queue_ended_total", "Tokens ended, by reason (timeout, "
                           "left, completed, dropped)", ["concert_id", "reason"], registry=r)
        self.rate = Gauge("waitingroom_queue_admission_rate", "Measured admissions per second (the "
                          "configured rate until enough is measured)", concert, registry=r)
        self.configured_rate = Gauge("waitingroom_queue_configured_rate", "Configured admissions "
                                     "per second", concert, registry=r)
        self.sold_out = Gauge("waitingroom_queue_sold_out", "1 while no seat is on sale", concert,
                              registry=r)
        self.on_sale = Gauge("waitingroom_seats_on_sale", "Seats on sale, as the admitter last "
                             "counted them (-1: not known)", concert, registry=r)

        self.eta_error_q = Gauge("waitingroom_eta_error_ratio", "Relative error of the ETAs given "
                               "(|predicted - actual| / actual) over the latest scored "
                               "predictions, by quantile (NaN: none yet)", ["concert_id", "quantile"],
                               registry=r)
        self.eta_samples = Gauge("waitingroom_eta_error_samples", "Scored ETA predictions behind "
                                 "waitingroom_eta_error_ratio", concert, registry=r)

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
              frames: Callable[[], float], aborted: Callable[[], float]) -> None:
        self.sockets.set_function(sockets)
        self.tick_seconds.set_function(tick)
        self.frames.set_function(frames)
        self.aborted.set_function(aborted)

    def concert(self, concert_id: int, waiting: int, active: int, admitted: int, dropped: int,
                rate: float, configured: float, sold_out: bool, on_sale: int,
                ended: dict[str, int]) -> None:
        cid = str(concert_id)
        for reason, count in ended.items():
            self.ended.labels(cid, reason).set(count)
        self.waiting.labels(cid).set(waiting)
        self.active.labels(cid).set(active)
        self.admitted.labels(cid).set(admitted)
        self.dropped.labels(cid).set(dropped)
        self.rate.labels(cid).set(rate)
        self.configured_rate.labels(cid).set(configured)
        self.sold_out.labels(cid).set(1 if sold_out else 0)
        self.on_sale.labels(cid).set(on_sale)

    def eta_error(self, concert_id: int, median: float | None, p90: float | None,
                  samples: int) -> None:
        cid = str(concert_id)
        self.eta_error_q.labels(cid, "0.5").set(math.nan if median is None else median)
        self.eta_error_q.labels(cid, "0.9").set(math.nan if p90 is None else p90)
        self.eta_samples.labels(cid).set(samples)

    def answered(self, request: web.Request, response: web.StreamResponse, seconds: float) -> None:
        """One answer: its duration by route, method and status, and its problem code if any."""
        self.requests.observe(request, response.status, seconds)
        # Most answers keep nothing in their own mapping, and a get() that misses costs a
        # KeyError raised and caught.
        code = response.get(PROBLEM_CODE) if len(response) else None
        if code is not None:
            self.problems.labels(code).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


# Where problems.problem() leaves an answer's problem code (a response's own mapping).
PROBLEM_CODE = web.ResponseKey("problem_code", str)


def route_of(request: web.Request) -> str:
    """The route's template (/api/v1/reservations/{reservation_id}), never the raw path."""
    route = request.match_info.route
    info = route.resource.canonical if route.resource is not None else None
    return info or "unmatched"
