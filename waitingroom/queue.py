"""The waiting room in Redis: the one module that speaks to it.

Joining, polling, leaving, sockets holding tokens, the admitter's tick, process leases, live
configuration, figures and pub/sub. Several keys change together only inside a Lua script
(`lua/`); everything else is a single command or a read.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import math
import os
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.typing import EncodableT, FieldT

from booking.errors import TokenInvalid
from booking.gate import TokenState

from . import keys
from .keys import ConcertKeys
from .records import REASONS, STATE_CODES, AdmissionMode, ExpiryReason, RateInfo, TokenRecord, text
from .schemas import AdmittedEvent, AnyEvent, ExpiredEvent, SoldOutEvent
from .scripts import AutoPipeline, Client, Scripts
from .settings import Settings

# The queue score of tokens that joined before a scheduled opening (lua/_lib.lua PRE_SCORE).
PRE_SCORE = -(2**52)

# ETA accuracy (lua/etalog.lua): admitted tokens scored per concert per tick at most, the
# shortest wait scored (a tick's granularity would swamp shorter ones), and errors kept.
ETA_SCORED_PER_TICK = 50
ETA_LEAST_WAIT_MS = 5000
ETA_ERRORS_KEPT = 1000

# A token names its concert (see new_token). Tokens of concerts whose ids do not fit, and those
# made before tokens named their concert, are found through an index entry (keys.token_index),
# which outlives any sane sale; an expired token's is cut to the retention period.
INDEX_TTL = 7 * 86400
CONCERT_BITS = 48
# Index-found tokens whose concert a process remembers. A token names one concert for life and
# is never reused, so a remembered answer cannot go stale: a token that is gone is still told
# by its record being gone. Saves the index read on every booking call, status poll and socket.
KNOWN_TOKENS = 100_000
# Parsed rate figures a process keeps (see Queues._rate); a measured rate changes every tick.
KNOWN_RATES = 1000

_encode = msgspec.json.Encoder().encode
_decode_event = msgspec.json.Decoder(AnyEvent).decode


def nameable(concert_id: int) -> bool:
    """Whether the concert's tokens can name it (else they go through the index)."""
    return 0 < concert_id < 1 << CONCERT_BITS


def new_token(concert_id: int) -> str:
    """A new token in a UUID's text form: RFC 9562 version 8, the concert's id in its first 48
    bits and 74 random bits after, so that any process can tell a token's concert without asking
    Redis; a random version 4 UUID (found through the index) for an id that does not fit."""
    b = bytearray(os.urandom(16))
    if nameable(concert_id):
        b[0:6] = concert_id.to_bytes(6, "big")
        b[6] = (b[6] & 0x0F) | 0x80
    else:
        b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_HEX = frozenset("0123456789abcdef")


def concert_named(token: str) -> int | None:
    """The concert a version 8 token names, or None: a token of the index (version 4) or a
    string that is no token. Whether the token exists is for its concert's records to say."""
    if len(token) != 36 or token[14] != "8" or token[8] != "-":
        return None
    head = token[:8] + token[9:13]
    if not _HEX.issuperset(head):
        return None
    return int(head, 16) or None


@functools.lru_cache(maxsize=4096)
def concert_keys(concert_id: int) -> tuple[str, ...]:
    """KEYS[1..NK] of every concert script: the concert's key prefix, from which lua/_lib.lua
    names its keys (built once per concert: every join, poll and socket passes it)."""
    return (ConcertKeys(concert_id).prefix,)


class Ticket(msgspec.Struct, frozen=True):
    """A token's place as a client sees it (a Struct: immutable, and made for every join and
    poll at a fraction of a frozen dataclass's cost)."""

    concert_id: int
    token: str
    record: TokenRecord
    position: int | None
    rate: RateInfo
    created: bool = False
    opens_ms: int | None = None  # in the pre-queue (ticket 0): the opening it waits for


@dataclasses.dataclass(frozen=True, slots=True)
class Figures:
    concert_id: int
    waiting: int
    active: int
    admitted_total: int
    dropped_total: int
    admit_rate: float
    max_active: int
    paused: bool
    measured_rate: float | None
    sold_out: bool
    on_sale: int  # -1: not known
    admission_mode: AdmissionMode = "fixed"
    # What the admitter chose on its last tick in inventory mode (None: nothing yet).
    chosen_rate: float | None = None
    rate_reason: str | None = None
    rate_detail: str | None = None
    # Tokens ended since the start, by reason (timeout, left, completed, dropped).
    ended: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class EtaAccuracy:
    """Relative errors of the ETAs given (|predicted - actual| / actual), over the latest
    scored predictions; None without any."""

    median: float | None
    p90: float | None
    samples: int

    @classmethod
    def of(cls, errors: Sequence[float]) -> EtaAccuracy:
        if not errors:
            return cls(None, None, 0)
        ranked = sorted(errors)

        def rank(q: float) -> float:  # nearest rank
            return ranked[max(0, math.ceil(q * len(ranked)) - 1)]

        return cls(rank(0.5), rank(0.9), len(ranked))


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """One concert's queue as a position tick reads it: the cursor and the departures since."""

    cursor: int
    depseq: int
    departed: list[int]  # tickets; all of them when asked with seq None, else those after seq
    rate: RateInfo
    issued: int  # the highest ticket ever issued: below a socket's own, Redis lost the queue


@dataclasses.dataclass(frozen=True, slots=True)
class Admitted:
    token: str
    user_id: int
    ticket: int


@dataclasses.dataclass(slots=True)
class Admission:
    """What one admitter tick did to one concert."""

    admitted: list[Admitted] = dataclasses.field(default_factory=list)
    timed_out: list[str] = dataclasses.field(default_factory=list)
    dropped: list[str] = dataclasses.field(default_factory=list)
    deadline_ms: int = 0

    @property
    def admitted_tokens(self) -> list[str]:
        return [a.token for a in self.admitted]


def _mode(raw: Any) -> AdmissionMode:
    return "inventory" if raw is not None and text(raw) == "inventory" else "fixed"


def _int(v: Any, default: int = 0) -> int:
    return int(v) if v is not None else default


class Queues:
    """Every queue operation a web process or an admitter performs on Redis."""

    def __init__(self, redis: Client, settings: Settings) -> None:
        self.redis = redis
        self.cluster = isinstance(redis, RedisCluster)
        self.settings = settings
        self.scripts = Scripts.register(redis)
        self.batch = AutoPipeline(redis)
        # Ordered by when remembered: the oldest goes first, in constant time (a plain dict's
        # first key is found by stepping over every slot its earlier deletions left behind,
        # which at KNOWN_TOKENS cost more than the rest of a join).
        self._concert_of: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._rates: dict[tuple[Any, ...], RateInfo] = {}

    def _rate(self, cfg_rate: Any, paused: Any, measured: Any, on_sale: Any) -> RateInfo:
        # The same few raw figures come back with every join and poll of a concert until the
        # admitter measures again: parsed once each (a RateInfo is immutable).
        raw = (cfg_rate, paused, measured, on_sale)
        rate = self._rates.get(raw)
        if rate is None:
            if len(self._rates) >= KNOWN_RATES:
                self._rates.clear()
            rate = self._rates[raw] = RateInfo.parse(cfg_rate, paused, measured, on_sale,
                                                     self.settings.admit_rate)
        return rate

    def _ticket(self, concert_id: int, token: str, raw: Sequence[Any], created: bool = False
                ) -> Ticket:
        record = TokenRecord.parse(raw[0])
        position = int(raw[1]) if record.state == "WAITING" and record.ticket else None
        return Ticket(concert_id, token, record, position, self._rate(*raw[2:6]), created)

    async def ping(self) -> None:
        """Fails unless Redis answers."""
        await self.redis.ping()

    async def clock_ms(self) -> int:
        """Redis's clock in milliseconds: the one clock every process agrees on."""
        sec, usec = await self.redis.time()
        return int(sec) * 1000 + int(usec) // 1000

    # -- a client's token ----------------------------------------------------------------
    async def join(self, concert_id: int, user_id: int) -> Ticket:
        """The user's live token for this concert, or a new one at the back of the line."""
        new = new_token(concert_id)
        indexed = not nameable(concert_id)
        # One round trip: an index entry, when the token needs one, is written alongside, and
        # taken back in the rare case that the user already had a live token. The concert's
        # entry in the set of concerts goes once per batch of joins, not once per join.
        raw, *_ = await self.batch.run(
            self.scripts.join, concert_keys(concert_id), (user_id, new),
            also=(("SET", keys.token_index(new), concert_id, "EX", INDEX_TTL),) if indexed else (),
            once=("SADD", keys.CONCERTS, concert_id))
        created, token, *rest = raw
        token = text(token)
        if indexed and created:
            self._remember(token, concert_id)
        elif indexed:
            await self.redis.delete(keys.token_index(new))
        ticket = self._ticket(concert_id, token, rest, bool(created))
        # Only the pre-queue has more to read: nearly every join is done here.
        return await self._pre_queue(ticket) if ticket.record.ticket == 0 else ticket

    async def _pre_queue(self, ticket: Ticket) -> Ticket:
        """A ticket with the opening it waits for, when it is in the pre-queue (ticket 0)."""
        if ticket.record.state != "WAITING" or ticket.record.ticket:
            return ticket
        raw = await self.redis.hget(ConcertKeys(ticket.concert_id).config, "opens_at")
        if raw is None:
            # Drawn in the meantime: the token has its place now.
            again = await self.status(ticket.token)
            return msgspec.structs.replace(again, created=ticket.created)
        return msgspec.structs.replace(ticket, opens_ms=int(text(raw)))

    async def concert_of(self, token: str) -> int:
        named = concert_named(token)
        if named is not None:
            return named
        known = self._concert_of.get(token)
        if known is not None:
            return known
        raw = await self.redis.get(keys.token_index(token))
        if raw is None:
            raise TokenInvalid()
        self._remember(token, int(raw))
        return int(raw)

    def _remember(self, token: str, concert_id: int) -> None:
        if len(self._concert_of) >= KNOWN_TOKENS:
            self._concert_of.popitem(last=False)  # the oldest
        self._concert_of[token] = concert_id

    async def status(self, token: str) -> Ticket:
        """Where a token stands; a poll is a sign of life for a waiting token."""
        concert_id = await self.concert_of(token)
        raw = await self.scripts.status(keys=concert_keys(concert_id), args=[token])
        if not raw:
            raise TokenInvalid()
        return await self._pre_queue(self._ticket(concert_id, token, raw))

    async def lookup(self, token: str) -> tuple[int, TokenRecord]:
        """The token's concert and record, read without counting as a sign of life."""
        concert_id = await self.concert_of(token)
        raw = await self.batch.command("HGET", ConcertKeys(concert_id).tokens, token)
        if raw is None:
            raise TokenInvalid()
        return concert_id, TokenRecord.parse(raw)

    async def end(self, token: str, reason: ExpiryReason,
                  only: TokenState | None = None) -> tuple[int, TokenRecord]:
        """Expire a live token (only if it is in state `only`, when given) and tell its sockets.

        Returns the record as it was before (an AVAILABLE one ended now: see tokenlog).
        """
        concert_id = await self.concert_of(token)
        index = None if concert_named(token) is not None else keys.token_index(token)
        event = _encode(ExpiredEvent(tokens=[token], reason=reason))
        # One round trip (shared with the other calls of this event-loop turn): the script
        # publishes the event itself, and an index entry's cut to the retention period rides
        # along (on a cluster the index lives in another slot, so it cannot be in the script).
        raw, *_ = await self.batch.run(
            self.scripts.leave, concert_keys(concert_id),
            (token, reason, STATE_CODES[only] if only else "", keys.channel(concert_id), event),
            also=(("EXPIRE", index, self.settings.token_retention),) if index else ())
        if not raw:
            raise TokenInvalid()
        before = TokenRecord.parse(raw)
        if index and before.state != "EXPIRED" and only not in (None, before.state):
            # Live and not ended (not in the state asked for): its index must outlive it. A
            # payment's end never comes here (an admitted token never waits again).
            await self.redis.expire(index, INDEX_TTL)
        return concert_id, before

    # -- sockets holding tokens ----------------------------------------------------------
    async def attach(self, token: str, proc_id: str) -> Ticket:
        """A socket opens for this token on process proc_id."""
        concert_id = await self.concert_of(token)
        k = ConcertKeys(concert_id)
        raw = await self.scripts.attach(keys=[*concert_keys(concert_id), k.held(proc_id)],
                                        args=[token])
        if not raw:
            raise TokenInvalid()
        return await self._pre_queue(self._ticket(concert_id, token, raw))

    async def detach(self, concert_id: int, token: str, proc_id: str, others: Sequence[str]) -> None:
        """The process's last socket for this token closed."""
        k = ConcertKeys(concert_id)
        await self.scripts.detach(
            keys=[*concert_keys(concert_id), k.held(proc_id), *(k.held(p) for p in others)],
            args=[token])

    async def hold_again(self, proc_id: str, tokens: Sequence[tuple[int, str]]) -> None:
        """Hold these (concert id, token) again for proc_id after its lease lapsed."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for concert_id, token in tokens:
                k = ConcertKeys(concert_id)
                pipe.sadd(k.held(proc_id), token)
                pipe.zadd(k.seen, {token: float("inf")}, xx=True)
            await pipe.execute()

    async def records(self, tokens: Sequence[tuple[int, str]]) -> list[TokenRecord | None]:
        """The records of these (concert id, token), None for a token that is gone."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for concert_id, token in tokens:
                pipe.hget(ConcertKeys(concert_id).tokens, token)
            raw = await pipe.execute()
        return [TokenRecord.parse(r) if r is not None else None for r in raw]

    async def snapshots(self, wanted: Sequence[tuple[int, int | None]]) -> list[Snapshot]:
        """For each (concert id, last departure seq read or None): the queue's cursor and the
        departures since, each concert read by one script as one consistent moment (its keys
        share a slot; concerts may live on different Redis Cluster nodes). Issued in one
        event-loop turn: one round trip for all of them (one per node on a cluster)."""
        raws = await asyncio.gather(*(
            self.batch.run(self.scripts.snapshot, concert_keys(concert_id),
                           ["" if seq is None else seq])
            for concert_id, seq in wanted))
        out = []
        for (raw,) in raws:
            cursor, depseq, measured, on_sale, cfg_rate, paused, issued, departed = raw
            out.append(Snapshot(_int(cursor), _int(depseq), [int(t) for t in departed],
                                self._rate(cfg_rate, paused, measured, on_sale), _int(issued)))
        return out

    # -- rate limits -----------------------------------------------------------------------
    async def take(self, kind: str, subject: str, per_minute: int) -> float:
        """Count one call of subject against its per-minute limit: 0 if allowed, else seconds
        until one would be. Calls made in the same event-loop turn share a round trip."""
        interval_ms = max(1, 60_000 // per_minute)
        (over_ms,) = await self.batch.run(self.scripts.limit, [keys.rate_key(kind, subject)],
                                          [interval_ms, 60_000])
        return int(over_ms) / 1000

    # -- web process leases --------------------------------------------------------------
    async def lease(self, proc_id: str, lease_ms: int) -> tuple[bool, list[str]]:
        """Renew proc_id's lease: (whether it had lapsed or is new, the other live processes)."""
        lapsed, *live = await self.scripts.lease(keys=[keys.PROCS], args=[proc_id, lease_ms])
        return bool(lapsed), [p for p in map(text, live) if p != proc_id]

    async def dead_processes(self) -> list[str]:
        """Web processes whose lease ran out."""
        return [text(p) for p in await self.redis.zrangebyscore(keys.PROCS, "-inf",
                                                                await self.clock_ms())]

    async def reap(self, dead: Sequence[str]) -> int:
        """Release the tokens held by these processes, in every concert; returns how many."""
        if not dead:
            return 0
        now_ms = await self.clock_ms()
        live = [p for p in map(text, await self.redis.zrangebyscore(keys.PROCS, now_ms, "+inf"))
                if p not in dead]
        released = 0
        for cid in await self.concert_ids():
            k = ConcertKeys(cid)
            released += await self.scripts.reap(
                keys=[*concert_keys(cid), *(k.held(p) for p in dead), *(k.held(p) for p in live)],
                args=[len(dead)])
        await self.redis.zrem(keys.PROCS, *dead)
        return released

    # -- the admitter ----------------------------------------------------------------------
    async def concert_ids(self) -> list[int]:
        """Concerts that have ever had a queue."""
        return [int(text(c)) for c in await self.redis.smembers(keys.CONCERTS)]

    async def admit(self, concert_id: int, rate_cap: float | None = None,
                    people_cap: int | None = None) -> Admission:
        """One admission tick of one concert: admit, time out, drop, and tell every process.

        rate_cap lowers the configured rate for this tick; people_cap bounds the AVAILABLE
        tokens after it (active + admitted now), below max_active (inventory mode)."""
        s = self.settings
        admitted_raw, timed_out_raw, dropped_raw, deadline = await self.scripts.admit(
            keys=concert_keys(concert_id),
            args=[s.admit_rate, s.max_active, s.active_ttl * 1000, s.wait_grace * 1000,
                  s.token_retention * 1000, s.admit_batch, s.tick_interval, s.departure_log,
                  "" if rate_cap is None else repr(float(rate_cap)),
                  "" if people_cap is None else max(0, people_cap)])
        out = Admission(
            admitted=[Admitted(text(t), int(u), int(n)) for t, u, n in
                      zip(admitted_raw[0::3], admitted_raw[1::3], admitted_raw[2::3], strict=True)],
            timed_out=[text(t) for t in timed_out_raw],
            dropped=[text(t) for t in dropped_raw],
            deadline_ms=int(deadline))
        if out.admitted:
            await self.publish(concert_id, AdmittedEvent(tokens=[a.token for a in out.admitted],
                                                         expires_ms=out.deadline_ms))
        ended: list[tuple[ExpiryReason, list[str]]] = [("timeout", out.timed_out),
                                                      ("dropped", out.dropped)]
        for reason, tokens in ended:
            if not tokens:
                continue
            await self.publish(concert_id, ExpiredEvent(tokens=tokens, reason=reason))
            indexed = [t for t in tokens if concert_named(t) is None]
            if indexed:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for token in indexed:
                        pipe.expire(keys.token_index(token), s.token_retention)
                    await pipe.execute()
        return out

    async def log_eta(self, concert_id: int, admitted: Sequence[int]) -> int:
        """Note the ETAs of those who joined since the last tick, and of those a whole minute
        older; score the notes of the tickets just admitted. Returns the errors recorded."""
        k = ConcertKeys(concert_id)
        return int(await self.scripts.etalog(
            keys=[*concert_keys(concert_id), k.eta_cohorts, k.eta_index, k.eta_due, k.eta_errors],
            args=[ETA_SCORED_PER_TICK, ETA_LEAST_WAIT_MS, ETA_ERRORS_KEPT,
                  self.settings.admit_rate, *admitted]))

    async def eta_accuracy(self, concert_ids: Sequence[int]) -> dict[int, EtaAccuracy]:
        """How far off each concert's ETAs were, per lua/etalog.lua."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for cid in concert_ids:
                pipe.lrange(ConcertKeys(cid).eta_errors, 0, -1)
            raw = await pipe.execute()
        return {cid: EtaAccuracy.of([float(e) for e in errors])
                for cid, errors in zip(concert_ids, raw, strict=True)}

    async def restore(self, saved: Sequence[tuple[int, float | None, int | None, bool | None,
                                                  AdmissionMode | None]]) -> int:
        """Put back the operator's settings of concerts whose live configuration Redis lost
        (it came back empty); returns how many concerts were restored."""
        if not saved:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for concert_id, *_ in saved:
                pipe.exists(ConcertKeys(concert_id).config)
            present = await pipe.execute()
        restored = 0
        for (concert_id, admit_rate, max_active, paused, mode), exists in zip(saved, present,
                                                                            strict=True):
            if not exists and (admit_rate, max_active, paused, mode) != (None, None, None, None):
                await self.configure(concert_id, admit_rate=admit_rate, max_active=max_active,
                                     paused=paused, admission_mode=mode)
                restored += 1
        return restored

    async def admitted_now(self, concert_id: int) -> list[tuple[str, int, int, int]]:
        """(token, user id, ticket, deadline ms) of every AVAILABLE token of the concert."""
        k = ConcertKeys(concert_id)
        active: list[tuple[bytes, float]] = await self.redis.zrange(  # type: ignore[assignment]
            k.active, 0, -1, withscores=True)
        if not active:
            return []
        raws = await self.redis.hmget(k.tokens, [t for t, _ in active])
        out = []
        for (token, deadline), raw in zip(active, raws, strict=True):
            if raw is not None:
                rec = TokenRecord.parse(raw)
                if rec.state == "AVAILABLE":
                    out.append((text(token), rec.user_id, rec.ticket, int(deadline)))
        return out

    # -- changes waiting for PostgreSQL ------------------------------------------------------
    async def defer(self, blob: bytes) -> None:
        await self.redis.rpush(keys.DEFERRED, blob)

    async def take_deferred(self, count: int) -> list[bytes]:
        """Up to count of the oldest deferred changes, taken off the list."""
        taken: list[bytes] | None = await self.redis.lpop(keys.DEFERRED, count)  # type: ignore[assignment]
        return list(taken or [])

    async def put_back(self, blobs: Sequence[bytes]) -> None:
        """Return changes that could not be written yet, at the head, in their order."""
        if blobs:
            await self.redis.lpush(keys.DEFERRED, *reversed(blobs))

    # -- seats on sale -----------------------------------------------------------------------
    async def record_on_sale(self, counts: dict[int, int]) -> None:
        """Record the seats on sale of every concert with a queue (not in counts: not known),
        and tell the sockets of those that just sold out or have seats again."""
        ids = sorted(set(await self.concert_ids()) | set(counts))
        # Issued in one event-loop turn: one round trip for all of them.
        flips = await asyncio.gather(*(
            self.batch.run(self.scripts.stock, concert_keys(cid),
                           ["" if counts.get(cid) is None else max(0, counts[cid])])
            for cid in ids))
        for cid, (flip,) in zip(ids, flips, strict=True):
            if flip:
                await self.publish(cid, SoldOutEvent(concert_id=cid, sold_out=int(flip) > 0))

    # -- pub/sub ---------------------------------------------------------------------------
    async def publish(self, concert_id: int, event: AnyEvent) -> None:
        """Tell every web process's sockets of this concert."""
        await self.redis.publish(keys.channel(concert_id), _encode(event))

    async def follow(self, on_event: Callable[[AnyEvent], Awaitable[None]],
                     on_malformed: Callable[[bytes], None]) -> None:
        """Hand every concert's events to on_event until the connection fails (then raise).

        On a Redis Cluster, PUBLISH reaches every node (primaries and replicas), so one
        pattern subscription on any node hears every concert: a node picked at random spreads
        the web processes' subscriptions, and after a failure the listener's next try picks
        again from the nodes the client knows then."""
        pubsub: PubSub
        if isinstance(self.redis, RedisCluster):
            await self.redis.initialize()
            pubsub = self.redis.pubsub(node=random.choice(self.redis.get_nodes()),
                                       ignore_subscribe_messages=True)
        else:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.psubscribe(keys.CHANNEL_PATTERN)
            async for message in pubsub.listen():
                if message["type"] != "pmessage":
                    continue
                try:
                    event = _decode_event(message["data"])
                except msgspec.DecodeError:
                    on_malformed(message["data"])
                    continue
                await on_event(event)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    # -- operators -------------------------------------------------------------------------
    async def figures(self, concert_ids: Sequence[int]) -> dict[int, Figures]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for cid in concert_ids:
                k = ConcertKeys(cid)
                pipe.zcard(k.queue)
                pipe.zcard(k.active)
                pipe.hmget(k.state, "admitted_total", "dropped_total", "rate", "on_sale",
                           "chosen_rate", "rate_reason", "rate_detail",
                           *(f"ended:{reason}" for reason in REASONS))
                pipe.hmget(k.config, "admit_rate", "max_active", "paused", "admission_mode")
            raw = await pipe.execute()
        out = {}
        for i, cid in enumerate(concert_ids):
            waiting, active, state, (rate, max_active, paused, mode) = raw[4 * i:4 * i + 4]
            admitted, dropped, measured, on_sale, chosen, reason, detail, *ended = state
            info = self._rate(rate, paused, measured, on_sale)
            out[cid] = Figures(cid, waiting, active, _int(admitted), _int(dropped), info.configured,
                               _int(max_active, self.settings.max_active), info.paused,
                               info.measured, info.sold_out, _int(on_sale, -1), _mode(mode),
                               float(text(chosen)) if chosen is not None else None,
                               text(reason) if reason is not None else None,
                               text(detail) if detail is not None else None,
                               dict(zip(REASONS, map(_int, ended), strict=True)))
        return out

    async def modes(self, concert_ids: Sequence[int]) -> dict[int, AdmissionMode]:
        """Each concert's admission mode, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for cid in concert_ids:
                pipe.hget(ConcertKeys(cid).config, "admission_mode")
            raw = await pipe.execute()
        return {cid: _mode(m) for cid, m in zip(concert_ids, raw, strict=True)}

    async def record_choice(self, concert_id: int, rate: float | None, reason: str | None,
                            detail: str | None) -> None:
        """What the admitter chose for this concert (None: forget it, back to fixed)."""
        k = ConcertKeys(concert_id)
        if rate is None:
            await self.redis.hdel(k.state, "chosen_rate", "rate_reason", "rate_detail")
        else:
            await self.redis.hset(k.state, mapping={"chosen_rate": repr(float(rate)),
                                                    "rate_reason": reason or "",
                                                    "rate_detail": detail or ""})

    # -- the booking API's latency, as every web process measures it -------------------------
    async def report_latency(self, proc_id: str, p95_ms: float) -> None:
        """This process's p95 booking latency over its recent window (see latency.py)."""
        await self.redis.hset(keys.BOOKING_P95, proc_id, f"{p95_ms!r}:{await self.clock_ms()}")

    async def booking_p95(self, fresh_ms: int) -> float | None:
        """The highest p95 that any web process reported in the last fresh_ms (None: none);
        older reports (a process that stopped) are removed."""
        raw = await self.redis.hgetall(keys.BOOKING_P95)
        now = await self.clock_ms()
        worst: float | None = None
        stale = []
        for proc, value in raw.items():
            p95, _, at = text(value).partition(":")
            try:
                figure, when = float(p95), int(at)
            except ValueError:
                stale.append(proc)
                continue
            if now - when > fresh_ms:
                stale.append(proc)
            elif worst is None or figure > worst:
                worst = figure
        if stale:
            await self.redis.hdel(keys.BOOKING_P95, *stale)
        return worst

    async def configure(self, concert_id: int, *, admit_rate: float | None = None,
                        max_active: int | None = None, paused: bool | None = None,
                        admission_mode: AdmissionMode | None = None) -> None:
        """Change a concert's live configuration; every process reads it within a tick."""
        fields: dict[FieldT, EncodableT] = {}
        if admit_rate is not None:
            fields["admit_rate"] = repr(float(admit_rate))
        if max_active is not None:
            fields["max_active"] = str(max_active)
        if paused is not None:
            fields["paused"] = "1" if paused else "0"
        if admission_mode is not None:
            fields["admission_mode"] = admission_mode
        k = ConcertKeys(concert_id)
        # The MULTI touches only the concert's keys (one slot); the set of concerts is another.
        if fields:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(k.config, mapping=fields)
                if admit_rate is not None or paused is not None:
                    # A new regime: what was measured under the old one says nothing of it.
                    pipe.delete(k.history)
                    pipe.hdel(k.state, "rate")
                if admission_mode is not None:
                    pipe.hdel(k.state, "chosen_rate", "rate_reason", "rate_detail")
                await pipe.execute()
        await self.redis.sadd(keys.CONCERTS, concert_id)

    # -- scheduled openings (see draw.py and lua/draw.lua) -------------------------------------
    async def opening(self, concert_id: int) -> tuple[int | None, bool]:
        """The opening this concert waits for (ms, Redis clock), and whether a draw's HMACs
        still wait to be written to PostgreSQL."""
        k = ConcertKeys(concert_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(k.config, "opens_at")
            pipe.hexists(k.state, "draw_hmacs")
            opens, unrevealed = await pipe.execute()
        return (int(text(opens)) if opens else None), bool(unrevealed)

    async def schedule(self, concert_id: int, opens_ms: int) -> None:
        """Joins wait in the pre-queue, and nobody is admitted, until the draw at opens_ms."""
        await self.redis.hset(ConcertKeys(concert_id).config, "opens_at", str(opens_ms))
        await self.redis.sadd(keys.CONCERTS, concert_id)

    async def pre_queue(self, concert_id: int) -> list[str]:
        """The tokens that joined before the opening, in no particular order."""
        return [text(t) for t in await self.redis.zrangebyscore(
            ConcertKeys(concert_id).queue, PRE_SCORE, PRE_SCORE)]

    async def draw(self, concert_id: int, opens_ms: int, drawn: Sequence[tuple[str, str]]) -> int:
        """Place the pre-queue in the drawn order ((token, HMAC) ascending by HMAC): 1 done,
        0 nothing to draw, -1 the list is not the whole pre-queue."""
        args: list[EncodableT] = [str(opens_ms)]
        for token, mac in drawn:
            args += [token, mac]
        status, _ = await self.scripts.draw(keys=concert_keys(concert_id), args=args)
        return int(status)

    async def unrevealed(self, concert_id: int) -> tuple[int, str] | None:
        """A draw's opening and HMACs (hex, concatenated) not yet written to PostgreSQL."""
        opens, hmacs = await self.redis.hmget(ConcertKeys(concert_id).state, "draw_opens",
                                              "draw_hmacs")
        if opens is None or hmacs is None:
            return None
        return int(text(opens)), text(hmacs)

    async def revealed(self, concert_id: int) -> None:
        await self.redis.hdel(ConcertKeys(concert_id).state, "draw_hmacs")

    async def restore_openings(self, pending: Sequence[tuple[int, int]]) -> int:
        """Put back scheduled openings ((concert id, ms)) that Redis lost and has not drawn."""
        restored = 0
        for concert_id, opens_ms in pending:
            k = ConcertKeys(concert_id)
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hget(k.config, "opens_at")
                pipe.hget(k.state, "draw_opens")
                current, drawn = await pipe.execute()
            if current is None and (drawn is None or int(text(drawn)) != opens_ms):
                await self.schedule(concert_id, opens_ms)
                restored += 1
        return restored
