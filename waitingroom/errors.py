"""Domain errors, raised where the rule lives and turned into RFC 9457 problems at the edge."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class ValidationFailed(DomainError):
    status, code, title = 400, "validation_error", "The request is not valid"


class UnsupportedMediaType(DomainError):
    status, code, title = 415, "unsupported_media_type", "The body must be application/json"


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class ConcertNotFound(NotFound):
    title = "No such concert"


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


class AdminUnauthorized(DomainError):
    status, code, title = 401, "admin_unauthorized", "The admin key is missing or wrong"


class ServiceUnavailable(DomainError):
    status, code, title = 503, "service_unavailable", "A backing service is not answering"


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
