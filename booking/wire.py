"""The JSON edge shared by every HTTP handler: base types, decoding that names the bad field,
answers, path ids and bearer tokens."""

from __future__ import annotations

import functools
import re
import uuid
from typing import Annotated, Any, TypeVar, cast

import msgspec
from aiohttp import web

from . import errors

T = TypeVar("T")

MAX_ID = 2**63 - 1
Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID, description="A positive integer below 2^63")]
# Answer figures, so that the OpenAPI document states their ranges and formats.
Count = Annotated[int, msgspec.Meta(ge=0)]
Won = Annotated[int, msgspec.Meta(ge=0, description="Integer won")]
Time = Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"},
                                   description="RFC 3339, UTC, whole seconds")]


class Request(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: an unknown field is an error."""


class Response(msgspec.Struct, kw_only=True):
    pass


_ENCODER = msgspec.json.Encoder()
_FIELD = re.compile(r"at `\$\.([^`\[]+)|field `([^`]+)`")


def encode(body: object) -> bytes:
    return _ENCODER.encode(body)


def reply(body: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_ENCODER.encode(body), content_type="application/json")


def _field_of(message: str) -> str | None:
    m = _FIELD.search(message)
    return (m[1] or m[2]) if m else None


@functools.cache
def _decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(kind)


# Floats up to this size spell their integer exactly.
_EXACT = 2**53


def _whole(value: Any) -> Any:
    """The value with every whole float that spells its integer exactly (2.0) made that integer."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= _EXACT:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole(v) for v in value]
    return value


def decode(body: bytes, kind: type[T]) -> T:
    """Decode and validate a JSON body, or raise ValidationFailed naming the field.

    As in JSON Schema, a whole number is an integer however it is written (2, 2.0, 2e0)."""
    try:
        try:
            value: T = _decoder(cast(Any, kind)).decode(body)
        except msgspec.ValidationError:
            # The slow way only for a body the fast one refused: it may spell integers as floats.
            value = msgspec.convert(_whole(msgspec.json.decode(body)), cast(Any, kind))
        return value
    except msgspec.ValidationError as e:
        raise errors.ValidationFailed(str(e), field=_field_of(str(e))) from None
    except msgspec.DecodeError as e:
        raise errors.ValidationFailed(f"The body is not valid JSON: {e}") from None
    except UnicodeDecodeError:
        # msgspec checks UTF-8 in keys only as it decodes them, and says so this way.
        raise errors.ValidationFailed("The body is not valid UTF-8") from None


async def read_json(request: web.Request, kind: type[T]) -> T:
    # The header as clients nearly always send it is told without parsing it (and copying what
    # the parse found) on every request.
    if request.headers.get("Content-Type") != "application/json" and \
            request.content_type != "application/json":
        raise errors.UnsupportedMediaType(
            f"Send the body as application/json, not {request.content_type or 'nothing'}")
    return decode(await request.read(), kind)


def path_id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        raise errors.ValidationFailed(f"{name} must be a positive integer below 2^63", field=name)
    return int(raw)


def valid_token(token: str | None) -> str:
    """The canonical form of a queue token (a UUID), or TokenInvalid: a malformed one goes no
    further."""
    if not token or len(token) != 36:
        raise errors.TokenInvalid()
    try:
        return str(uuid.UUID(token))
    except ValueError:
        raise errors.TokenInvalid() from None


def bearer(request: web.Request) -> str:
    """The request's queue token from `Authorization: Bearer <token>`."""
    header = request.headers.get("Authorization")
    if not header:
        raise errors.TokenMissing()
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise errors.TokenInvalid("Use Authorization: Bearer <token>")
    return valid_token(value.strip())
