"""Holding seats: one short transaction, all or nothing, never waiting on another buyer."""

from __future__ import annotations

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
    async with conn.transaction():
        await queries.lock_user(conn, user_id)
        if seat_numbers is not None:
            rows = await queries.pick_numbers(conn, user_id, schedule_id, seat_numbers)
        else:
            rows = await queries.pick_any(conn, user_id, schedule_id, wanted)
        held = rows[0]["held"]
        if held + wanted > max_seats:
            raise errors.SeatLimit(
                f"At most {max_seats} seats per user on one date; {held} already held or bought")
        picked = [r for r in rows if r["id"] is not None]
        stale = {r["reservation_id"] for r in picked if r["reservation_id"] is not None}
        if stale:
            blocked = await queries.expire_stale_holds(conn, list(stale), [r["id"] for r in picked])
            picked = [r for r in picked if r["reservation_id"] not in blocked]
        if len(picked) < wanted:
            if seat_numbers is None:
                raise errors.SeatUnavailable(f"Fewer than {wanted} seats are on sale")
            await _no_such_seats(conn, schedule_id, seat_numbers)
            got = {r["seat_number"] for r in picked}
            missing = sorted(n for n in set(seat_numbers) if n not in got)
            raise errors.SeatUnavailable(
                f"Seats {', '.join(map(str, missing))} are not on sale", seats=missing)
        # The last line of defence: a seat already in a live reservation is seat_unavailable.
        with errors.constraint_rules():
            row = await queries.create_hold(conn, user_id, schedule_id,
                                            [r["id"] for r in picked], ttl_seconds)
    seats = sorted((r["seat_number"], r["price"]) for r in picked)
    return Hold(row["id"], schedule_id, seats, row["total_price"], row["hold_expires_at"])


async def _no_such_seats(conn: asyncpg.Connection, schedule_id: int,
                         seat_numbers: Sequence[int]) -> None:
    """ValidationFailed if the schedule lacks some of these seat numbers."""
    existing = await queries.existing_seats(conn, schedule_id, seat_numbers)
    unknown = sorted(set(seat_numbers) - existing)
    if unknown:
        raise errors.ValidationFailed(
            f"Schedule {schedule_id} has no seat {', '.join(map(str, unknown))}",
            field="seat_numbers")


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
