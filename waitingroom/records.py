"""Queue token records as stored in Redis, and the figures a client sees."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from booking.gate import TokenState

ExpiryReason = Literal["timeout", "left", "completed", "dropped"]
AdmissionMode = Literal["fixed", "inventory"]
# The record's one-letter state (see lua/_lib.lua) and the contract's name for it.
STATES: dict[str, TokenState] = {"W": "WAITING", "A": "AVAILABLE", "E": "EXPIRED"}
STATE_CODES: dict[TokenState, str] = {v: k for k, v in STATES.items()}
REASONS: dict[str, ExpiryReason] = {r: r for r in ("timeout", "left", "completed", "dropped")}


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


class TokenRecord(msgspec.Struct, frozen=True):
    """Immutable, as a frozen dataclass would be, made at a fraction of the cost (one per join,
    poll and socket)."""

    state: TokenState
    user_id: int
    ticket: int
    expires_ms: int | None
    reason: ExpiryReason | None

    @classmethod
    def parse(cls, raw: bytes | str) -> TokenRecord:
        """A record as lua/_lib.lua packs it: "state|user|ticket|expires_ms|reason"."""
        s, user, ticket, expires, reason = text(raw).split("|")
        return cls(STATES[s], int(user), int(ticket), int(expires) if expires else None,
                   REASONS[reason] if reason else None)


# The spread of a rate not measured yet (the configured one, or nobody waiting).
UNMEASURED_SPREAD = 0.3


@dataclasses.dataclass(frozen=True, slots=True)
class RateInfo:
    """Configured rate, paused flag and measured rate of one concert, and whether it sold out."""

    configured: float
    paused: bool
    measured: float | None
    sold_out: bool = False
    # How far the rate may be off, relative (lua/admit.lua): the width of the ETA's range.
    spread: float = UNMEASURED_SPREAD

    @classmethod
    def parse(cls, cfg_rate: object, paused: object, measured: object, on_sale: object,
              default_rate: float) -> RateInfo:
        # The admitter stores "rate:spread", or ":spread" while it has not measured enough.
        rate, _, spread = text(measured).partition(":") if measured else ("", "", "")
        return cls(
            float(text(cfg_rate)) if cfg_rate else default_rate,
            bool(paused) and text(paused) == "1",
            float(rate) if rate else None,
            bool(on_sale) and text(on_sale) == "0",
            float(spread) if spread else UNMEASURED_SPREAD,
        )

    @property
    def effective(self) -> float:
        """The rate an ETA is worked out from: measured once the admitter has seen enough (see
        lua/admit.lua), else configured."""
        return self.measured if self.measured is not None else self.configured

    def eta(self, position: int | None) -> int | None:
        if position is None or self.paused or self.sold_out or self.effective <= 0:
            return None
        return math.ceil(position / self.effective)

    def eta_range(self, position: int | None, eta: int | None = None) -> list[int] | None:
        """[low, high] seconds around the ETA (eta, when given, is the one shown and always
        lies inside), from the rate's spread; None when there is no ETA."""
        if eta is None:
            eta = self.eta(position)
        if eta is None or position is None:
            return None
        exact = position / self.effective
        return [max(0, min(eta, math.floor(exact * (1 - self.spread)))),
                max(eta, math.ceil(exact * (1 + self.spread)))]


def rfc3339(ms: int | None) -> str | None:
    if ms is None:
        return None
    # Whole seconds, rounded down: a client never believes it has longer than it has.
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
