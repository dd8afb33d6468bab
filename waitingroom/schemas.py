"""Wire types: request and response bodies, WebSocket frames and pub/sub events."""

from __future__ import annotations

from typing import Annotated

import msgspec

from booking.gate import TokenState
from booking.wire import Id, Request, Response

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


class QueuePatch(Request):
    admit_rate: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] | msgspec.UnsetType = msgspec.UNSET
    max_active: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)] | msgspec.UnsetType = msgspec.UNSET
    paused: bool | msgspec.UnsetType = msgspec.UNSET


class QueueSummary(Response):
    waiting: int
    active: int
    admit_rate: float
    paused: bool
    sold_out: bool


class ConcertOut(Response):
    id: int
    name: str
    host: str
    queue: QueueSummary


class JoinOut(Response):
    token: str
    state: TokenState
    position: int | None
    eta_seconds: int | None
    expires_at: str | None
    ws_url: str


class QueueStatusOut(Response):
    state: TokenState
    position: int | None
    eta_seconds: int | None
    expires_at: str | None
    concert_id: int
    reason: ExpiryReason | None
    sold_out: bool


class AdminQueueOut(Response):
    concert_id: int
    waiting: int
    active: int
    admitted_total: int
    dropped_total: int
    admit_rate: float
    max_active: int
    paused: bool


class LimitsOut(Response):
    """The server's limits and windows, so that pages never repeat them."""

    charge_min: int
    charge_max: int
    max_seats_per_user: int
    hold_ttl_seconds: int
    active_ttl_seconds: int
    wait_grace_seconds: int


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
    position: int
    eta_seconds: int | None
    admit_rate: float


class AdmittedFrame(Frame, tag="admitted"):
    expires_at: str | None
    concert_id: int


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
