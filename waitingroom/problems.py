"""RFC 9457 problem responses, request decoding and the error middleware."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import asyncpg
import msgspec
import redis.exceptions
from aiohttp import web

from . import errors
from .queue import valid_token
from .schemas import Problem

log = logging.getLogger(__name__)
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PROBLEM_TYPE = "https://waitingroom.dev/problems/"
_ENCODER = msgspec.json.Encoder()
_FIELD = re.compile(r"at `\$\.([^`\[]+)|field `([^`]+)`")
_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "The body is too large"),
}
MAX_ID = 2**63


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> web.Response:
    body = Problem(type=PROBLEM_TYPE + code, title=title, status=status, detail=detail, code=code,
                   **extra)
    return web.Response(status=status, body=_ENCODER.encode(body),
                        content_type="application/problem+json")


def _field_of(message: str) -> str | None:
    m = _FIELD.search(message)
    return (m[1] or m[2]) if m else None


@functools.cache
def _decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(kind)


def decode(body: bytes, kind: type[T]) -> T:
    """Decode and validate a JSON body, or raise ValidationFailed naming the field."""
    try:
        value: T = _decoder(cast(Any, kind)).decode(body)
        return value
    except msgspec.ValidationError as e:
        raise errors.ValidationFailed(str(e), field=_field_of(str(e))) from None
    except msgspec.DecodeError as e:
        raise errors.ValidationFailed(f"The body is not valid JSON: {e}") from None


async def read_json(request: web.Request, kind: type[T]) -> T:
    if request.content_type != "application/json":
        raise errors.UnsupportedMediaType(
            f"Send the body as application/json, not {request.content_type or 'nothing'}")
    return decode(await request.read(), kind)


def path_id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) < MAX_ID:
        raise errors.ValidationFailed(f"{name} must be a positive integer below 2^63", field=name)
    return int(raw)


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization")
    if not header:
        raise errors.TokenMissing()
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise errors.TokenInvalid("Use Authorization: Bearer <token>")
    return valid_token(value.strip())


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.DomainError as e:
        return problem(e.status, e.code, e.title, e.detail, **e.extra)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code, title = _HTTP_CODES.get(e.status, ("http_error", e.reason))
        detail = e.text if e.text and not e.text.startswith(f"{e.status}:") else title
        response = problem(e.status, code, title, detail)
        for name in ("Allow",):
            if name in e.headers:
                response.headers[name] = e.headers[name]
        return response
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
            asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.ConnectionDoesNotExistError,
            ConnectionError) as e:
        log.warning("backing service unavailable: %r", e)
        return problem(503, "service_unavailable", "A backing service is not answering",
                       "Try again in a moment")
