"""Properties of admission and of booking, for arbitrary sequences of steps, on the real stores.

Admission: whatever the rate (fractions too), pauses, tick timing, MAX_ACTIVE changes and
buyers finishing, a tick admits no more than the rate earned since the last one (at most about
a second's worth: nothing is banked across a pause or an idle spell), never past MAX_ACTIVE,
and in join order.

Booking: holds, releases, run-out holds (lazy expiry and the sweeper), charges, payments and
replays of payments; after every step the books balance and every answer is the one the rules
give.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import asyncpg
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from booking import errors, holds, payments, queries
from booking.audit import audit
from booking.gate import Holder
from booking.schemas import PaymentRequest
from booking.sweeper import sweep
from waitingroom import admission
from waitingroom.queue import Queues
from waitingroom.settings import Settings

# Function-scoped fixtures are fine here: every example empties the stores it uses first.
PROPERTY = settings(max_examples=50, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow],
                    # Explaining a failure replays it many more times than shrinking did.
                    phases=[Phase.explicit, Phase.generate, Phase.shrink])

# -- admission ------------------------------------------------------------------------------
CONCERT = 1
STATE = f"wr:{{c:{CONCERT}}}:state"

Step = tuple[str, Any]
# One round: people join, the organiser may change something, buyers finish, the admitter ticks.
rounds = st.lists(st.tuples(
    st.integers(0, 8) | st.integers(20, 60),
    st.one_of(
        st.none(),
        st.tuples(st.just("admit_rate"), st.sampled_from([0.25, 0.5, 2.5, 7.0, 10.0])
                  | st.floats(0.01, 40)),
        st.tuples(st.just("paused"), st.booleans()),
        # A pause that ends before the round's tick: what it saved up must be nothing.
        st.tuples(st.just("pause_for"), st.sampled_from([1.0, 3.0, 60.0])),
        st.tuples(st.just("max_active"), st.integers(0, 25)),
    ),
    st.integers(0, 4),
    # Late and early ticks, two at once, and spells without any admitter.
    st.sampled_from([0.0, 0.05, 0.6, 1.0, 1.4, 3.0, 60.0]) | st.floats(0, 5),
), min_size=1, max_size=25)


@dataclasses.dataclass
class Admitting:
    """What the admission rules allow, step by step."""

    tick: float
    admit_rate: float = 10.0
    paused: bool = False
    max_active: int = 1000
    credit: float = 0.0  # admissions earned and not yet used
    queue: list[str] = dataclasses.field(default_factory=list)  # in join order
    active: list[str] = dataclasses.field(default_factory=list)

    @property
    def cap(self) -> float:
        """About one second's worth (room for a late tick), as the README promises."""
        return self.admit_rate * max(1.0, 1.5 * self.tick) + 1

    def earn(self, elapsed: float) -> float:
        if self.paused or self.admit_rate <= 0:
            self.credit = 0.0
        else:
            self.credit = min(self.credit + self.admit_rate * elapsed, self.cap)
        return self.credit

    def spend(self, admitted: list[str]) -> None:
        self.credit -= len(admitted)
        del self.queue[:len(admitted)]
        self.active += admitted
        if not self.queue:  # an empty queue saves up nothing
            self.credit -= math.floor(self.credit)


async def _tick(queues: Queues, gap: float) -> tuple[list[str], float]:
    """One real admitter tick, `gap` seconds of Redis time after the last: (admitted, elapsed)."""
    last = await queues.clock_ms() - int(gap * 1000)
    await queues.redis.hset(STATE, "last_ms", last)
    out = (await admission.tick(queues, None)).get(CONCERT)
    now = int(await queues.redis.hget(STATE, "last_ms") or last)
    return (out.admitted_tokens if out else []), max(0.0, (now - last) / 1000)


@PROPERTY
@given(rounds=rounds, tick=st.sampled_from([0.1, 1.0]))
async def test_admission_never_exceeds_rate_room_or_order(
        rounds: list[tuple[int, Step | None, int, float]], tick: float, redis: Redis,
        make_settings: Callable[..., Settings]) -> None:
    await redis.flushdb()
    queues = Queues(redis, make_settings(tick_interval=tick))
    model = Admitting(tick=tick)
    await queues.configure(CONCERT, admit_rate=model.admit_rate, max_active=model.max_active)
    await admission.tick(queues, None)  # the first tick only starts the clock
    user = 0
    for joins, change, completed, gap in rounds:
        for _ in range(joins):
            user += 1
            model.queue.append((await queues.join(CONCERT, user)).token)
        if change is not None and change[0] == "pause_for":
            await queues.configure(CONCERT, paused=True)
            assert (await _tick(queues, change[1]))[0] == []
            await queues.configure(CONCERT, paused=model.paused)
            model.credit = 0.0  # a paused tick keeps nothing
        elif change is not None:
            kind, value = change
            setattr(model, kind, value)
            await queues.configure(CONCERT, **{kind: value})
        for token in model.active[:completed]:
            await queues.end(token, "completed")
        del model.active[:completed]
        room, waiting = model.max_active - len(model.active), len(model.queue)
        admitted, elapsed = await _tick(queues, gap)
        earned = model.earn(elapsed)
        assert len(admitted) <= earned + 1e-9, "more than the rate earned"
        assert len(admitted) <= model.cap, "more than a second's worth at once"
        assert len(admitted) <= max(0, room), "past MAX_ACTIVE"
        assert admitted == model.queue[:len(admitted)], "not in join order"
        # And no fewer than allowed: the whole earned budget is used when there is room.
        assert len(admitted) == max(0, min(math.floor(earned), room, waiting))
        model.spend(admitted)
        figures = (await queues.figures([CONCERT]))[CONCERT]
        assert (figures.waiting, figures.active) == (len(model.queue), len(model.active))


# -- booking --------------------------------------------------------------------------------
SEATS = 6
PRICES = {n: 10_000 * (1 + n % 3) for n in range(1, SEATS + 1)}
USERS = (1, 2, 3)
KEYS = ("k1", "k2", "k3")
MAX_SEATS = 4
START_BALANCE = 200_000

users = st.sampled_from(USERS)
pick = st.integers(0, 1000)  # an index into whatever exists when the step runs
hold = st.tuples(st.just("hold"), st.tuples(
    users, st.sets(st.integers(1, SEATS), min_size=1, max_size=5) | st.integers(1, 5)))
# By the reservation's owner (None), or by anyone.
pay = st.tuples(st.just("pay"), st.tuples(st.none() | users, pick, st.sampled_from(KEYS)))
booking_steps = st.lists(st.one_of(
    hold, pay, hold, pay,
    st.tuples(st.just("release"), st.tuples(users, pick)),
    st.tuples(st.just("run_out"), pick),
    st.tuples(st.just("sweep"), st.none()),
    st.tuples(st.just("charge"), st.tuples(users, st.sampled_from([5_000, 20_000, 60_000]))),
    # A key that paid, again: for the same reservation, or for another one.
    st.tuples(st.just("replay"), pick),
    st.tuples(st.just("reuse"), pick),
    st.tuples(st.just("rejoin"), users),
), min_size=12, max_size=25)
# Every rule at least once, in an order that reaches them: pay, replay, a key reused for another
# hold, a spent token, a run-out hold refused and swept, a release, someone else's reservation.
STORY: list[Step] = [
    ("hold", (1, {1, 2})), ("pay", (None, 0, "k1")), ("replay", 0), ("hold", (2, {3})),
    ("reuse", 0), ("hold", (1, 1)), ("pay", (None, 2, "k2")), ("rejoin", 1),
    ("run_out", 2), ("pay", (None, 2, "k2")), ("hold", (3, {4})), ("sweep", None),
    ("pay", (3, 1, "k3")), ("release", (2, 1)), ("release", (1, 0)), ("charge", (2, 5_000)),
    ("hold", (2, 4)), ("pay", (None, 4, "k1")), ("replay", 1),
]


@dataclasses.dataclass
class Held:
    user: int
    seats: frozenset[int]
    status: str = "WAITING"
    ran_out: bool = False

    @property
    def live(self) -> bool:
        return self.status == "RESERVED" or (self.status == "WAITING" and not self.ran_out)


@dataclasses.dataclass
class Shop:
    """What the booking rules say the database must hold."""

    concert_id: int
    schedule_id: int
    holders: dict[int, Holder]
    balances: dict[int, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(USERS, 0))
    held: dict[int, Held] = dataclasses.field(default_factory=dict)
    # (user, key) -> (reservation id, the payment's answer)
    paid: dict[tuple[int, str], tuple[int, payments.Payment]] = dataclasses.field(
        default_factory=dict)
    charged: int = 0

    def taken(self) -> set[int]:
        return {n for h in self.held.values() if h.live for n in h.seats}

    def seats_of(self, user: int) -> int:
        return sum(len(h.seats) for h in self.held.values() if h.user == user and h.live)

    def spend_token(self, user: int) -> None:
        self.holders[user] = dataclasses.replace(self.holders[user], state="EXPIRED")

    def rejoin(self, user: int) -> None:
        self.holders[user] = Holder(str(uuid.uuid4()), self.concert_id, user, "AVAILABLE")


async def _new_shop(pg: asyncpg.Pool) -> Shop:
    async with pg.acquire() as conn, conn.transaction():
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                                  " AND tablename <> 'schema_migrations'")
        await conn.execute(f"TRUNCATE {', '.join(t['tablename'] for t in tables)}"
                           " RESTART IDENTITY CASCADE")
        concert_id = await conn.fetchval(
            "INSERT INTO concerts (name, host) VALUES ('Property', 'Test Hall') RETURNING id")
        schedule_id = await conn.fetchval(
            "INSERT INTO concert_schedules (concert_id, concert_date) VALUES ($1, $2) RETURNING id",
            concert_id, date(2030, 12, 24))
        await conn.executemany(
            "INSERT INTO concert_seats (schedule_id, seat_number, price) VALUES ($1, $2, $3)",
            [(schedule_id, n, p) for n, p in PRICES.items()])
        await conn.executemany("INSERT INTO users (id) VALUES ($1)", [(u,) for u in USERS])
    shop = Shop(concert_id, schedule_id, {})
    for u in USERS:
        shop.rejoin(u)
        await _charge(pg, shop, u, START_BALANCE)
    return shop


async def _charge(pg: asyncpg.Pool, shop: Shop, user: int, amount: int) -> None:
    assert await queries.charge(pg, user, amount) == shop.balances[user] + amount
    shop.balances[user] += amount
    shop.charged += amount


def _nth(items: list[Any], index: int) -> Any:
    return items[index % len(items)] if items else None


async def _hold(pg: asyncpg.Pool, shop: Shop, user: int, want: set[int] | int) -> None:
    numbers = sorted(want) if isinstance(want, set) else None
    wanted = len(want) if isinstance(want, set) else want
    free = set(PRICES) - shop.taken()
    try:
        async with pg.acquire() as conn:
            got = await holds.hold(conn, user_id=user, schedule_id=shop.schedule_id,
                                   seat_numbers=numbers,
                                   quantity=None if numbers is not None else wanted,
                                   ttl_seconds=300, max_seats=MAX_SEATS)
    except errors.SeatLimit:
        event("hold: seat limit")
        assert shop.seats_of(user) + wanted > MAX_SEATS
        return
    except errors.SeatUnavailable:
        event("hold: seat unavailable")
        assert shop.seats_of(user) + wanted <= MAX_SEATS
        assert (not set(numbers) <= free) if numbers is not None else len(free) < wanted
        return
    event("hold: held")
    seats = frozenset(n for n, _ in got.seats)
    assert shop.seats_of(user) + wanted <= MAX_SEATS
    assert len(seats) == wanted and seats <= free
    assert numbers is None or seats == set(numbers)
    assert got.total_price == sum(PRICES[n] for n in seats)
    # Lazy expiry: a run-out hold whose seat was taken has ended.
    for h in shop.held.values():
        if h.status == "WAITING" and h.ran_out and h.seats & seats:
            h.status = "EXPIRED"
    shop.held[got.id] = Held(user, seats)


async def _release(pg: asyncpg.Pool, shop: Shop, user: int, rid: int) -> None:
    h = shop.held[rid]
    holder = shop.holders[user]
    try:
        async with pg.acquire() as conn:
            await holds.release(conn, reservation_id=rid, user_id=user,
                                check_concert=holder.check_concert)
    except errors.ReservationNotFound:
        assert h.user != user
        return
    except errors.AlreadyPaid:
        assert (h.user, h.status) == (user, "RESERVED")
        return
    assert h.user == user and h.status != "RESERVED"
    if h.status == "WAITING":
        h.status = "EXPIRED" if h.ran_out else "CANCELED"


async def _run_out(pg: asyncpg.Pool, shop: Shop, rid: int) -> None:
    """The hold's time is up (as if its five minutes had passed)."""
    async with pg.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE reservations SET hold_expires_at = now() - interval '1 s'"
                           " WHERE id = $1 AND status = 'WAITING'", rid)
        await conn.execute("UPDATE concert_seats SET hold_expires_at = now() - interval '1 s'"
                           " WHERE reservation_id = $1 AND status = 'PENDING'", rid)
    if shop.held[rid].status == "WAITING":
        shop.held[rid].ran_out = True


async def _pay(pg: asyncpg.Pool, shop: Shop, user: int, rid: int, key: str) -> None:
    h, holder = shop.held[rid], shop.holders[user]
    before = shop.paid.get((user, key))
    try:
        async with pg.acquire() as conn:
            paid = await payments.pay(conn, holder=holder, reservation_id=rid, key=key,
                                      fingerprint=payments.request_hash(
                                          PaymentRequest(reservation_id=rid)))
    except errors.IdempotencyKeyReused:
        event("pay: key reused")
        assert before is not None and before[0] != rid
        return
    except errors.TokenExpired:
        event("pay: token expired")
        assert before is None and holder.state == "EXPIRED"
        return
    except errors.ReservationNotFound:
        event("pay: not found")
        assert before is None and h.user != user
        return
    except errors.AlreadyPaid:
        event("pay: already paid")
        assert before is None and (h.user, h.status) == (user, "RESERVED")
        return
    except errors.HoldExpired:
        event("pay: hold expired")
        assert before is None and h.user == user and (h.status != "WAITING" or h.ran_out)
        return
    except errors.InsufficientBalance:
        event("pay: insufficient balance")
        total = sum(PRICES[n] for n in h.seats)
        assert before is None and h.live and shop.balances[user] < total
        return
    event("pay: replayed" if before is not None else "pay: paid")
    if before is not None:  # a replay: the first answer again, nothing charged
        assert before[0] == rid and paid == dataclasses.replace(
            before[1], token_to_expire=False, token_logged=True)
        return
    total = sum(PRICES[n] for n in h.seats)
    assert (h.user, h.status, h.ran_out, holder.state) == (user, "WAITING", False, "AVAILABLE")
    shop.balances[user] -= total
    assert (paid.amount, paid.balance, paid.token_to_expire) == (total, shop.balances[user], True)
    h.status = "RESERVED"
    shop.paid[(user, key)] = (rid, paid)
    shop.spend_token(user)


async def _check(pg: asyncpg.Pool, shop: Shop) -> None:
    books = await audit(pg)
    assert books.ok, books
    assert books.seats_in_two_live_reservations == books.sales_without_payment == 0
    assert books.balances_off_ledger == books.sales_missing_seats == 0
    assert books.charged == shop.charged == books.paid + books.balances
    assert books.paid == sum(p.amount for _, p in shop.paid.values())
    assert books.seats_sold == sum(len(h.seats) for h in shop.held.values()
                                   if h.status == "RESERVED")
    balances = {r["user_id"]: r["balance"] for r in await pg.fetch("SELECT * FROM balances")}
    assert {u: balances.get(u, 0) for u in USERS} == shop.balances
    statuses = {r["id"]: r["status"] for r in await pg.fetch("SELECT id, status FROM reservations")}
    assert statuses == {rid: h.status for rid, h in shop.held.items()}


@settings(PROPERTY, max_examples=40)
@given(steps=booking_steps)
@example(steps=STORY)
async def test_booking_keeps_its_books_whatever_happens(steps: list[Step], pg: asyncpg.Pool) -> None:
    shop = await _new_shop(pg)
    for kind, value in steps:
        rids = sorted(shop.held)
        if kind == "hold":
            await _hold(pg, shop, *value)
        elif kind == "release" and rids:
            await _release(pg, shop, value[0], _nth(rids, value[1]))
        elif kind == "run_out" and rids:
            await _run_out(pg, shop, _nth(rids, value))
        elif kind == "sweep":
            await sweep(None, pg)
            for h in shop.held.values():
                if h.status == "WAITING" and h.ran_out:
                    h.status = "EXPIRED"
        elif kind == "charge":
            await _charge(pg, shop, *value)
        elif kind == "pay" and rids:
            user, index, key = value
            rid = _nth(rids, index)
            await _pay(pg, shop, shop.held[rid].user if user is None else user, rid, key)
        elif kind in ("replay", "reuse") and shop.paid:
            (user, key), (rid, _) = _nth(sorted(shop.paid.items()), value)
            if kind == "reuse":
                rid = _nth(rids, rids.index(rid) + 1)
            await _pay(pg, shop, user, rid, key)
        elif kind == "rejoin":
            shop.rejoin(value)
        await _check(pg, shop)

