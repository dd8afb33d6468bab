"""The waiting room in Redis: joining, polling, leaving, live configuration and figures."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from . import keys, queries
from .errors import TokenInvalid
from .keys import ConcertKeys
from .records import STATES, RateInfo, TokenRecord
from .schemas import AnyEvent, ExpiredEvent, ExpiryReason
from .scripts import AutoPipeline, Scripts
from .settings import Settings

# A token index entry outlives any sane sale; an expired token's is cut to the retention period.
INDEX_TTL = 7 * 86400


_encode = msgspec.json.Encoder().encode


async def publish(redis: Redis, concert_id: int, event: AnyEvent) -> None:
    """Tell every web process's sockets of this concert."""
    await redis.publish(keys.channel(concert_id), _encode(event))


async def redis_ms(redis: Redis) -> int:
    """Redis's clock in milliseconds: the one clock every process agrees on."""
    sec, usec = await redis.time()
    return int(sec) * 1000 + int(usec) // 1000


def concert_keys(concert_id: int) -> list[str]:
    k = ConcertKeys(concert_id)
    return [k.seq, k.queue, k.active, k.tokens, k.users, k.seen, k.departed, k.deplog, k.state,
            k.config, k.gone]


def valid_token(token: str | None) -> str:
    """The canonical form of a token, or TokenInvalid: a malformed one never reaches Redis."""
    if not token or len(token) != 36:
        raise TokenInvalid()
    try:
        return str(uuid.UUID(token))
    except ValueError:
        raise TokenInvalid() from None


@dataclasses.dataclass(frozen=True, slots=True)
class Ticket:
    """A token's place as a client sees it."""

    concert_id: int
    token: str
    record: TokenRecord
    position: int | None
    rate: RateInfo
    created: bool = False


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


def _int(v: Any, default: int = 0) -> int:
    return int(v) if v is not None else default


class Queues:
    """Every queue operation a web process or an admitter performs on Redis."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.scripts = Scripts.register(redis)
        self.batch = AutoPipeline(redis)

    def _rate(self, cfg_rate: Any, paused: Any, measured: Any) -> RateInfo:
        return RateInfo.parse(cfg_rate, paused, measured, self.settings.admit_rate)

    def _ticket(self, concert_id: int, token: str, raw: Sequence[Any]) -> Ticket:
        record = TokenRecord.parse(raw[0])
        position = int(raw[1]) if record.state == "WAITING" else None
        return Ticket(concert_id, token, record, position, self._rate(*raw[2:5]))

    async def join(self, concert_id: int, user_id: int) -> Ticket:
        """The user's live token for this concert, or a new one at the back of the line."""
        new = str(uuid.uuid4())
        # One round trip: the new token's index is written alongside, and taken back in the
        # rare case that the user already had a live token.
        raw, _, _ = await self.batch.run(self.scripts.join, concert_keys(concert_id),
                                         [user_id, new],
                                         lambda pipe: (pipe.set(keys.token_index(new), concert_id,
                                                                ex=INDEX_TTL),
                                                       pipe.sadd(keys.CONCERTS, concert_id)))
        created, token, state, ticket, expires, position, *rate = raw
        token = token.decode()
        if not created:
            await self.redis.delete(keys.token_index(new))
        record = TokenRecord(STATES[state.decode()], user_id, int(ticket),
                             int(expires) if expires else None, None)
        return Ticket(concert_id, token, record,
                      int(position) if record.state == "WAITING" else None,
                      self._rate(*rate), created=bool(created))

    async def concert_of(self, token: str) -> int:
        raw = await self.redis.get(keys.token_index(token))
        if raw is None:
            raise TokenInvalid()
        return int(raw)

    async def status(self, token: str) -> Ticket:
        """Where a token stands; a poll is a sign of life for a waiting token."""
        concert_id = await self.concert_of(token)
        raw = await self.scripts.status(keys=concert_keys(concert_id), args=[token])
        if not raw:
            raise TokenInvalid()
        return self._ticket(concert_id, token, raw)

    async def lookup(self, token: str) -> tuple[int, TokenRecord]:
        """The token's concert and record, read without counting as a sign of life."""
        concert_id = await self.concert_of(token)
        raw = await self.redis.hget(ConcertKeys(concert_id).tokens, token)
        if raw is None:
            raise TokenInvalid()
        return concert_id, TokenRecord.parse(raw)

    async def attach(self, token: str, proc_id: str) -> Ticket:
        """A socket opens for this token on process proc_id."""
        concert_id = await self.concert_of(token)
        k = ConcertKeys(concert_id)
        raw = await self.scripts.attach(keys=[*concert_keys(concert_id), k.held(proc_id)],
                                        args=[token])
        if not raw:
            raise TokenInvalid()
        return self._ticket(concert_id, token, raw)

    async def detach(self, concert_id: int, token: str, proc_id: str, others: Sequence[str]) -> None:
        """The process's last socket for this token closed."""
        k = ConcertKeys(concert_id)
        await self.scripts.detach(
            keys=[*concert_keys(concert_id), k.held(proc_id), *(k.held(p) for p in others)],
            args=[token])

    async def end(self, token: str, reason: ExpiryReason, pool: asyncpg.Pool | None = None,
                  only_state: str = "") -> tuple[int, TokenRecord]:
        """Expire a live token (only in only_state, W or A, if given) and tell its sockets.

        Returns the record as it was before. Records the audit row of an admitted token.
        """
        concert_id = await self.concert_of(token)
        raw = await self.scripts.leave(keys=concert_keys(concert_id),
                                       args=[token, reason, only_state])
        if not raw:
            raise TokenInvalid()
        s, user, ticket, expires = (x.decode() for x in raw)
        before = TokenRecord.parse(f"{s}|{user}|{ticket}|{expires}|")
        if s != "E" and (not only_state or s == only_state):
            await self.redis.expire(keys.token_index(token), self.settings.token_retention)
            await publish(self.redis, concert_id, ExpiredEvent(tokens=[token], reason=reason))
            if pool is not None and s == "A":
                await queries.record_expired(pool, [token], reason)
        return concert_id, before

    async def figures(self, concert_ids: Sequence[int]) -> dict[int, Figures]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for cid in concert_ids:
                k = ConcertKeys(cid)
                pipe.zcard(k.queue)
                pipe.zcard(k.active)
                pipe.hmget(k.state, "admitted_total", "dropped_total", "rate")
                pipe.hmget(k.config, "admit_rate", "max_active", "paused")
            raw = await pipe.execute()
        out = {}
        for i, cid in enumerate(concert_ids):
            waiting, active, (admitted, dropped, measured), (rate, max_active, paused) = raw[4 * i:4 * i + 4]
            info = self._rate(rate, paused, measured)
            out[cid] = Figures(cid, waiting, active, _int(admitted), _int(dropped), info.configured,
                               _int(max_active, self.settings.max_active), info.paused,
                               info.measured)
        return out

    async def configure(self, concert_id: int, *, admit_rate: float | None = None,
                        max_active: int | None = None, paused: bool | None = None) -> None:
        """Change a concert's live configuration; every process reads it within a tick."""
        fields: dict[FieldT, EncodableT] = {}
        if admit_rate is not None:
            fields["admit_rate"] = repr(float(admit_rate))
        if max_active is not None:
            fields["max_active"] = str(max_active)
        if paused is not None:
            fields["paused"] = "1" if paused else "0"
        async with self.redis.pipeline(transaction=False) as pipe:
            if fields:
                pipe.hset(ConcertKeys(concert_id).config, mapping=fields)
            pipe.sadd(keys.CONCERTS, concert_id)
            await pipe.execute()
