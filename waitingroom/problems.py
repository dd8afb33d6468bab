"""RFC 9457 problem answers: every failure a request meets, turned into one (by edge.py)."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import asyncpg
import redis.exceptions
from aiohttp import web

from booking.errors import DomainError, ServiceUnavailable, from_violation
from booking.wire import encode

from .logs import describe, request_id
from .metrics import PROBLEM_CODE, store_failed
from .schemas import Problem

log = logging.getLogger(__name__)

PROBLEM_TYPE = "https://waitingroom.dev/problems/"
_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "The body is too large"),
}
# A backing service that does not answer: the client may try again shortly.
# (InterfaceError: a connection that PostgreSQL closed in the middle of a request.)
_UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                redis.exceptions.BusyLoadingError, redis.exceptions.TryAgainError,
                # Redis Cluster: a failover under way (CLUSTERDOWN, a slot with no primary yet).
                redis.exceptions.ClusterDownError, redis.exceptions.SlotNotCoveredError,
                asyncpg.exceptions.PostgresConnectionError, asyncpg.exceptions.InterfaceError,
                asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.CrashShutdownError,
                asyncpg.exceptions.TooManyConnectionsError, ConnectionError, TimeoutError)


# SQLSTATE classes that mean "the database is not there right now": connection exceptions,
# operator intervention (shutdown, restart), insufficient resources (too many connections).
_UNAVAILABLE_SQLSTATES = ("08", "57", "53")


# asyncpg on a pooled connection whose server process was terminated while it was idle: the
# server's last words (an error) were read, the end of the connection not yet, and the
# connection still consumes that error (its protocol's state 2) when the next query comes.
_TERMINATED_UNDER_US = re.compile(r"cannot switch to state \d+; another operation \(2\) is in progress")


def unavailable(e: BaseException) -> bool:
    """Whether this failure is a backing service not answering (503), not a bug."""
    if isinstance(e, _UNAVAILABLE):
        return True
    if isinstance(e, asyncpg.InternalClientError):
        return _TERMINATED_UNDER_US.fullmatch(str(e)) is not None
    if isinstance(e, asyncpg.PostgresError):
        state = e.sqlstate or ""
        # 55000 at connect: a database that is not accepting connections (being restored,
        # or taken offline by its operator).
        return state[:2] in _UNAVAILABLE_SQLSTATES or (
            state == "55000" and "accepting connections" in str(e))
    return False


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> web.Response:
    """A problem+json answer; it names the request's id (as its log lines do) when there is one."""
    extra.setdefault("request_id", request_id.get())
    body = Problem(type=PROBLEM_TYPE + code, title=title, status=status, detail=detail, code=code,
                   **extra)
    response = web.Response(status=status, body=encode(body),
                            content_type="application/problem+json")
    response[PROBLEM_CODE] = code
    return response


def _domain(e: DomainError) -> web.Response:
    response = problem(e.status, e.code, e.title, e.detail, **e.extra)
    response.headers.update(e.headers)
    return response


def http_problem(e: web.HTTPException) -> web.Response:
    """The framework's own failures (404, 405, 413 …) as problems."""
    code, title = _HTTP_CODES.get(e.status, ("http_error", e.reason))
    detail = e.text if e.text and not e.text.startswith(f"{e.status}:") else title
    response = problem(e.status, code, title, detail)
    if "Allow" in e.headers:
        response.headers["Allow"] = e.headers["Allow"]
    return response


def _bug(request: web.Request, e: BaseException) -> web.Response:
    rid = request_id.get() or uuid.uuid4().hex[:16]
    log.error("request %s: %s %s failed", rid, request.method, request.path, exc_info=e)
    return problem(500, "internal_error", "Something went wrong on our side",
                   f"Quote request id {rid} when you report it", request_id=rid)


def problem_of(request: web.Request, e: Exception) -> web.Response:
    """The problem answer to a failure a handler raised (an HTTPException of 400 and up is
    http_problem's): a domain error's own, 503 for a backing service down, else a bug's 500."""
    if isinstance(e, DomainError):
        return _domain(e)
    if isinstance(e, asyncpg.IntegrityConstraintViolationError):
        mapped = from_violation(e)
        return _domain(mapped) if mapped is not None else _bug(request, e)
    if unavailable(e):
        store_failed(e)
        log.warning("backing service unavailable: %s", describe(e))
        return _domain(ServiceUnavailable("Try again in a moment"))
    return _bug(request, e)  # a bug: the client still gets a problem, the log the traceback
