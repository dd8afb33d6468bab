"""Errors of the waiting room's own rules (booking.errors holds the base and the shared ones)."""

from __future__ import annotations

from booking.errors import DomainError, NotFound


class ConcertNotFound(NotFound):
    title = "No such concert"


class AdminUnauthorized(DomainError):
    status, code, title = 401, "admin_unauthorized", "The admin key is missing or wrong"
