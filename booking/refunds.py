"""Refunding a paid booking: the money back, the seats on sale, exactly once per Idempotency-Key."""

from __future__ import annotations

import dataclasses

import asyncpg

from . import errors, queries


@dataclasses.dataclass(frozen=True, slots=True)
class Refund:
    payment_id: int
    reservation_id: int
    amount: int
    balance: int


async def refund(conn: asyncpg.Connection, *, user_id: int, payment_id: int, key: str) -> Refund:
    """Refund the user's payment, or answer an earlier refund with this key again."""
    async with conn.transaction():
        if not await queries.try_lock_key(conn, user_id, "refund:" + key):
            raise errors.IdempotencyInProgress()
        prior = await queries.find_refund(conn, user_id, key)
        if prior is not None:
            if prior["payment_id"] != payment_id:
                raise errors.IdempotencyKeyReused(
                    "This Idempotency-Key refunded another payment; use a new key")
            return Refund(payment_id, prior["reservation_id"], prior["amount"], prior["balance_after"])
        row = await queries.lock_payment(conn, payment_id, user_id)
        if row is None:
            raise errors.PaymentNotFound(f"You have no payment {payment_id}")
        if row["state"] != "COMPLETED":
            raise errors.AlreadyRefunded()
        if row["closed"]:
            raise errors.RefundClosed()
        with errors.constraint_rules():
            balance = await queries.refund(conn, payment_id, user_id, key)
    return Refund(payment_id, row["reservation_id"], row["amount"], balance)
