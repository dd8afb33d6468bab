"""The one middleware every request passes through: its id, its rate limit, its timing (every
answer for the metrics, booking calls for the latency window), every failure turned into a
problem, and the safety headers (headers.py) on every answer. One layer rather than one per
concern: each layer is a coroutine and a frame more on every request, and joins are the hot path
of a sale."""

from __future__ import annotations

import random
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from . import ratelimit
from .headers import HEADERS
from .latency import BOOKING_PATHS, LatencyWindow
from .logs import request_id
from .metrics import Metrics
from .problems import http_problem, problem_of


def edge_middleware(metrics: Metrics, window: LatencyWindow) -> Middleware:
    @web.middleware
    async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
        # 16 hex digits. An id need only be unique, not unguessable: no system call for it.
        rid = f"{random.getrandbits(64):016x}"
        token = request_id.set(rid)
        try:
            started = time.perf_counter()
            try:
                bucket = ratelimit.bucket_of(request)
                if bucket is not None and bucket[2] > 0:
                    await ratelimit.take(request, bucket)
                if request.path.startswith(BOOKING_PATHS):
                    # The handler alone: a refusal at the door says nothing of the booking API.
                    start = time.perf_counter()
                    try:
                        response = await handler(request)
                    finally:
                        window.add((time.perf_counter() - start) * 1000)
                else:
                    response = await handler(request)
            except web.HTTPException as e:
                if e.status < 400:  # a redirect is an answer, not a failure
                    e.headers.update(HEADERS)
                    e.headers["X-Request-Id"] = rid
                    raise
                response = http_problem(e)
            except Exception as e:
                response = problem_of(request, e)
            metrics.answered(request, response, time.perf_counter() - started)
        finally:
            request_id.reset(token)
        if not response.prepared:  # a WebSocket's headers went out with its upgrade
            headers = response.headers
            headers.update(HEADERS)
            headers["X-Request-Id"] = rid
        return response

    return edge
