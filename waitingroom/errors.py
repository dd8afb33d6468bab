"""Errors of the waiting room's own rules (booking.errors holds the base and the shared ones)."""

from __future__ import annotations

from booking.errors import DomainError, NotFound


class ConcertNotFound(NotFound):
    title = "No such concert"


class IdentityRequired(DomainError):
    status, code, title = 401, "identity_required", "Joining needs a signed identity"


class IdentityInvalid(DomainError):
    status, code, title = 401, "identity_invalid", "The identity is not valid"


class OriginNotAllowed(DomainError):
    status, code, title = 403, "origin_not_allowed", "Pages of this origin may not open the queue"


class AdminUnauthorized(DomainError):
    status, code, title = 401, "admin_unauthorized", "The admin key is missing or wrong"
