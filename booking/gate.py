"""The gate in front of booking: who is asking, and may they book this concert now."""

from __future__ import annotations

import dataclasses
import time

from aiohttp import web

from waitingroom import errors
from waitingroom.appkeys import QUEUES
from waitingroom.problems import bearer
from waitingroom.records import State


@dataclasses.dataclass(frozen=True, slots=True)
class Holder:
    """The bearer of a queue token: the only way a booking call names its user."""

    token: str
    concert_id: int
    user_id: int
    state: State
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


async def holder(request: web.Request) -> Holder:
    """The request's bearer token as stored, read without counting as a queue poll."""
    token = bearer(request)
    concert_id, record = await request.app[QUEUES].lookup(token)
    return Holder(token, concert_id, record.user_id, record.state, record.expires_ms)
