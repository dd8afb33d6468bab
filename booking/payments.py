"""Paying for a hold from the balance, exactly once per Idempotency-Key."""

from __future__ import annotations

import asyncio
import contextlib
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
    # The token's audit row was written EXPIRED with the payment (false: it had none yet).
    token_logged: bool = True


def request_hash(body: PaymentRequest) -> bytes:
    """A fingerprint of the request body, the same for every spelling of the same JSON."""
    return hashlib.sha256(msgspec.json.encode(body)).digest()


async def pay(conn: asyncpg.Connection, *, holder: Holder, reservation_id: int, key: str,
              fingerprint: bytes) -> Payment:
    """Pay the holder's reservation, or answer an earlier payment with this key again."""
    # Only a replay may use a token that is no longer AVAILABLE (its payment expired it), so
    # the token's refusal is handed in and raised by the call only when it is not a replay.
    refusal: errors.DomainError | None = None
    try:
        holder.admitted()
    except errors.DomainError as e:
        refusal = e
    # One call, its own transaction: one round trip. Inside a caller's transaction, a
    # savepoint, so that a refusal undoes only the payment.
    async with conn.transaction() if conn.is_in_transaction() else contextlib.nullcontext():
        try:
            with errors.constraint_rules():
                row = await queries.pay_reservation(
                    conn, user_id=holder.user_id, reservation_id=reservation_id, key=key,
                    request_hash=fingerprint, token=holder.token, concert_id=holder.concert_id,
                    token_refused=refusal is not None)
        except asyncpg.RaiseError as e:
            raise _refusal(e, holder, reservation_id, refusal) from None
    return Payment(row["payment_id"], row["reservation_id"], row["amount"], row["balance_after"],
                   token_to_expire=not row["replayed"], token_logged=row["token_logged"])


def _refusal(error: asyncpg.RaiseError, holder: Holder, reservation_id: int,
             token_refusal: errors.DomainError | None) -> errors.DomainError:
    """The domain error for a refusal raised by pay_reservation (its message names it)."""
    detail = getattr(error, "detail", None) or ""
    match getattr(error, "message", None):
        case "idempotency_in_progress":
            return errors.IdempotencyInProgress()
        case "idempotency_key_reused":
            return errors.IdempotencyKeyReused(
                "This Idempotency-Key paid for another request; use a new key")
        case "token_refused" if token_refusal is not None:
            return token_refusal
        case "token_spent":
            return errors.TokenExpired()
        case "reservation_not_found":
            return errors.ReservationNotFound(f"You have no reservation {reservation_id}")
        case "wrong_concert":
            return errors.TokenWrongConcert(
                f"The token is for concert {holder.concert_id}, not {detail}")
        case "already_paid":
            return errors.AlreadyPaid()
        case "hold_expired":
            return errors.HoldExpired()
        case "insufficient_balance":
            return errors.InsufficientBalance(
                f"Paying takes {detail} won; charge the balance first")
    raise error


async def expire_token(gate: Gate, payment_id: int, token: str, within: float, *,
                       logged: bool = False) -> bool:
    """End the paying queue token (reason completed); False if the queue did not answer
    within that many seconds. `logged`: its audit row says so already."""
    try:
        async with asyncio.timeout(within):
            await gate.complete(token, logged=logged)
    except errors.TokenInvalid:
        pass  # the token's record is gone already: nothing left to expire
    except (errors.ServiceUnavailable, TimeoutError) as e:
        log.warning("payment %s: could not expire its queue token yet: %r", payment_id, e)
        return False
    return True


# Seconds the rows of ended tokens wait to be deleted together: under load one statement then
# deletes the rows of dozens of payments.
FORGET_INTERVAL = 0.1


class EndedTokens:
    """Paid tokens that the queue has ended: their rows in payment_tokens_to_end are deleted
    in the background, one statement for all those ended within an interval.

    A row not deleted (the process stopped first, or PostgreSQL was away) only makes the
    sweeper end its token again, which changes nothing, and delete it then."""

    def __init__(self, pool: asyncpg.Pool, interval: float = FORGET_INTERVAL) -> None:
        self.pool = pool
        self.interval = interval
        self._ids: list[int] = []
        self._writer: asyncio.Task[None] | None = None

    def add(self, payment_id: int) -> None:
        self._ids.append(payment_id)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        try:
            while self._ids:
                await asyncio.sleep(self.interval)
                ids, self._ids = self._ids, []
                try:
                    await queries.forget_ended_tokens(self.pool, ids)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                    log.warning("%d ended tokens stay for the sweeper: %r", len(ids), e)
        finally:
            self._writer = None

    async def close(self, within: float) -> None:
        """Write what is left, waiting no longer than that many seconds."""
        if self._writer is not None:
            await asyncio.wait([self._writer], timeout=within)
