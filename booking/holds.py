"""Holding seats: one short transaction, all or nothing, never waiting on another buyer."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime

import asyncpg

from . import errors, queries


@dataclasses.dataclass(frozen=True, slots=True)
class Hold:
    id: int
    schedule_id: int
    seats: list[tuple[int, int]]  # (seat number, price), in seat order
    total_price: int
    hold_expires_at: datetime


async def hold(conn: asyncpg.Connection, *, user_id: int, schedule_id: int,
               seat_numbers: Sequence[int] | None, quantity: int | None,
               ttl_seconds: int, max_seats: int) -> Hold:
    """Hold these seats (or the best `quantity`) for the user, or raise and hold nothing."""
    wanted = len(seat_numbers) if seat_numbers is not None else quantity
    assert wanted is not None
    if wanted > max_seats:
        raise errors.SeatLimit(f"At most {max_seats} seats per user on one date")
    # One statement, its own transaction: one round trip. Inside a caller's transaction, a
    # savepoint, so that a refusal undoes only the hold.
    async with conn.transaction() if conn.is_in_transaction() else contextlib.nullcontext():
        try:
            row = await queries.hold_seats(conn, user_id, schedule_id, seat_numbers,
                                           None if seat_numbers is not None else quantity,
                                           ttl_seconds, max_seats)
        except asyncpg.RaiseError as e:
            raise _refusal(e, schedule_id, wanted, max_seats) from None
    seats = list(zip(row["held_numbers"], row["held_prices"], strict=True))
    return Hold(row["hold_id"], schedule_id, seats, row["total"], row["expires_at"])


def _refusal(error: asyncpg.RaiseError, schedule_id: int, wanted: int,
             max_seats: int) -> errors.DomainError:
    """The domain error for a refusal raised by hold_seats (its message names it)."""
    detail = getattr(error, "detail", None) or ""
    numbers = [int(n) for n in detail.split(",") if n]
    match getattr(error, "message", None):
        case "seat_limit":
            return errors.SeatLimit(
                f"At most {max_seats} seats per user on one date; {detail} already held or bought")
        case "no_such_seats":
            return errors.ValidationFailed(
                f"Schedule {schedule_id} has no seat {', '.join(map(str, numbers))}",
                field="seat_numbers")
        case "seat_unavailable" if numbers:
            return errors.SeatUnavailable(
                f"Seats {', '.join(map(str, numbers))} are not on sale", seats=numbers)
        case "seat_unavailable":
            return errors.SeatUnavailable(f"Fewer than {wanted} seats are on sale")
    raise error


async def release(conn: asyncpg.Connection, *, reservation_id: int, user_id: int,
                  check_concert: Callable[[int], None]) -> None:
    """Release the user's WAITING hold (CANCELED): its seats are on sale at once.

    Releasing a hold that already ended changes nothing; a paid one is refused.
    """
    async with conn.transaction():
        row = await queries.lock_reservation(conn, reservation_id, user_id)
        if row is None:
            raise errors.ReservationNotFound(f"You have no reservation {reservation_id}")
        check_concert(row["concert_id"])
        if row["status"] == "RESERVED":
            raise errors.AlreadyPaid("A paid reservation cannot be released")
        if row["status"] == "WAITING":
            await queries.end_hold(conn, reservation_id, "EXPIRED" if row["ran_out"] else "CANCELED")
