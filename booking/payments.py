"""Paying for a hold from the balance, exactly once per Idempotency-Key."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging

import asyncpg
import msgspec

from . import errors, queries
from .gate import Gate, Holder
from .schemas import PaymentRequest

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Payment:
    id: int
    reservation_id: int
    amount: int
    balance: int
    token_to_expire: bool  # False when this is a replay of an earlier answer


def request_hash(body: PaymentRequest) -> bytes:
    """A fingerprint of the request body, the same for every spelling of the same JSON."""
    return hashlib.sha256(msgspec.json.encode(body)).digest()


async def pay(conn: asyncpg.Connection, *, holder: Holder, reservation_id: int, key: str,
              fingerprint: bytes) -> Payment:
    """Pay the holder's reservation, or answer an earlier payment with this key again."""
    user_id = holder.user_id
    async with conn.transaction():
        if not await queries.try_lock_key(conn, user_id, key):
            raise errors.IdempotencyInProgress()
        prior = await queries.find_payment(conn, user_id, key)
        if prior is not None:
            if bytes(prior["request_hash"]) != fingerprint:
                raise errors.IdempotencyKeyReused(
                    "This Idempotency-Key paid for another request; use a new key")
            return Payment(prior["id"], prior["reservation_id"], prior["amount"],
                           prior["balance_after"], token_to_expire=False)
        # Only a replay may use a token that is no longer AVAILABLE (its payment expired it).
        holder.admitted()
        row = await queries.lock_reservation(conn, reservation_id, user_id)
        if row is None:
            raise errors.ReservationNotFound(f"You have no reservation {reservation_id}")
        holder.check_concert(row["concert_id"])
        if row["status"] == "RESERVED":
            raise errors.AlreadyPaid()
        if row["status"] != "WAITING" or row["ran_out"]:
            raise errors.HoldExpired()
        # Fixed lock order everywhere: reservation, then its seats, then the balance.
        if await queries.lock_held_seats(conn, reservation_id) != row["seat_count"]:
            raise errors.HoldExpired()
        amount = int(row["total_price"])
        balance = await queries.debit(conn, user_id, amount)
        if balance is None:
            raise errors.InsufficientBalance(f"Paying takes {amount} won; charge the balance first")
        with errors.constraint_rules():
            payment_id = await queries.complete_payment(
                conn, reservation_id=reservation_id, user_id=user_id, amount=amount, key=key,
                request_hash=fingerprint, token=holder.token, balance_after=balance)
    return Payment(payment_id, reservation_id, amount, balance, token_to_expire=True)


async def expire_token(gate: Gate, pool: asyncpg.Pool, payment_id: int, token: str,
                       within: float) -> bool:
    """End the paying queue token (reason completed); False if the queue did not answer
    within that many seconds."""
    try:
        async with asyncio.timeout(within):
            await gate.complete(token)
    except errors.TokenInvalid:
        pass  # the token's record is gone already: nothing left to expire
    except (errors.ServiceUnavailable, TimeoutError) as e:
        log.warning("payment %s: could not expire its queue token yet: %r", payment_id, e)
        return False
    await queries.mark_token_expired(pool, [payment_id])
    return True
