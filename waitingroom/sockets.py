"""This web process's open queue sockets, and sending to them without ever waiting on one."""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import time

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.base_protocol import BaseProtocol

from .records import ExpiryReason, RateInfo, rfc3339
from .schemas import (
    AdmittedEvent,
    AdmittedFrame,
    AnyEvent,
    ExpiredFrame,
    Frame,
    PositionFrame,
    SoldOutEvent,
    SoldOutFrame,
)

# Close codes: a token that has expired (also after an "expired" frame), and an unknown one.
CLOSE_EXPIRED = 4410
CLOSE_UNKNOWN = 4401
# The queue store (Redis) cannot be reached: try again later, the place is kept (1013). Sent to
# an upgrade that finds Redis down, and to open sockets once their process has lost it too long.
CLOSE_STORE_DOWN = 1013
# Position frames to one client at most this often (seconds), whatever the tick interval.
MIN_FRAME_INTERVAL = 0.9
# Adaptive updates: far back (an ETA over NEAR_ETA seconds) a frame goes out only once the
# position or ETA shown is off by more than DRIFT of the true one, or QUIET_MAX seconds passed.
# With one second's admissions under 1 % of the position there, what is shown is never more
# than 2 % off between ticks; near the front, a frame every second, as before.
NEAR_ETA = 120
DRIFT = 0.01
QUIET_MAX = 5.0
# An ETA that rises by less than this (factor, plus seconds) while the line moves is noise in
# the measured rate, not news: the client keeps the lower one.
ETA_NOISE, ETA_NOISE_SECONDS = 1.1, 2
# How long shutdown waits for clients to complete their closing handshakes.
CLOSE_ALL_TIMEOUT = 5.0

_encode = msgspec.json.Encoder().encode


@dataclasses.dataclass(eq=False, slots=True)
class Waiter:
    """One open socket."""

    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    protocol: BaseProtocol | None
    token: str
    concert_id: int
    ticket: int
    waiting: bool
    expires_ms: int | None = None
    opens_ms: int | None = None  # in the pre-queue (ticket 0): the opening it waits for
    position: int | None = None
    eta: int | None = None
    rate: float | None = None
    span: list[int] | None = None
    slow_ticks: int = 0
    sent_at: float = 0.0  # monotonic time of the last position frame
    told_sold_out: bool = False
    # The client's own frames: a token bucket, and how many it sent past it.
    allowance: float = 0.0
    allowance_at: float = 0.0
    refused: int = 0
    # The closing handshake this process started (a background task), if any.
    closing: asyncio.Task[bool] | None = None

    def may_speak(self, rate: float, now: float) -> bool:
        """Whether the client may send a frame now (rate per second, a burst of twice that)."""
        if self.allowance_at == 0.0:
            self.allowance, self.allowance_at = 2 * rate, now
        self.allowance = min(2 * rate, self.allowance + (now - self.allowance_at) * rate)
        self.allowance_at = now
        if self.allowance >= 1:
            self.allowance -= 1
            return True
        self.refused += 1
        return False


@dataclasses.dataclass(slots=True)
class ConcertView:
    """What this process knows of one concert's queue, and its sockets there."""

    cursor: int = 0
    departed: list[int] = dataclasses.field(default_factory=list)  # sorted, all > cursor
    seq: int | None = None  # last departure sequence number read; None: read them all again
    rate: RateInfo | None = None
    waiters: set[Waiter] = dataclasses.field(default_factory=set)

    def position(self, ticket: int) -> int:
        """Ticket minus the cursor minus the tickets that left between them."""
        return ticket - self.cursor - bisect.bisect_left(self.departed, ticket)

    def advance(self, cursor: int, depseq: int, departed: list[int]) -> None:
        """Bring the local copy of the departed tickets up to date (see Queues.snapshots)."""
        if self.seq is None:
            self.departed = sorted(departed)
            self.seq = depseq
        else:
            if self.seq + len(departed) != depseq:
                # Departures were trimmed before this process read them: read them all next tick.
                self.seq = None
                return
            for ticket in departed:
                if ticket > cursor:
                    bisect.insort(self.departed, ticket)
            self.seq = depseq
        self.cursor = cursor
        del self.departed[:bisect.bisect_right(self.departed, cursor)]


def _due(waiter: Waiter, position: int, eta: int | None, now: float) -> bool:
    """Whether a waiter far back has drifted far enough (or waited long enough) for a frame."""
    if eta is None or waiter.eta is None or waiter.position is None or eta <= NEAR_ETA:
        return True
    return (now - waiter.sent_at >= QUIET_MAX or waiter.position - position > DRIFT * position
            or abs(waiter.eta - eta) > DRIFT * eta)


class Sockets:
    """Every queue socket of this process, by token and by concert."""

    def __init__(self, default_rate: float, slow_bytes: int, slow_ticks: int,
                 adaptive: bool = True) -> None:
        self.default_rate = default_rate
        self.adaptive = adaptive
        self.slow_bytes = slow_bytes
        self.slow_ticks = slow_ticks
        self.by_token: dict[str, list[Waiter]] = {}
        self.concerts: dict[int, ConcertView] = {}
        self.frames_sent = 0
        self.aborted = 0
        self._closing: set[asyncio.Task[bool]] = set()

    @property
    def count(self) -> int:
        return sum(len(v.waiters) for v in self.concerts.values())

    def add(self, waiter: Waiter) -> ConcertView:
        """Track a new socket; returns its concert's view."""
        self.by_token.setdefault(waiter.token, []).append(waiter)
        view = self.concerts.setdefault(waiter.concert_id, ConcertView())
        view.waiters.add(waiter)
        return view

    def remove(self, waiter: Waiter) -> bool:
        """Forget a closed socket; True when no other socket of this process holds its token."""
        same = self.by_token.get(waiter.token, [])
        if waiter in same:
            same.remove(waiter)
        if not same:
            self.by_token.pop(waiter.token, None)
        view = self.concerts.get(waiter.concert_id)
        if view is not None:
            view.waiters.discard(waiter)
            if not view.waiters:
                del self.concerts[waiter.concert_id]
        return not same

    def waiting_tokens(self) -> list[tuple[int, str]]:
        """(concert id, token) of every token this process holds while it waits."""
        return [(ws[0].concert_id, token) for token, ws in self.by_token.items()
                if ws and ws[0].waiting]

    # -- sending -------------------------------------------------------------------------
    async def send(self, waiter: Waiter, frame: Frame) -> bool:
        """Send one frame unless the client is too far behind; never waits on a slow client."""
        ws = waiter.ws
        if ws.closed:
            return False
        transport, protocol = waiter.transport, waiter.protocol
        # A paused protocol would make the send wait for the client to drain: skip instead.
        if (protocol is not None and protocol.writing_paused) or (
                transport is not None and transport.get_write_buffer_size() > self.slow_bytes):
            waiter.slow_ticks += 1
            if waiter.slow_ticks >= self.slow_ticks:
                # It reads nothing, so it would never read a close frame either: cut it off.
                self.abort(waiter)
            return False
        waiter.slow_ticks = 0
        try:
            await ws.send_frame(_encode(frame), WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):
            return False
        self.frames_sent += 1
        return True

    def abort(self, waiter: Waiter) -> None:
        """Drop the connection at once, unsent data and all (the client is not reading)."""
        self.aborted += 1
        if waiter.transport is not None:
            waiter.transport.abort()
        else:
            self.close(waiter, WSCloseCode.POLICY_VIOLATION, b"too slow")

    def close(self, waiter: Waiter, code: int, message: bytes) -> None:
        """Close a socket in the background, once. The code travels in the close frame: with its
        handler reading, aiohttp drops the connection right after that frame, so a client's own
        reply may find it gone; the code the client reports is still the frame's (RFC 6455
        7.1.5, as browsers do; aiohttp's client says 1006 then, its message holds the code)."""
        if waiter.closing is not None:
            return
        task = asyncio.get_running_loop().create_task(waiter.ws.close(code=code, message=message))
        waiter.closing = task
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def admitted(self, waiter: Waiter, expires_ms: int | None) -> None:
        waiter.waiting = False
        waiter.position = None
        waiter.expires_ms = expires_ms
        await self.send(waiter, AdmittedFrame(expires_at=rfc3339(expires_ms),
                                              concert_id=waiter.concert_id))

    async def expired(self, waiter: Waiter, reason: ExpiryReason) -> None:
        await self.send(waiter, ExpiredFrame(reason=reason))
        self.close(waiter, CLOSE_EXPIRED, b"token expired")

    async def position(self, waiter: Waiter, view: ConcertView, position: int) -> None:
        """Send the position if it or the ETA changed, at most about once a second; a position
        never goes up, and an ETA goes up only for a real slowdown, not for measuring noise."""
        if waiter.position is not None and position > waiter.position:
            position = waiter.position
        rate = view.rate or RateInfo(self.default_rate, False, None)
        eta = rate.eta(position)
        if (eta is not None and waiter.eta is not None and rate.configured == waiter.rate
                and eta > waiter.eta and eta <= waiter.eta * ETA_NOISE + ETA_NOISE_SECONDS):
            eta = waiter.eta
        span = rate.eta_range(position, eta)
        if (position == waiter.position and eta == waiter.eta and rate.configured == waiter.rate
                and span == waiter.span):
            return
        now = time.monotonic()
        if waiter.sent_at and now - waiter.sent_at < MIN_FRAME_INTERVAL:
            return  # the next tick sends the latest figures
        if (self.adaptive and waiter.sent_at and rate.configured == waiter.rate
                and not _due(waiter, position, eta, now)):
            return
        if await self.send(waiter, PositionFrame(position=position, eta_seconds=eta,
                                                 admit_rate=rate.configured, eta_range=span)):
            waiter.position, waiter.eta, waiter.rate = position, eta, rate.configured
            waiter.span = span
            waiter.sent_at = now

    async def dispatch(self, event: AnyEvent) -> None:
        """An admission, expiry or sold-out change published by an admitter or another process."""
        if isinstance(event, SoldOutEvent):
            view = self.concerts.get(event.concert_id)
            if view is not None:
                await self.sold_out(view, event.sold_out)
            return
        for token in event.tokens:
            for waiter in list(self.by_token.get(token, ())):
                if isinstance(event, AdmittedEvent):
                    await self.admitted(waiter, event.expires_ms)
                else:
                    await self.expired(waiter, event.reason)

    async def sold_out(self, view: ConcertView, sold_out: bool) -> None:
        """Tell the concert's waiters it sold out; once seats are back, positions resume."""
        for waiter in list(view.waiters):
            await self.tell_sold_out(waiter, sold_out)

    async def tell_sold_out(self, waiter: Waiter, sold_out: bool) -> None:
        if not waiter.waiting or waiter.told_sold_out == sold_out:
            return
        if sold_out:
            if await self.send(waiter, SoldOutFrame(concert_id=waiter.concert_id)):
                waiter.told_sold_out = True
        else:
            # Seats are back: the next tick sends the position again, whatever it is.
            waiter.told_sold_out = False
            waiter.position = waiter.eta = waiter.span = None
            waiter.sent_at = 0.0

    def close_every(self, code: int, message: bytes) -> int:
        """Close every socket of this process in the background; returns how many."""
        waiters = [w for view in self.concerts.values() for w in view.waiters if not w.ws.closed]
        for waiter in waiters:
            self.close(waiter, code, message)
        return len(waiters)

    async def close_all(self) -> None:
        """Shutdown: tell every client to reconnect elsewhere (1001)."""
        for view in list(self.concerts.values()):
            for waiter in list(view.waiters):
                self.close(waiter, WSCloseCode.GOING_AWAY, b"server going away")
        if self._closing:
            await asyncio.wait(list(self._closing), timeout=CLOSE_ALL_TIMEOUT)
