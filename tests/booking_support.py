"""Factories for the booking tests: a running app, concerts with seats, admitted buyers."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from booking.sweeper import sweep
from tests.conftest import AppClient, MakeSettings, eventually
from waitingroom import admission
from waitingroom.app import create_app
from waitingroom.appkeys import QUEUES
from waitingroom.gate import QueueGate
from waitingroom.queue import Queues
from waitingroom.settings import Settings

# A shop where nobody waits long: admission is instant, holds last the contract's default.
FAST = {"admit_rate": 1_000_000.0, "max_active": 1_000_000}


@dataclasses.dataclass
class Answer:
    status: int
    body: Any
    content_type: str


@dataclasses.dataclass
class Shop:
    """A running app on the test servers, and what a buyer does with it."""

    client: AppClient
    pg: asyncpg.Pool
    settings: Settings

    @property
    def queues(self) -> Queues:
        return self.client.app[QUEUES]

    async def concert(self, *, dates: int = 1, seats: int = 10,
                      price: int = 10_000) -> tuple[int, list[int]]:
        """A new concert with numbered seats 1..seats on each date: (concert id, schedule ids)."""
        async with self.pg.acquire() as conn, conn.transaction():
            concert_id = await conn.fetchval(
                "INSERT INTO concerts (name, host) VALUES ($1, 'Test Hall') RETURNING id",
                f"Concert {uuid.uuid4().hex[:8]}")
            schedules = []
            for n in range(dates):
                sid = await conn.fetchval(
                    "INSERT INTO concert_schedules (concert_id, concert_date) VALUES ($1, $2)"
                    " RETURNING id", concert_id, date(2026, 12, 24) + timedelta(days=n))
                await conn.execute(
                    "INSERT INTO concert_seats (schedule_id, seat_number, price)"
                    " SELECT $1, n, $3 FROM generate_series(1, $2) n", sid, seats, price)
                schedules.append(sid)
        return concert_id, schedules

    async def call(self, method: str, path: str, token: str | None = None,
                   json: Any = None, headers: dict[str, str] | None = None,
                   data: Any = None) -> Answer:
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        async with self.client.request(method, path, json=json, data=data, headers=h) as resp:
            body = await resp.json(content_type=None) if resp.status != 204 else None
            return Answer(resp.status, body, resp.content_type)

    async def join(self, concert_id: int, user_id: int) -> str:
        answer = await self.call("POST", f"/api/v1/concerts/{concert_id}/queue",
                                 json={"user_id": user_id})
        assert answer.status in (200, 201), answer
        return str(answer.body["token"])

    async def admit(self, tokens: Sequence[str]) -> None:
        """Run the real admitter until every token is AVAILABLE."""
        async def all_in() -> bool:
            await admission.tick(self.queues, self.pg)
            records = [await self.queues.lookup(t) for t in tokens]
            return all(rec.state == "AVAILABLE" for _, rec in records)

        await eventually(all_in)

    async def buyers(self, concert_id: int, user_ids: Sequence[int]) -> list[str]:
        """Admitted tokens of these users for this concert, through the real join and admitter."""
        tokens = [await self.join(concert_id, u) for u in user_ids]
        await self.admit(tokens)
        return tokens

    async def buyer(self, concert_id: int, user_id: int) -> str:
        return (await self.buyers(concert_id, [user_id]))[0]

    async def hold(self, token: str, schedule_id: int, seats: Sequence[int] | None = None,
                   quantity: int | None = None) -> Answer:
        body: dict[str, Any] = {"schedule_id": schedule_id}
        if seats is not None:
            body["seat_numbers"] = list(seats)
        if quantity is not None:
            body["quantity"] = quantity
        return await self.call("POST", "/api/v1/reservations", token, json=body)

    async def pay(self, token: str, reservation_id: int, key: str | None = None) -> Answer:
        return await self.call("POST", "/api/v1/payments", token,
                               json={"reservation_id": reservation_id},
                               headers={"Idempotency-Key": key or uuid.uuid4().hex})

    async def charge(self, token: str, amount: int) -> Answer:
        return await self.call("POST", "/api/v1/balance/charges", token, json={"amount": amount})

    async def sweep(self) -> None:
        await sweep(QueueGate(self.queues, self.pg), self.pg)

    async def audit(self) -> None:
        """Fail if the database breaks any booking invariant."""
        async with self.pg.acquire() as conn:
            await check_invariants(conn)


async def check_invariants(conn: asyncpg.Connection) -> None:
    """Seats, reservations, payments and money agree with each other."""
    twice = await conn.fetch("""
        SELECT r.schedule_id, seat.number FROM reservations r, unnest(r.seat_numbers) AS seat(number)
        WHERE r.status IN ('WAITING', 'RESERVED')
        GROUP BY r.schedule_id, seat.number HAVING count(*) > 1""")
    assert not twice, f"seats in two live reservations: {twice}"
    # A reservation lists its seats in seat order, each with the seat's price.
    bad_lists = await conn.fetch("""
        SELECT r.id FROM reservations r
        WHERE r.seat_numbers <> array(SELECT n FROM unnest(r.seat_numbers) AS n ORDER BY n)
           OR r.total_price <> (SELECT sum(p) FROM unnest(r.seat_prices) AS p)
           OR r.seat_prices <> array(
                SELECT s.price FROM unnest(r.seat_numbers) WITH ORDINALITY AS l(n, i)
                JOIN concert_seats s ON s.schedule_id = r.schedule_id AND s.seat_number = l.n
                ORDER BY l.i)""")
    assert not bad_lists, f"reservations whose seat lists disagree with the seats: {bad_lists}"
    # A live hold's seats are PENDING and name it, every one.
    bad_waiting = await conn.fetch("""
        SELECT r.id FROM reservations r
        WHERE r.status = 'WAITING' AND r.seat_count <> (
            SELECT count(*) FROM concert_seats s
            WHERE s.schedule_id = r.schedule_id AND s.seat_number = ANY (r.seat_numbers)
              AND s.reservation_id = r.id AND s.status = 'PENDING')""")
    assert not bad_waiting, f"holds whose seats are not all theirs: {bad_waiting}"
    # A RESERVED seat belongs to a RESERVED reservation with one completed payment, and back.
    bad_sold = await conn.fetch("""
        SELECT s.id FROM concert_seats s LEFT JOIN reservations r ON r.id = s.reservation_id
        WHERE s.status = 'RESERVED' AND (r.status IS DISTINCT FROM 'RESERVED'
              OR r.schedule_id <> s.schedule_id OR s.seat_number <> ALL (r.seat_numbers))""")
    assert not bad_sold, f"sold seats without a paid reservation: {bad_sold}"
    bad_reserved = await conn.fetch("""
        SELECT r.id FROM reservations r
        WHERE r.status = 'RESERVED' AND (
            (SELECT count(*) FROM payments p WHERE p.reservation_id = r.id
               AND p.state = 'COMPLETED') <> 1
            OR (SELECT count(*) FROM concert_seats s WHERE s.reservation_id = r.id
                  AND s.status = 'RESERVED') <> r.seat_count
            OR (SELECT p.amount FROM payments p WHERE p.reservation_id = r.id
                  AND p.state = 'COMPLETED') <> r.total_price)""")
    assert not bad_reserved, f"paid reservations that disagree with seats or payments: {bad_reserved}"
    paid_not_reserved = await conn.fetch("""
        SELECT p.id FROM payments p JOIN reservations r ON r.id = p.reservation_id
        WHERE p.state = 'COMPLETED' AND r.status <> 'RESERVED'""")
    assert not paid_not_reserved, f"payments for reservations not RESERVED: {paid_not_reserved}"
    # A PENDING seat names a reservation that lists it.
    bad_pending = await conn.fetch("""
        SELECT s.id FROM concert_seats s LEFT JOIN reservations r ON r.id = s.reservation_id
        WHERE s.status = 'PENDING' AND (r.id IS NULL OR r.schedule_id <> s.schedule_id
                                        OR s.seat_number <> ALL (r.seat_numbers))""")
    assert not bad_pending
    # The balance is the sum of its ledger, and every payment has its ledger row.
    money = await conn.fetch("""
        SELECT b.user_id, b.balance, coalesce(sum(l.amount), 0) AS total
        FROM balances b LEFT JOIN balance_ledger l ON l.user_id = b.user_id
        GROUP BY b.user_id, b.balance HAVING b.balance <> coalesce(sum(l.amount), 0)""")
    assert not money, f"balances that are not the sum of their ledger: {money}"
    unbooked = await conn.fetchval("""
        SELECT count(*) FROM payments p WHERE NOT EXISTS (
            SELECT 1 FROM balance_ledger l WHERE l.payment_id = p.id AND l.amount = -p.amount)""")
    assert unbooked == 0


async def table_counts(conn: asyncpg.Pool | asyncpg.Connection) -> dict[str, Any]:
    """Everything a request could have written, to compare before and after."""
    return {
        "reservations": await conn.fetch("SELECT * FROM reservations ORDER BY id"),
        "seats": await conn.fetch("SELECT id, status, reservation_id FROM concert_seats ORDER BY id"),
        "payments": await conn.fetch("SELECT * FROM payments ORDER BY id"),
        "balances": await conn.fetch("SELECT user_id, balance FROM balances ORDER BY user_id"),
        "ledger": await conn.fetch("SELECT * FROM balance_ledger ORDER BY id"),
        "users": await conn.fetch("SELECT id FROM users ORDER BY id"),
    }


async def gather_all(aws: Sequence[Awaitable[Answer]]) -> list[Answer]:
    return list(await asyncio.gather(*aws))


ShopFactory = Callable[..., Awaitable[Shop]]


@pytest.fixture
def make_shop(aiohttp_client: AiohttpClient, pg: asyncpg.Pool, redis: Redis,
              make_settings: MakeSettings) -> ShopFactory:
    """A Shop on a fresh app; keyword arguments override the settings."""
    async def make(**overrides: Any) -> Shop:
        settings = make_settings(**{**FAST, **overrides})
        client = await aiohttp_client(create_app(settings))
        return Shop(client, pg, settings)

    return make


@pytest.fixture
async def shop(make_shop: ShopFactory) -> Shop:
    return await make_shop()
