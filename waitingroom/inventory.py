"""Inventory-aware admission and the operators' what-if, in one place.

How many more people the seats left can serve (seats not sold, divided by the seats an admitted
person buys on average, measured from the database once there is enough to measure), how fast to
admit in inventory mode (the configured rate at most, slower while the booking API's p95 latency
is above its bound), and what a proposed rate or max_active would do to the queue.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence

import asyncpg

from . import queries
from .queue import Figures
from .schemas import WhatIfCase, WhatIfOut

# Until measured, every admitted person is taken to buy, and to buy as many seats as allowed:
# the fewest people admitted per seat left. Measured figures take over past these counts.
MIN_ENDED = 20  # admitted tokens that ended (paid, timed out, left)
MIN_ORDERS = 10  # paid orders
# A measured share of buyers is never taken below this: a quiet start (nobody paid yet) must
# not open the doors to everyone.
MIN_SHARE = 0.05
# Below this share of its bound, a rate slowed for latency is not slowed further.
MIN_LATENCY_FACTOR = 0.1
# Seconds the slow-moving measures (sales, ended tokens) are kept before being read again.
SALES_REFRESH = 10.0


@dataclasses.dataclass(frozen=True, slots=True)
class Demand:
    """One concert's seats and buyers as PostgreSQL has them (queries.CONCERT_SEATS_LEFT,
    queries.CONCERT_SALES)."""

    concert_id: int
    seats_left: int  # not sold: on sale or held
    holds: int  # seats in live holds
    sold: int
    orders: int  # paid reservations
    completed: int  # admitted tokens that paid
    timed_out: int
    left_early: int

    @classmethod
    def from_row(cls, row: Mapping[str, int]) -> Demand:
        return cls(*(int(row[f.name]) for f in dataclasses.fields(cls)))

    @property
    def ended(self) -> int:
        return self.completed + self.timed_out + self.left_early

    def buy_share(self) -> tuple[float, bool]:
        """(share of admitted people who buy, whether measured)."""
        if self.ended < MIN_ENDED:
            return 1.0, False
        return max(MIN_SHARE, self.completed / self.ended), True

    def seats_per_order(self, default: int) -> tuple[float, bool]:
        """(seats per paid order, whether measured); default until measured."""
        if self.orders < MIN_ORDERS:
            return float(default), False
        return max(1.0, self.sold / self.orders), True

    def seats_per_buyer(self, default: int) -> tuple[float, bool]:
        """Seats one admitted person is expected to take (share times seats per order)."""
        share, m1 = self.buy_share()
        per_order, m2 = self.seats_per_order(default)
        return share * per_order, m1 and m2

    def servable(self, default: int) -> int:
        """How many admitted people the seats left can serve at once."""
        per_buyer, _ = self.seats_per_buyer(default)
        return math.floor(self.seats_left / per_buyer + 1e-9)


class Measures:
    """Reads each concert's Demand: seats left and holds fresh every time (two index lookups),
    sales and ended tokens at most every `refresh` seconds (they move slowly, and counting them
    reads a concert's whole history)."""

    def __init__(self, refresh: float = SALES_REFRESH,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.refresh = refresh
        self.clock = clock
        self.sales: dict[int, tuple[float, Mapping[str, int]]] = {}

    async def read(self, pool: asyncpg.Pool, concert_ids: Sequence[int]) -> dict[int, Demand]:
        now = self.clock()
        stale = [cid for cid in concert_ids
                 if cid not in self.sales or now - self.sales[cid][0] >= self.refresh]
        if stale:
            for row in await queries.concert_sales(pool, stale):
                self.sales[row["concert_id"]] = (now, row)
        out = {}
        for row in await queries.concert_seats_left(pool, concert_ids):
            cid = row["concert_id"]
            out[cid] = Demand.from_row({**self.sales[cid][1], **row})
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class Choice:
    """The admitter's rate for one tick in inventory mode, and why."""

    rate: float  # admissions per second it aims at (what the console shows)
    rate_cap: float  # the rate handed to the admission script
    people_cap: int | None  # most AVAILABLE tokens after the tick; None: no bound
    reason: str  # configured | seats_left | booking_latency | paused | no_figures
    detail: str


def choose(configured: float, paused: bool, active: int, demand: Demand | None,
           p95_ms: float | None, bound_ms: float, default_seats: int) -> Choice:
    """Inventory mode: the configured rate at most; slower while the booking p95 is above its
    bound; never more AVAILABLE tokens than the seats left can serve."""
    if paused:
        return Choice(0.0, 0.0, None, "paused", "paused by the operator")
    if demand is None:
        return Choice(0.0, 0.0, 0, "no_figures", "seat figures unavailable: nobody admitted")
    rate, reason, detail = configured, "configured", f"{configured:g}/s as configured"
    if p95_ms is not None and p95_ms > bound_ms:
        rate = configured * max(MIN_LATENCY_FACTOR, bound_ms / p95_ms)
        reason = "booking_latency"
        detail = f"booking p95 {p95_ms:.0f} ms above {bound_ms:.0f} ms: {rate:.3g}/s"
    servable = demand.servable(default_seats)
    per_buyer, measured = demand.seats_per_buyer(default_seats)
    room = max(0, servable - active)
    if room < rate:
        how = "measured" if measured else "until measured"
        detail = (f"{demand.seats_left} seats left serve {servable} people at "
                  f"{per_buyer:.2f} seats each ({how}); {active} admitted")
        return Choice(float(room), rate, servable, "seats_left", detail)
    return Choice(rate, rate, servable, reason, detail)


def _case(rate: float, configured: float, max_active: int, figures: Figures) -> WhatIfCase:
    waiting = figures.waiting

    def eta(position: int) -> int | None:
        if position <= 0:
            return 0
        return math.ceil(position / rate) if rate > 0 else None  # None: never, at this rate

    return WhatIfCase(admit_rate=configured, max_active=max_active, rate=round(rate, 6),
                      drain_seconds=eta(waiting), median_eta_seconds=eta((waiting + 1) // 2),
                      last_eta_seconds=eta(waiting), max_active_full=figures.active >= max_active)


def what_if(figures: Figures, demand: Demand | None, admit_rate: float | None,
            max_active: int | None, p95_ms: float | None, bound_ms: float,
            default_seats: int) -> WhatIfOut:
    """What the queue would do now and with the proposed settings (None: unchanged). The
    proposal is reckoned as if admitting: a paused queue shows what it would do once resumed."""
    new_rate = figures.admit_rate if admit_rate is None else admit_rate
    new_max = figures.max_active if max_active is None else max_active

    def effective(configured: float, most: int, honour_pause: bool) -> float:
        if figures.sold_out or (honour_pause and figures.paused):
            return 0.0
        rate = configured
        if figures.admission_mode == "inventory":
            rate = choose(configured, False, figures.active, demand, p95_ms, bound_ms,
                          default_seats).rate
        # A full house admits only as people leave: the rate is no promise then.
        return rate if figures.active < most else 0.0

    now = _case(effective(figures.admit_rate, figures.max_active, True), figures.admit_rate,
                figures.max_active, figures)
    then = _case(effective(new_rate, new_max, False), new_rate, new_max, figures)
    seats_left = per_buyer = buyers_left = None
    measured = False
    runs_out_first = False
    runs_out_at = runs_out_in = None
    if demand is not None:
        seats_left = demand.seats_left
        per_buyer, measured = demand.seats_per_buyer(default_seats)
        buyers_left = max(0, demand.servable(default_seats) - figures.active)
        runs_out_first = buyers_left < figures.waiting
        if runs_out_first:
            runs_out_at = buyers_left + 1
            runs_out_in = math.ceil(buyers_left / then.rate) if then.rate > 0 else None
    return WhatIfOut(concert_id=figures.concert_id, waiting=figures.waiting,
                     active=figures.active, admission_mode=figures.admission_mode,
                     paused=figures.paused, sold_out=figures.sold_out,
                     now=now, proposed=then, seats_left=seats_left,
                     seats_per_buyer=round(per_buyer, 4) if per_buyer is not None else None,
                     seats_per_buyer_measured=measured, buyers_left=buyers_left,
                     seats_run_out_first=runs_out_first, runs_out_at_position=runs_out_at,
                     runs_out_in_seconds=runs_out_in)
