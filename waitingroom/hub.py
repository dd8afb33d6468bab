"""This web process's waiting sockets: live positions, admissions and expiries.

Positions are worked out locally. A ticket's position is its number minus the admission cursor
minus the tickets that left the queue between the cursor and it. Each tick a process reads the
cursor and only the departures since its last tick, one round trip per concert: the Redis work
does not grow with the number of waiters, and the CPU grows linearly with this process's sockets.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import logging
import time
import uuid
from collections.abc import Iterable

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.base_protocol import BaseProtocol
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import keys
from .keys import ConcertKeys
from .queue import Queues, concert_keys, redis_ms
from .records import RateInfo, TokenRecord, rfc3339, text
from .schemas import (
    AdmittedEvent,
    AdmittedFrame,
    AnyEvent,
    ExpiredFrame,
    Frame,
    PositionFrame,
)
from .ticker import every

log = logging.getLogger(__name__)

# A client whose unsent output passes this is too slow: it gets no more updates until it drains,
# and is closed if it stays behind, so it never holds up the others.
SLOW_CLIENT_BYTES = 64 * 1024
SLOW_CLIENT_TICKS = 10
# Close code for a token that has expired (also used after an "expired" frame).
CLOSE_EXPIRED = 4410
# A tick hands the event loop back this often (sockets), so other work is never held up long.
YIELD_EVERY = 256
CLOSE_UNKNOWN = 4401

_encode = msgspec.json.Encoder().encode
_decode_event = msgspec.json.Decoder(AnyEvent).decode


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
    position: int | None = None
    eta: int | None = None
    rate: float | None = None
    slow_ticks: int = 0


@dataclasses.dataclass(slots=True)
class ConcertView:
    """What this process knows of one concert's queue."""

    cursor: int = 0
    departed: list[int] = dataclasses.field(default_factory=list)  # sorted, all > cursor
    seq: int | None = None  # last departure sequence number read; None: read them all again
    rate: RateInfo | None = None
    waiters: set[Waiter] = dataclasses.field(default_factory=set)

    def position(self, ticket: int) -> int:
        return ticket - self.cursor - bisect.bisect_left(self.departed, ticket)


class Hub:
    def __init__(self, queues: Queues, tick_interval: float) -> None:
        self.queues = queues
        self.redis: Redis = queues.redis
        self.tick_interval = tick_interval
        self.proc_id = uuid.uuid4().hex
        self.others: list[str] = []
        self.by_token: dict[str, list[Waiter]] = {}
        self.concerts: dict[int, ConcertView] = {}
        self.last_tick_seconds = 0.0
        self.frames_sent = 0
        self._closing: set[asyncio.Task[bool]] = set()

    # -- sockets -------------------------------------------------------------------------
    def add(self, waiter: Waiter) -> None:
        self.by_token.setdefault(waiter.token, []).append(waiter)
        self.concerts.setdefault(waiter.concert_id, ConcertView()).waiters.add(waiter)

    async def remove(self, waiter: Waiter) -> None:
        """Forget a closed socket; the token's grace period starts if no other socket holds it."""
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
        if not same:
            await self.queues.detach(waiter.concert_id, waiter.token, self.proc_id, self.others)

    @property
    def socket_count(self) -> int:
        return sum(len(v.waiters) for v in self.concerts.values())

    async def send(self, waiter: Waiter, frame: Frame) -> bool:
        """Send one frame unless the client is too far behind; never waits on a slow client."""
        ws = waiter.ws
        if ws.closed:
            return False
        transport, protocol = waiter.transport, waiter.protocol
        # A paused protocol would make the send wait for the client to drain: skip instead.
        if (protocol is not None and protocol.writing_paused) or (
                transport is not None and transport.get_write_buffer_size() > SLOW_CLIENT_BYTES):
            waiter.slow_ticks += 1
            if waiter.slow_ticks >= SLOW_CLIENT_TICKS:
                self.close(waiter, WSCloseCode.POLICY_VIOLATION, b"too slow")
            return False
        waiter.slow_ticks = 0
        try:
            await ws.send_frame(_encode(frame), WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):
            return False
        self.frames_sent += 1
        return True

    async def admitted(self, waiter: Waiter, expires_ms: int | None) -> None:
        waiter.waiting = False
        waiter.position = None
        waiter.expires_ms = expires_ms
        await self.send(waiter, AdmittedFrame(expires_at=rfc3339(expires_ms),
                                              concert_id=waiter.concert_id))

    def close(self, waiter: Waiter, code: int, message: bytes) -> None:
        """Close a socket in the background: the closing handshake waits on the client."""
        task = asyncio.get_running_loop().create_task(waiter.ws.close(code=code, message=message))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def expired(self, waiter: Waiter, reason: str) -> None:
        await self.send(waiter, ExpiredFrame(reason=reason))  # type: ignore[arg-type]
        self.close(waiter, CLOSE_EXPIRED, b"token expired")

    async def position(self, waiter: Waiter, view: ConcertView, position: int) -> None:
        """Send the position if it or the ETA changed; a position never goes up."""
        if waiter.position is not None and position > waiter.position:
            position = waiter.position
        rate = view.rate or RateInfo(self.queues.settings.admit_rate, False, None)
        eta = rate.eta(position)
        if position == waiter.position and eta == waiter.eta and rate.configured == waiter.rate:
            return
        if await self.send(waiter, PositionFrame(position=position, eta_seconds=eta,
                                                 admit_rate=rate.configured)):
            waiter.position, waiter.eta, waiter.rate = position, eta, rate.configured

    # -- events from other processes -----------------------------------------------------
    async def dispatch(self, event: AnyEvent) -> None:
        for token in event.tokens:
            for waiter in list(self.by_token.get(token, ())):
                if isinstance(event, AdmittedEvent):
                    await self.admitted(waiter, event.expires_ms)
                else:
                    await self.expired(waiter, event.reason)

    async def listen(self) -> None:
        """Follow every concert's channel; reconnect after a Redis outage."""
        backoff = 0.1
        me = asyncio.current_task()
        while True:
            if me is not None and me.cancelling():  # see ticker.every
                raise asyncio.CancelledError()
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(keys.CHANNEL_PATTERN)
                backoff = 0.1
                async for message in pubsub.listen():
                    if message["type"] != "pmessage":
                        continue
                    try:
                        event = _decode_event(message["data"])
                    except msgspec.DecodeError:
                        log.warning("ignored a malformed event %r", message["data"][:100])
                        continue
                    await self.dispatch(event)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a lost connection: keep listening once Redis is back
                log.warning("pub/sub listener: %r; reconnecting", e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    # -- the tick ------------------------------------------------------------------------
    async def run(self) -> None:
        await every(self.tick_interval, self.tick, "position tick")

    async def tick(self) -> None:
        started = time.perf_counter()
        lease_ms = int(max(2.0, 5 * self.tick_interval) * 1000)
        lapsed, *live = await self.queues.scripts.lease(keys=[keys.PROCS],
                                                        args=[self.proc_id, lease_ms])
        self.others = [p.decode() for p in live if p.decode() != self.proc_id]
        if lapsed and self.by_token:
            # Our lease ran out (a long pause) and an admitter may have released our sockets'
            # tokens: hold them again before their grace period ends.
            await self._reattach()
        concerts = [(cid, view) for cid, view in self.concerts.items() if view.waiters]
        if not concerts:
            self.last_tick_seconds = time.perf_counter() - started
            return
        # One MULTI: the cursor and the departures are read as one consistent snapshot.
        async with self.redis.pipeline(transaction=True) as pipe:
            for cid, view in concerts:
                k = ConcertKeys(cid)
                pipe.hmget(k.state, "cursor", "depseq", "rate")
                pipe.hmget(k.config, "admit_rate", "paused")
                if view.seq is None:
                    pipe.zrange(k.departed, 0, -1)
                else:
                    pipe.zrangebyscore(k.deplog, f"({view.seq}", "+inf")
            raw = await pipe.execute()
        recheck: list[Waiter] = []
        for i, (_, view) in enumerate(concerts):
            (cursor, depseq, measured), (cfg_rate, paused), departed = raw[3 * i:3 * i + 3]
            self._advance(view, int(cursor or 0), int(depseq or 0), departed)
            view.rate = RateInfo.parse(cfg_rate, paused, measured, self.queues.settings.admit_rate)
            now_ms = time.time() * 1000
            for n, waiter in enumerate(list(view.waiters), 1):
                if n % YIELD_EVERY == 0:
                    # Let admissions and expiries from pub/sub through: they must not wait
                    # for a tick over tens of thousands of sockets.
                    await asyncio.sleep(0)
                if waiter.waiting:
                    pos = view.position(waiter.ticket)
                    if pos <= 0:
                        recheck.append(waiter)
                    else:
                        await self.position(waiter, view, pos)
                elif waiter.expires_ms is not None and now_ms > waiter.expires_ms + 1000:
                    recheck.append(waiter)
        if recheck:
            await self._recheck(recheck)
        self.last_tick_seconds = time.perf_counter() - started

    def _advance(self, view: ConcertView, cursor: int, depseq: int, departed: list[bytes]) -> None:
        """Bring the local copy of the departed tickets up to date."""
        if view.seq is None:
            view.departed = sorted(int(t) for t in departed)
            view.seq = depseq
        else:
            fresh = [int(t) for t in departed]
            if view.seq + len(fresh) != depseq:
                # Departures were trimmed before this process read them: read them all next tick.
                view.seq = None
                return
            for ticket in fresh:
                if ticket > cursor:
                    bisect.insort(view.departed, ticket)
            view.seq = depseq
        view.cursor = cursor
        del view.departed[:bisect.bisect_right(view.departed, cursor)]

    async def _recheck(self, waiters: Iterable[Waiter]) -> None:
        """Ask Redis where tokens stand whose admission or expiry this process may have missed."""
        waiters = list(waiters)
        async with self.redis.pipeline(transaction=False) as pipe:
            for w in waiters:
                pipe.hget(ConcertKeys(w.concert_id).tokens, w.token)
            records = await pipe.execute()
        for waiter, raw in zip(waiters, records, strict=True):
            if raw is None:
                await self.expired(waiter, "dropped")
                continue
            rec = TokenRecord.parse(raw)
            if rec.state == "AVAILABLE" and waiter.waiting:
                await self.admitted(waiter, rec.expires_ms)
            elif rec.state == "EXPIRED":
                await self.expired(waiter, rec.reason or "timeout")

    async def _reattach(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for token, waiters in self.by_token.items():
                if waiters and waiters[0].waiting:
                    k = ConcertKeys(waiters[0].concert_id)
                    pipe.sadd(k.held(self.proc_id), token)
                    pipe.zadd(k.seen, {token: float("inf")}, xx=True)
            await pipe.execute()

    async def close_all(self) -> None:
        """Shutdown: tell every client to reconnect elsewhere, and release the held tokens."""
        for view in list(self.concerts.values()):
            for waiter in list(view.waiters):
                self.close(waiter, WSCloseCode.GOING_AWAY, b"server going away")
        if self._closing:
            await asyncio.wait(list(self._closing), timeout=5)
        await self.release()

    async def release(self) -> None:
        """Give up this process's lease: its held tokens start their grace period now.

        With Redis unreachable this is left to the admitters, once the lease runs out."""
        try:
            await reap(self.queues, [self.proc_id])
        except (RedisConnectionError, RedisTimeoutError, OSError) as e:
            log.warning("could not release this process's tokens: %r", e)


async def reap(queues: Queues, dead: list[str]) -> int:
    """Release the tokens held by dead processes, in every concert; returns how many."""
    if not dead:
        return 0
    redis = queues.redis
    concert_ids = [int(text(c)) for c in await redis.smembers(keys.CONCERTS)]
    now_ms = await redis_ms(redis)
    live = [text(p) for p in await redis.zrangebyscore(keys.PROCS, now_ms, "+inf")]
    live = [p for p in live if p not in dead]
    released = 0
    for cid in concert_ids:
        k = ConcertKeys(cid)
        released += await queues.scripts.reap(
            keys=[*concert_keys(cid), *(k.held(p) for p in dead), *(k.held(p) for p in live)],
            args=[len(dead)])
    await redis.zrem(keys.PROCS, *dead)
    return released
