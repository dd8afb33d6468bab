"""Redis key layout. Every key of one concert carries the hash tag {c:<id>} (one cluster slot)."""

from __future__ import annotations

import dataclasses

PREFIX = "wr"
# Token -> concert id, so a bearer token alone finds its concert's slot.
TOKEN_INDEX = PREFIX + ":tk:{token}"
# Concerts that have ever had a queue; the admitter ticks each of them.
CONCERTS = PREFIX + ":concerts"
# waiting_token changes that wait for PostgreSQL to come back (a list of JSON records).
DEFERRED = PREFIX + ":deferred"
# Web process leases: member process id, score lease deadline (ms, Redis clock).
PROCS = PREFIX + ":procs"
# Booking API latency: field web process id, value "p95 ms:reported at ms" (Redis clock).
BOOKING_P95 = PREFIX + ":booking_p95"
# Pub/sub channel of one concert's queue events.
CHANNEL = PREFIX + ":ev:{concert_id}"
CHANNEL_PATTERN = PREFIX + ":ev:*"


# One rate-limit bucket: {kind}:{subject} in its own hash tag.
RATE = PREFIX + ":rl:{{{kind}:{subject}}}"


def rate_key(kind: str, subject: str) -> str:
    return RATE.format(kind=kind, subject=subject)


def token_index(token: str) -> str:
    return TOKEN_INDEX.format(token=token)


def channel(concert_id: int) -> str:
    return CHANNEL.format(concert_id=concert_id)


@dataclasses.dataclass(frozen=True, slots=True)
class ConcertKeys:
    """The keys of one concert's queue."""

    concert_id: int

    @property
    def prefix(self) -> str:  # every key below starts with it; KEYS[1] of the concert scripts
        return f"{PREFIX}:{{c:{self.concert_id}}}:"

    def _k(self, name: str) -> str:
        return self.prefix + name

    @property
    def seq(self) -> str:  # INCR: the next ticket number
        return self._k("seq")

    @property
    def queue(self) -> str:  # ZSET token -> ticket, WAITING tokens in order
        return self._k("q")

    @property
    def active(self) -> str:  # ZSET token -> deadline ms, AVAILABLE tokens
        return self._k("active")

    @property
    def tokens(self) -> str:  # HASH token -> "state|user|ticket|expires_ms|reason"
        return self._k("tok")

    @property
    def users(self) -> str:  # HASH user id -> live token
        return self._k("users")

    @property
    def seen(self) -> str:  # ZSET token -> last sign of life ms (+inf while a socket holds it)
        return self._k("seen")

    @property
    def departed(self) -> str:  # ZSET ticket -> ticket: tickets that left the queue ahead of the cursor
        return self._k("dep")

    @property
    def deplog(self) -> str:  # ZSET ticket -> departure sequence number, for incremental reads
        return self._k("deplog")

    @property
    def state(self) -> str:  # HASH cursor, budget, last_ms, admitted_total, dropped_total, rate,
        # depseq; chosen_rate, rate_reason, rate_detail (inventory-aware admission)
        return self._k("state")

    @property
    def config(self) -> str:  # HASH admit_rate, max_active, paused, admission_mode (live)
        return self._k("cfg")

    @property
    def gone(self) -> str:  # ZSET token -> expiry ms, EXPIRED tokens kept for the retention period
        return self._k("gone")

    @property
    def history(self) -> str:  # ZSET "ms:admitted_total" -> ms, while people wait (rate window)
        return self._k("hist")

    @property
    def eta_cohorts(self) -> str:  # HASH first ticket -> "last;ms,position,rate;...", issued
        return self._k("etac")

    @property
    def eta_index(self) -> str:  # ZSET first ticket -> first ticket, cohorts in order
        return self._k("etai")

    @property
    def eta_due(self) -> str:  # ZSET first ticket -> ms of the cohort's next whole minute
        return self._k("etad")

    @property
    def eta_errors(self) -> str:  # LIST the latest relative errors of ETAs, newest first
        return self._k("etae")

    @property
    def queue_keys(self) -> tuple[str, ...]:
        """The keys lua/_lib.lua names from the prefix, in its order."""
        return (self.seq, self.queue, self.active, self.tokens, self.users, self.seen,
                self.departed, self.deplog, self.state, self.config, self.gone, self.history)

    def held(self, proc_id: str) -> str:  # SET of tokens whose socket one web process holds
        return self._k(f"held:{proc_id}")
