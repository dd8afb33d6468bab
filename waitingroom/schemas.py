"""Wire types: request and response bodies, WebSocket frames and pub/sub events."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from booking.gate import TokenState
from booking.wire import Count, Id, Request, Response, Time

from .records import AdmissionMode, ExpiryReason

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


AdmissionModeField = Annotated[AdmissionMode, msgspec.Meta(
    description="fixed: admit at admit_rate; inventory: the admitter chooses the rate, never "
                "more admitted than the seats left can serve, slower while the booking API is "
                "slow, admit_rate at most")]
Opening = Annotated[str, msgspec.Meta(
    max_length=40, extra_json_schema={"format": "date-time"},
    description="RFC 3339 with an offset, rounded up to the whole second; a time already past "
                "opens now. null opens a waiting pre-queue now")]
PreQueue = Annotated[bool, msgspec.Meta(
    description="Waiting for a scheduled opening: no position until the draw at opens_at")]
OpensAt = Annotated[str | None, msgspec.Meta(
    extra_json_schema={"format": "date-time"},
    description="The scheduled opening this token waits for (pre-queue only)")]


class QueuePatch(Request):
    admit_rate: Rate | msgspec.UnsetType = msgspec.UNSET
    max_active: MaxActive | msgspec.UnsetType = msgspec.UNSET
    paused: bool | msgspec.UnsetType = msgspec.UNSET
    admission_mode: AdmissionModeField | msgspec.UnsetType = msgspec.UNSET
    opens_at: Opening | msgspec.UnsetType | None = msgspec.UNSET


class WhatIfRequest(Request):
    """Proposed settings; a field left out keeps its current value."""

    admit_rate: Rate | msgspec.UnsetType = msgspec.UNSET
    max_active: MaxActive | msgspec.UnsetType = msgspec.UNSET


OptSeconds = Annotated[int, msgspec.Meta(ge=0)] | None


class WhatIfCase(Response):
    """The queue under one set of settings. Seconds from now; null: never at that rate."""

    admit_rate: Rate
    max_active: MaxActive
    rate: Annotated[float, msgspec.Meta(ge=0, description=(
        "Admissions per second expected: admit_rate, or what inventory mode would choose; 0 "
        "when paused, sold out or max_active is reached"))]
    drain_seconds: OptSeconds
    median_eta_seconds: OptSeconds
    last_eta_seconds: OptSeconds
    max_active_full: Annotated[bool, msgspec.Meta(
        description="active >= max_active: nobody is admitted until someone leaves")]


class WhatIfOut(Response):
    concert_id: Id
    waiting: Count
    active: Count
    admission_mode: AdmissionMode
    paused: Annotated[bool, msgspec.Meta(
        description="Paused now: now shows nobody moving, proposed what happens once resumed")]
    sold_out: bool
    now: WhatIfCase
    proposed: WhatIfCase
    seats_left: Count | None  # null: the seat figures could not be read
    seats_per_buyer: Annotated[float, msgspec.Meta(ge=0)] | None
    seats_per_buyer_measured: bool
    buyers_left: Count | None
    seats_run_out_first: Annotated[bool, msgspec.Meta(
        description="The seats left serve fewer people than are waiting")]
    runs_out_at_position: Annotated[int, msgspec.Meta(ge=1)] | None
    runs_out_in_seconds: OptSeconds


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


class JoinOut(Response, omit_defaults=True):
    """pre_queue and opens_at are there only in the pre-queue."""

    token: Token
    state: TokenState
    position: Position | None
    eta_seconds: Count | None
    expires_at: Time | None
    ws_url: Annotated[str, msgspec.Meta(extra_json_schema={"format": "uri"})]
    eta_range: EtaRange | None
    pre_queue: PreQueue = False
    opens_at: OpensAt = None


class QueueStatusOut(Response, omit_defaults=True):
    """pre_queue and opens_at are there only in the pre-queue."""

    state: TokenState
    position: Position | None
    eta_seconds: Count | None
    expires_at: Time | None
    concert_id: Id
    reason: ExpiryReason | None
    sold_out: bool
    eta_range: EtaRange | None
    pre_queue: PreQueue = False
    opens_at: OpensAt = None


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
    admission_mode: AdmissionMode
    chosen_rate: Annotated[float, msgspec.Meta(
        ge=0, description="The rate the admitter works at: admit_rate in fixed mode")]
    rate_reason: Annotated[str, msgspec.Meta(description=(
        "Why chosen_rate, a stable word: configured, paused, sold_out, seats_left, "
        "booking_latency, no_figures"))]
    rate_detail: Annotated[str, msgspec.Meta(description="The same in words, with figures")]
    eta_error: EtaError
    opens_at: Annotated[Time | None, msgspec.Meta(
        description="The scheduled opening not drawn yet; null when none")] = None


Hex = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


class DrawOut(Response):
    """A concert's latest scheduled opening: the commitment before it, the draw after it."""

    concert_id: Id
    opens_at: Time
    commitment: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$",
                                            description="sha256(seed), hex")]
    drawn_at: Time | None = None
    seed: Annotated[str | None, msgspec.Meta(
        description="32 bytes, hex; null until the draw")] = None
    hmacs: Annotated[list[Hex] | None, msgspec.Meta(
        description="HMAC-SHA256(seed, token) of every token drawn, ascending: rank n is the "
                    "n-th; null until the draw")] = None


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


class PreQueueFrame(Frame, tag="pre_queue"):
    """Waiting for the opening: a position comes after the draw."""

    opens_at: Time | None


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


# -- the operators' console socket (/admin/ws) ----------------------------------------------
class ConsoleAuth(Request):
    """The first frame a console sends: the admin key (never in the URL, which is logged)."""

    type: Literal["auth"]
    key: Annotated[str, msgspec.Meta(max_length=1024)]


class ConsoleConcert(Response):
    """One concert as the console shows it. Seat figures are null when PostgreSQL did not
    answer this second."""

    id: Id
    name: str
    queue: AdminQueueOut  # the admin API's answer for this concert, as GET gives it
    measured_rate: float | None  # admissions per second lately; null: not measured yet
    sold_out: bool
    on_sale: int  # seats on sale, as the admitter last counted; -1: not known
    seats_left: Count | None  # not sold: on sale or held
    holds: Count | None  # seats in live holds
    sold: Count | None  # seats sold
    orders: Count | None  # paid orders
    completed: Count | None  # admitted tokens that paid
    timed_out: Count | None  # admitted tokens whose booking window ran out
    left: Count | None  # admitted tokens given up
    seats_per_buyer: float | None
    seats_per_buyer_measured: bool


class ConsoleFrame(Response, tag="figures", tag_field="type"):
    at_ms: int  # Redis's clock
    concerts: list[ConsoleConcert]
