"""The shop's books, checked in SQL: what the end of a load test (or an operator) asks."""

from __future__ import annotations

import asyncpg
import msgspec

# One statement, one snapshot: every figure is read at the same instant.
AUDIT = """
WITH live AS (
    SELECT r.schedule_id, seat.number, count(*) AS n
    FROM reservations r, unnest(r.seat_numbers) AS seat(number)
    WHERE r.status IN ('WAITING', 'RESERVED') GROUP BY r.schedule_id, seat.number
)
SELECT
    (SELECT count(*) FROM live WHERE n > 1) AS seats_in_two_live_reservations,
    (SELECT count(*) FROM concert_seats s JOIN reservations r ON r.id = s.reservation_id
      WHERE s.status = 'RESERVED' AND r.status <> 'RESERVED') AS sold_seats_without_sale,
    (SELECT count(*) FROM reservations r WHERE r.status = 'RESERVED' AND NOT EXISTS (
        SELECT 1 FROM payments p WHERE p.reservation_id = r.id AND p.state = 'COMPLETED'))
        AS sales_without_payment,
    (SELECT count(*) FROM reservations r WHERE r.status = 'RESERVED' AND r.seat_count <> (
        SELECT count(*) FROM concert_seats s WHERE s.reservation_id = r.id AND s.status = 'RESERVED'))
        AS sales_missing_seats,
    (SELECT count(*) FROM balances b WHERE b.balance <> coalesce(
        (SELECT sum(l.amount) FROM balance_ledger l WHERE l.user_id = b.user_id), 0))
        AS balances_off_ledger,
    (SELECT count(*) FROM concert_seats WHERE status = 'RESERVED') AS seats_sold,
    (SELECT coalesce(sum(amount), 0) FROM balance_ledger WHERE kind = 'CHARGE') AS charged,
    (SELECT coalesce(sum(amount), 0) FROM payments WHERE state = 'COMPLETED') AS paid,
    (SELECT coalesce(-sum(amount), 0) FROM balance_ledger WHERE kind IN ('PAYMENT', 'REFUND'))
        AS debited,
    (SELECT coalesce(sum(balance), 0) FROM balances) AS balances
"""


class Audit(msgspec.Struct, kw_only=True):
    ok: bool
    seats_in_two_live_reservations: int
    sold_seats_without_sale: int
    sales_without_payment: int
    sales_missing_seats: int
    balances_off_ledger: int
    seats_sold: int
    charged: int
    paid: int
    debited: int
    balances: int


async def audit(conn: asyncpg.Pool | asyncpg.Connection) -> Audit:
    """No seat sold twice, every sale paid, and money in = money out + money held."""
    row = await conn.fetchrow(AUDIT)
    assert row is not None
    figures = {k: int(v) for k, v in row.items()}
    ok = (figures["seats_in_two_live_reservations"] == figures["sold_seats_without_sale"]
          == figures["sales_without_payment"] == figures["sales_missing_seats"]
          == figures["balances_off_ledger"] == 0
          and figures["paid"] == figures["debited"]
          and figures["charged"] == figures["paid"] + figures["balances"])
    return Audit(ok=ok, **figures)
