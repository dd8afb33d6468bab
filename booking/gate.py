"""The gate in front of booking: who a bearer token is, and may they book this concert now.

Booking does not know how the queue is kept; the shell hands it a Gate that does.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Literal, Protocol

from . import errors

# A queue token's state, as the contract names it.
TokenState = Literal["WAITING", "AVAILABLE", "EXPIRED"]


@dataclasses.dataclass(frozen=True, slots=True)
class Holder:
    """The bearer of a queue token: the only way a booking call names its user."""

    token: str
    concert_id: int
    user_id: int
    state: TokenState
    expires_ms: int | None = None

    def admitted(self) -> int:
        """The user id if the token is AVAILABLE, else its token error."""
        # The admitter expires a token within a tick of its deadline; until then, the deadline
        # itself already closes the gate.
        if self.state == "EXPIRED" or (
                self.expires_ms is not None and self.expires_ms <= time.time() * 1000):
            raise errors.TokenExpired()
        if self.state == "WAITING":
            raise errors.TokenNotAdmitted()
        return self.user_id

    def admitted_to(self, concert_id: int) -> int:
        """The user id if the token is AVAILABLE for this concert, else its token error."""
        user_id = self.admitted()
        self.check_concert(concert_id)
        return user_id

    def check_concert(self, concert_id: int) -> None:
        if concert_id != self.concert_id:
            raise errors.TokenWrongConcert(
                f"The token is for concert {self.concert_id}, not {concert_id}")

    def live(self) -> int:
        """The user id if the token is WAITING or AVAILABLE."""
        if self.state == "EXPIRED":
            raise errors.TokenExpired()
        return self.user_id


class Gate(Protocol):
    """What booking asks of the queue."""

    async def holder(self, token: str) -> Holder:
        """The token as stored (TokenInvalid if unknown), read without counting as a poll."""

    async def complete(self, token: str, *, logged: bool = False) -> None:
        """The token's purchase is done: expire it if it is still AVAILABLE (`logged`: its
        audit row says so already, written with the payment).

        TokenInvalid if the token is gone; ServiceUnavailable if the queue is not answering.
        """
