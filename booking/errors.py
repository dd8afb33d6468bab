"""Domain errors: each carries its own HTTP status and problem code; the shell's one middleware
turns any of them into an RFC 9457 problem. Database constraint violations are mapped here too,
by the constraint's name."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import asyncpg


class DomainError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra
        self.headers: dict[str, str] = {}


# Seconds a client is asked to wait before trying a service that did not answer.
RETRY_UNAVAILABLE = 1


# -- the edge -----------------------------------------------------------------------------
class ValidationFailed(DomainError):
    status, code, title = 400, "validation_error", "The request is not valid"


class UnsupportedMediaType(DomainError):
    status, code, title = 415, "unsupported_media_type", "The body must be application/json"


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class ServiceUnavailable(DomainError):
    status, code, title = 503, "service_unavailable", "A backing service is not answering"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"Retry-After": str(RETRY_UNAVAILABLE)}


# -- the gate: who a bearer token is, and whether it may book ------------------------------
class TokenMissing(DomainError):
    status, code, title = 401, "token_missing", "A bearer token is required"


class TokenInvalid(DomainError):
    status, code, title = 401, "token_invalid", "The token is unknown or malformed"


class TokenNotAdmitted(DomainError):
    status, code, title = 403, "token_not_admitted", "The token is still waiting in the queue"


class TokenWrongConcert(DomainError):
    status, code, title = 403, "token_wrong_concert", "The token belongs to another concert"


class TokenExpired(DomainError):
    status, code, title = 410, "token_expired", "The token has expired"


# -- booking ------------------------------------------------------------------------------
class ScheduleNotFound(NotFound):
    title = "No such schedule"


class ReservationNotFound(NotFound):
    title = "No such reservation"


class SeatUnavailable(DomainError):
    status, code, title = 409, "seat_unavailable", "Some of the seats are not on sale"


class SeatLimit(DomainError):
    status, code, title = 409, "seat_limit", "Too many seats for one user on this date"


class HoldExpired(DomainError):
    status, code, title = 409, "hold_expired", "The hold has ended; its seats are on sale again"


class AlreadyPaid(DomainError):
    status, code, title = 409, "already_paid", "The reservation is already paid"


class InsufficientBalance(DomainError):
    status, code, title = 402, "insufficient_balance", "The balance is too low"


class IdempotencyKeyReused(DomainError):
    status, code, title = (422, "idempotency_key_reused",
                           "The Idempotency-Key was used before with another request")


class IdempotencyInProgress(DomainError):
    status, code, title = (409, "idempotency_in_progress",
                           "A request with this Idempotency-Key is still running")


class PaymentNotFound(NotFound):
    code, title = "payment_not_found", "No such payment of yours"


class AlreadyRefunded(DomainError):
    status, code, title = 409, "already_refunded", "The payment was refunded already"


class RefundClosed(DomainError):
    status, code, title = 409, "refund_closed", "The date has passed: it can no longer be refunded"


# -- constraints --------------------------------------------------------------------------
# The database's last line of defence, by constraint name: what the rule means to a client.
# A violation of any constraint not listed here is a bug (answered 500, logged with a request id).
CONSTRAINTS: dict[str, tuple[type[DomainError], str]] = {
    "balances_balance_nonnegative": (InsufficientBalance, "The balance is too low"),
    "payments_one_completed_key": (AlreadyPaid, "The reservation was paid at the same moment"),
    "payments_user_idempotency_key": (IdempotencyInProgress,
                                      "A request with this Idempotency-Key ran at the same moment"),
    "refunds_payment_key": (AlreadyRefunded, "The payment was refunded at the same moment"),
    "refunds_user_idempotency_key": (IdempotencyInProgress,
                                     "A request with this Idempotency-Key ran at the same moment"),
}


def from_violation(error: asyncpg.IntegrityConstraintViolationError) -> DomainError | None:
    """The domain error a named constraint stands for, or None when it names no rule of ours."""
    name = getattr(error, "constraint_name", None)
    if name is None or name not in CONSTRAINTS:
        return None
    kind, detail = CONSTRAINTS[name]
    return kind(detail)


@contextlib.contextmanager
def constraint_rules() -> Iterator[None]:
    """Turn a violation of a named rule into its domain error; any other violation goes on."""
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as e:
        mapped = from_violation(e)
        if mapped is None:
            raise
        raise mapped from e
