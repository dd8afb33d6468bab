"""Wire types of booking: request bodies that validate themselves, and the answers."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from .wire import Id, Request, Response, Time, Won

# Seat numbers are PostgreSQL integers; anything larger cannot be a seat of any schedule.
SeatNumber = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1, description="A seat number")]
# A request never needs more seats than MAX_SEATS_PER_USER allows (at most 1000).
MAX_SEATS_PER_REQUEST = 1000
# One charge of the balance, in won (the pages read these from GET /api/v1/limits).
CHARGE_MIN, CHARGE_MAX = 1, 10_000_000
Amount = Annotated[int, msgspec.Meta(ge=CHARGE_MIN, le=CHARGE_MAX,
                                     description="Won to add to the balance, 1 .. 10,000,000")]
Price = Annotated[int, msgspec.Meta(ge=1, description="Integer won")]
SeatStatus = Literal["AVAILABLE", "PENDING", "RESERVED"]
ReservationStatus = Literal["WAITING", "RESERVED", "CANCELED", "EXPIRED"]


class HoldRequest(Request):
    """Hold seats: either these seat numbers, or the best `quantity` seats (exactly one)."""

    schedule_id: Id
    seat_numbers: Annotated[
        list[SeatNumber],
        msgspec.Meta(min_length=1, max_length=MAX_SEATS_PER_REQUEST,
                     description="The seats to hold, all or none; no number twice",
                     extra_json_schema={"uniqueItems": True}),
    ] | msgspec.UnsetType = msgspec.UNSET
    quantity: Annotated[
        int,
        msgspec.Meta(ge=1, le=MAX_SEATS_PER_REQUEST,
                     description="How many seats: adjacent ones when a run is free, else the lowest"),
    ] | msgspec.UnsetType = msgspec.UNSET


class PaymentRequest(Request):
    """Pay for a WAITING hold from the balance; send an Idempotency-Key header."""

    reservation_id: Id


class ChargeRequest(Request):
    """Add money to the caller's balance."""

    amount: Amount


class ScheduleOut(Response):
    id: Id
    concert_date: Annotated[str, msgspec.Meta(extra_json_schema={"format": "date"})]
    available_seats: Annotated[int, msgspec.Meta(ge=1)]


class PreviewScheduleOut(Response):
    id: int
    concert_date: str
    available_seats: int
    price_min: int
    price_max: int


class SeatOut(Response):
    seat_number: SeatNumber
    price: Price
    status: SeatStatus


class HeldSeat(Response):
    seat_number: SeatNumber
    price: Price


class ReservationOut(Response):
    id: Id
    schedule_id: Id
    seats: Annotated[list[HeldSeat], msgspec.Meta(min_length=1)]
    total_price: Price
    status: ReservationStatus
    hold_expires_at: Time


class PaymentOut(Response):
    id: Id
    reservation_id: Id
    amount: Price
    state: Literal["COMPLETED"]
    balance: Won


class RefundOut(Response):
    id: int
    reservation_id: int
    amount: int
    state: Literal["CANCELED"]
    balance: int


class BookingOut(Response):
    """One of the caller's reservations, for "my bookings"."""

    id: int
    schedule_id: int
    concert_id: int
    seats: list[HeldSeat]
    total_price: int
    status: ReservationStatus
    hold_expires_at: str
    payment_id: int | None


class BalanceOut(Response):
    balance: Won
