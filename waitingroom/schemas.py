"""Wire types: request and response bodies, WebSocket frames and pub/sub events."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from booking.gate import TokenState
from booking.wire import Count, Id, Request, Response, Time

from .records import ExpiryReason

Jwt = Annotated[str, msgspec.Meta(min_length=1, max_length=4096,
                                   description="A JWT from the selling site: sub = user id, exp")]


class JoinRequest(Request):
    """Join with a signed identity; user_id alone only where unsigned joins are allowed."""

    identity: Jwt | msgspec.UnsetType = msgspec.UNSET
    user_id: Id | msgspec.UnsetType = msgspec.UNSET


class SignInRequest(Request):
    user_id: Id


class IdentityOut(Response):
    identity: str


Rate = Annotated[float, msgspec.Meta(ge=0, le=1_000_000, description="Admissions per second")]
MaxActive = Annotated[int, msgspec.Meta(ge=0, le=100_000_000,
                                        description="Most AVAILABLE tokens at once")]
Token = Annotated[str, msgspec.Meta(extra_json_schema={"format": "uuid"},
                                    description="A queue token (a UUID)")]
Position = Annotated[int, msgspec.Meta(ge=1, description="1 for the next to be admitted")]
Seconds = Annotated[int, msgspec.Meta(ge=1)]
EtaRange = Annotated[list[Count], msgspec.Meta(
    min_length=2, max_length=2,
    description="[low, high] seconds: how far the ETA may be off, from how steady the measured "
                "admission rate is; low <= eta_seconds <= high. null when eta_seconds is")]


class QueuePatch(Request):
    admit_rate: Rate | msgspec.UnsetType = msgspec.UNSET
    max_active: MaxActive | msgspec.UnsetType = msgspec.UNSET
    paused: bool | msgspec.UnsetType = msgspec.UNSET


class QueueSummary(Response):
    waiting: Count
    active: Count
    admit_rate: Rate
    paused: bool
    sold_out: bool


class ConcertOut(Response):
    id: Id
    name: str
    host: str
    queue: QueueSummary


class JoinOut(Response):
    token: Token
    state: TokenState
    position: Position | None
    eta_seconds: Count | None
    expires_at: Time | None
    ws_url: Annotated[str, msgspec.Meta(extra_json_schema={"format": "uri"})]
    eta_range: EtaRange | None


class QueueStatusOut(Response):
    state: TokenState
    position: Position | None
    eta_seconds: Count | None
    expires_at: Time | None
    concert_id: Id
    reason: ExpiryReason | None
    sold_out: bool
    eta_range: EtaRange | None


Ratio = Annotated[float, msgspec.Meta(ge=0)]


class EtaError(Response):
    """How far the ETAs given were off: |predicted - actual| / actual over the last scored
    predictions (at joining and at each whole minute of waiting) of admitted tokens."""

    median: Ratio | None
    p90: Ratio | None
    samples: Count


class AdminQueueOut(Response):
    concert_id: Id
    waiting: Count
    active: Count
    admitted_total: Count
    dropped_total: Count
    admit_rate: Rate
    max_active: MaxActive
    paused: bool
    eta_error: EtaError


class LimitsOut(Response):
    """The server's limits and windows, so that pages never repeat them."""

    charge_min: Annotated[int, msgspec.Meta(ge=1)]
    charge_max: Annotated[int, msgspec.Meta(ge=1)]
    max_seats_per_user: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    hold_ttl_seconds: Seconds
    active_ttl_seconds: Seconds
    wait_grace_seconds: Seconds


class StatusOut(Response):
    status: Literal["ok", "ready"]


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None
    seats: list[int] | None = None
    request_id: str | None = None


# WebSocket frames, server -> client.
class Frame(msgspec.Struct, tag_field="type", kw_only=True):
    pass


class PositionFrame(Frame, tag="position"):
    position: Position
    eta_seconds: Count | None
    admit_rate: Annotated[float, msgspec.Meta(ge=0, description="Measured, else configured")]
    eta_range: EtaRange | None


class AdmittedFrame(Frame, tag="admitted"):
    expires_at: Time | None
    concert_id: Id


class ExpiredFrame(Frame, tag="expired"):
    reason: ExpiryReason


class SoldOutFrame(Frame, tag="sold_out"):
    concert_id: int


class PongFrame(Frame, tag="pong"):
    pass


# Client -> server.
class PingFrame(msgspec.Struct, tag_field="type", tag="ping"):
    pass


# Pub/sub events on a concert's channel, between processes.
class Event(msgspec.Struct, tag_field="k", array_like=True):
    pass


class AdmittedEvent(Event, tag="a"):
    tokens: list[str]
    expires_ms: int


class ExpiredEvent(Event, tag="e"):
    tokens: list[str]
    reason: ExpiryReason


class SoldOutEvent(Event, tag="s"):
    """A concert sold out (or, sold_out false, has seats on sale again)."""

    concert_id: int
    sold_out: bool


AnyEvent = AdmittedEvent | ExpiredEvent | SoldOutEvent
