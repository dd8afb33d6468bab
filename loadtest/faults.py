"""Fault recovery, measured: `python -m loadtest.faults`.

Each fault is injected on a gateway of its own (a Redis and a PostgreSQL of its own, two
`waitingroom web` processes on one port with `--reuse-port`, one admitter): waiters hold their
places (some over WebSockets, all polled), admitted buyers hold and release seats and pay. Then
one part fails. The report (`loadtest/reports/<timestamp>-faults.md`) says, per fault, what the
clients saw, how long until they were served again, and whether anything was lost.

Time to recover is counted from the server back (or from the kill, for a process) to the first
successful poll, the first successful hold, and every socket showing its place again after the
queue moved by one (its position less one: the same place). "Anything lost" is checked after
the fault: every waiter still WAITING at its place, every admitted buyer still AVAILABLE,
`admitted_total` unchanged (nobody admitted twice or behind the operator's pause), the audit
clean, and every payment whose answer was lost settled once by replaying its Idempotency-Key.

Only servers and processes it started are touched; traffic goes only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from loadtest.restartable import OwnPostgres, OwnRedis, own_servers
from loadtest.stack import Stack

REPORTS = Path(__file__).with_name("reports")
WAITERS = 30  # waiters in the queue, in join order
SOCKETS = 15  # of them, the ones also watching over a WebSocket (waiters 2..16)
BUYERS = 3  # admitted before the queue is paused
PAYING_BUYERS = 16  # where payments are in flight: each pays once (a payment uses its token up)
RECOVERY_TIMEOUT = 30.0
RECONNECT = {1001, 1011, 1013}


def since(t0: float) -> float:
    return time.monotonic() - t0


@dataclass
class Seen:
    """What clients saw and when (monotonic seconds)."""

    answers: Counter[str] = field(default_factory=Counter)
    closes: Counter[str] = field(default_factory=Counter)
    slowest_error_ms: float = 0.0
    # The first answer after the fault that is not 503 or no answer at all, and its status.
    first_poll: tuple[float, int] | None = None
    first_hold: tuple[float, int] | None = None
    not_contract: list[str] = field(default_factory=list)
    polls: list[tuple[float, int]] = field(default_factory=list)  # (when answered, status)
    holds: list[tuple[float, int]] = field(default_factory=list)

    def answer(self, kind: str, status: int, headers: Any, millis: float) -> None:
        problem = headers.get("Content-Type", "").startswith("application/problem+json")
        if status >= 400:
            self.slowest_error_ms = max(self.slowest_error_ms, millis)
            if not problem or (status >= 500 and not (status == 503 and "Retry-After" in headers)):
                self.not_contract.append(f"{kind} {status}")
        label = "no answer" if status == 0 else (
            f"{status}" + (" Retry-After" if "Retry-After" in headers else ""))
        self.answers[f"{kind} {label}"] += 1


class Gateway:
    """The deployment under test and its clients."""

    def __init__(self, stack: Stack, redis: OwnRedis, postgres: OwnPostgres,
                 session: aiohttp.ClientSession) -> None:
        self.stack, self.redis, self.postgres, self.s = stack, redis, postgres, session
        self.admin = {"Authorization": f"Bearer {stack.admin_token}"}
        self.url = stack.url
        self.waiters: list[str] = []
        self.buyers: list[str] = []
        self.seen = Seen()
        self.frames: dict[str, list[tuple[float, int]]] = {}
        self.socket_tasks: list[asyncio.Task[None]] = []

    async def request(self, method: str, path: str, token: str | None = None,
                      **kwargs: Any) -> tuple[int, Any, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with self.s.request(method, self.url + path, headers=headers,
                                      timeout=aiohttp.ClientTimeout(total=10), **kwargs) as r:
                body = await r.json(content_type=None) if r.status != 204 else None
                return r.status, r.headers, body
        except (TimeoutError, aiohttp.ClientError):
            return 0, {}, None

    async def figures(self) -> dict[str, Any]:
        _, _, body = await self.request("GET", "/admin/concerts/1/queue", headers=self.admin)
        return dict(body or {})

    async def join(self, user: int) -> str:
        status, _, body = await self.request("POST", "/api/v1/concerts/1/queue",
                                             json={"user_id": user})
        assert status == 201, (status, body)
        return str(body["token"])

    async def prepare(self, buyers: int) -> None:
        """Buyers admitted (and given money), then the queue paused and the waiters in line."""
        self.buyers = [await self.join(900_000 + i) for i in range(buyers)]
        for token in self.buyers:
            await until(functools.partial(self._state_is, token, "AVAILABLE"), 30)
            status, _, _ = await self.request("POST", "/api/v1/balance/charges", token,
                                              json={"amount": 10_000_000})
            assert status == 201
        status, _, _ = await self.request("PATCH", "/admin/concerts/1/queue", headers=self.admin,
                                          json={"paused": True})
        assert status == 200
        self.waiters = [await self.join(1 + i) for i in range(WAITERS)]
        for token in self.waiters[1:1 + SOCKETS]:
            self.frames[token] = []
            self.socket_tasks.append(asyncio.create_task(self.watch(token)))
        await until(lambda: asyncio.sleep(0, all(self.frames.values())), 15)

    async def _state_is(self, token: str, state: str) -> bool:
        status, _, body = await self.request("GET", "/api/v1/queue", token)
        return status == 200 and body["state"] == state

    async def watch(self, token: str) -> None:
        """A waiting page's socket: reopened with the same token when the server asks to."""
        while True:
            try:
                async with self.s.ws_connect(f"{self.url}/ws/queue?token={token}",
                                             heartbeat=None) as ws:
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            frame = msg.json()
                            if frame["type"] == "position":
                                self.frames[token].append((time.monotonic(), frame["position"]))
                            else:
                                self.seen.closes[f"frame {frame['type']}"] += 1
                    code = ws.close_code
            except (TimeoutError, aiohttp.ClientError, OSError):
                code = None
            self.seen.closes["dropped" if code is None else f"closed {code}"] += 1
            # 1006: no close frame, the connection dropped (a killed process): try again too.
            if code is not None and code not in RECONNECT and code != 1006:
                return  # 4401, 4410: the token is gone or over; the page offers to join again
            await asyncio.sleep(0.3)

    async def probe(self, stop: asyncio.Event) -> None:
        """Polls and holds, as fast as one client each, until told to stop."""
        async def polls() -> None:
            i = 0
            while not stop.is_set():
                started = time.monotonic()
                status, headers, _ = await self.request("GET", "/api/v1/queue",
                                                        self.waiters[i % WAITERS])
                self.seen.answer("poll", status, headers, (time.monotonic() - started) * 1000)
                self.seen.polls.append((time.monotonic(), status))
                if status not in (0, 503) and self.seen.first_poll is None and self.back:
                    self.seen.first_poll = (time.monotonic(), status)
                i += 1
                await asyncio.sleep(0.05)

        async def holds() -> None:
            while not stop.is_set():
                started = time.monotonic()
                status, headers, body = await self.request(
                    "POST", "/api/v1/reservations", self.buyers[0],
                    json={"schedule_id": 1, "quantity": 1})
                self.seen.answer("hold", status, headers, (time.monotonic() - started) * 1000)
                self.seen.holds.append((time.monotonic(), status))
                if status not in (0, 503) and self.seen.first_hold is None and self.back:
                    self.seen.first_hold = (time.monotonic(), status)
                if status == 201:
                    await self.request("DELETE", f"/api/v1/reservations/{body['id']}",
                                       self.buyers[0])
                await asyncio.sleep(0.1)

        await asyncio.gather(polls(), holds())

    back: float | None = None


async def until(check: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


Payment = tuple[int, int, int]  # first status the client saw, final status, attempts


async def payments(gw: Gateway, stop: asyncio.Event, keys: dict[str, Payment]) -> None:
    """Buyers 2..: hold a seat and pay for it, as a careful client does: a payment that answered
    503 (or nothing) is asked again with the same Idempotency-Key until it has a real answer."""
    async def buyer(token: str, delay: float) -> None:
        await asyncio.sleep(delay)  # spread over the moment of the fault
        while not stop.is_set():
            status, _, body = await gw.request("POST", "/api/v1/reservations", token,
                                               json={"schedule_id": 1, "quantity": 1})
            if status != 201:
                await asyncio.sleep(0.1)
                continue
            key, attempts, first = uuid.uuid4().hex, 0, None
            while attempts < 300:
                attempts += 1
                started = time.monotonic()
                paid, headers, _ = await gw.request("POST", "/api/v1/payments", token,
                                                    headers={"Idempotency-Key": key},
                                                    json={"reservation_id": body["id"]})
                gw.seen.answer("payment", paid, headers, (time.monotonic() - started) * 1000)
                first = paid if first is None else first
                if paid not in (0, 503):
                    break
                await asyncio.sleep(0.2)
            keys[key] = (first or 0, paid, attempts)
            return  # a payment uses its token up

    await asyncio.gather(*(buyer(t, 0.3 + 0.04 * i) for i, t in enumerate(gw.buyers[1:])))


Fault = Callable[[Gateway], Awaitable[None]]


async def redis_restart(gw: Gateway, down: float) -> None:
    await asyncio.to_thread(gw.redis.stop)
    await asyncio.sleep(down)
    await asyncio.to_thread(gw.redis.start)


async def postgres_restart(gw: Gateway, down: float, mode: str) -> None:
    await asyncio.to_thread(gw.postgres.stop, mode)
    await asyncio.sleep(down)
    await asyncio.to_thread(gw.postgres.start)


async def web_kill(gw: Gateway, kill: bool) -> None:
    web = gw.stack.webs[0]
    if kill:
        web.popen.kill()
    await asyncio.to_thread(gw.stack.remove_web, web)  # SIGTERM when not killed: a drain


async def run_fault(name: str, fault: Callable[[Gateway], Awaitable[None]], appendonly: bool = True,
                    pay: bool = False, from_kill: bool = False) -> dict[str, Any]:
    """One fault on a fresh gateway; what clients saw, recovery times and what was lost."""
    with own_servers(appendonly=appendonly) as (redis, postgres):
        stack = Stack(redis.url, postgres.url)
        stack.env.update(ADMIT_RATE="50", TICK_INTERVAL="0.2", WAIT_GRACE="3600", HOLD_TTL="60")
        try:
            await asyncio.to_thread(stack.prepare, ("--concerts", "1", "--dates", "1",
                                                    "--seats", "500"))
            await asyncio.to_thread(stack.add_web)
            await asyncio.to_thread(stack.add_web)
            await asyncio.to_thread(stack.start_admitter)
            async with aiohttp.ClientSession() as session:
                gw = Gateway(stack, redis, postgres, session)
                await gw.prepare(PAYING_BUYERS if pay else BUYERS)
                before = await gw.figures()
                stop = asyncio.Event()
                keys: dict[str, Payment] = {}
                probing = asyncio.create_task(gw.probe(stop))
                paying = asyncio.create_task(payments(gw, stop, keys)) if pay else None
                await asyncio.sleep(0.5)
                gw.seen = Seen()  # what is seen from the fault on
                started = time.monotonic()
                gw.back = started if from_kill else None
                await fault(gw)
                gw.back = gw.back or time.monotonic()
                result = await recover(gw, started)
                stop.set()
                await asyncio.gather(probing, *([paying] if paying else []))
                result.update(await losses(gw, before, keys, started))
                for task in gw.socket_tasks:
                    task.cancel()
                await asyncio.gather(*gw.socket_tasks, return_exceptions=True)
                result["fault"] = name
                return result
        finally:
            stack.stop()


async def recover(gw: Gateway, started: float) -> dict[str, Any]:
    """Times from `back` to polls, holds and every socket at its place again."""
    assert gw.back is not None
    await until(lambda: asyncio.sleep(0, gw.seen.first_poll is not None), RECOVERY_TIMEOUT)
    # Move the queue by one: every socket must show its place less one.
    moved = time.monotonic()
    await until(lambda: _left(gw), RECOVERY_TIMEOUT)
    expected = {t: gw.waiters.index(t) for t in gw.frames}  # index = old position - 1

    def placed() -> dict[str, float]:
        return {t: next(at for at, p in f if at >= moved and p == expected[t])
                for t, f in gw.frames.items() if any(at >= moved and p == expected[t] for at, p in f)}

    def settled() -> bool:  # every socket at its place, or told its token is gone
        return len(placed()) == len(gw.frames) or all(t.done() for t in gw.socket_tasks)

    await until(lambda: asyncio.sleep(0, settled()), RECOVERY_TIMEOUT)
    await until(lambda: asyncio.sleep(0, gw.seen.first_hold is not None), RECOVERY_TIMEOUT)
    at_place = placed()
    poll, hold = served_again(gw.seen.polls, gw.back), served_again(gw.seen.holds, gw.back)
    return {
        "down_s": gw.back - started if gw.back > started else 0.0,
        "poll": poll, "hold": hold,
        "poll_failed": sum(status in (0, 503) for _, status in gw.seen.polls),
        "hold_failed": sum(status in (0, 503) for _, status in gw.seen.holds),
        "sockets_s": (max(at_place.values()) - gw.back) if len(at_place) == len(gw.frames) else None,
        "sockets_placed": len(at_place),
    }


def served_again(answers: list[tuple[float, int]], back: float) -> tuple[float, int] | None:
    """(seconds from `back`, status) of the first answer after the last 503 or missing answer."""
    failed = [at for at, status in answers if status in (0, 503)]
    after = max([back, *failed])
    return next(((at - back, status) for at, status in answers
                 if at > after and status not in (0, 503)), None)


async def _left(gw: Gateway) -> bool:
    status, _, _ = await gw.request("DELETE", "/api/v1/queue", gw.waiters[0])
    return status in (204, 401)  # 401: the token went with Redis's data


async def losses(gw: Gateway, before: dict[str, Any], keys: dict[str, Payment],
                 started: float) -> dict[str, Any]:
    """What was lost: places, admitted tokens, admissions made twice, money, seats."""
    lost: list[str] = []
    places = 0
    for i, token in enumerate(gw.waiters[1:], start=1):
        status, _, body = await gw.request("GET", "/api/v1/queue", token)
        if status == 200 and body["state"] == "WAITING" and body["position"] == i:
            places += 1
        elif status == 401:
            gw.seen.answers["after: poll 401 token_invalid"] += 1
    if places != WAITERS - 1:
        lost.append(f"{WAITERS - 1 - places} of {WAITERS - 1} places")
    kept = sum([await gw._state_is(t, "AVAILABLE") or await gw._state_is(t, "EXPIRED")
                for t in gw.buyers])
    if kept != len(gw.buyers):
        lost.append(f"{len(gw.buyers) - kept} of {len(gw.buyers)} admitted tokens")
    # Payments whose first answer was a 503 or nothing, settled by asking again with their key.
    settled = sum(first in (0, 503) and final == 201 for first, final, _ in keys.values())
    unsettled = sum(final != 201 for _, final, _ in keys.values())
    if unsettled:
        lost.append(f"{unsettled} payments never settled")
    # Sockets are never shown positions of a queue that is not theirs (Redis back empty).
    shown = sum(at > started for f in gw.frames.values() for at, _ in f)
    after = await gw.figures()
    if after.get("admitted_total") != before.get("admitted_total"):
        lost.append(f"admitted_total {before.get('admitted_total')} -> {after.get('admitted_total')}")
    if after.get("paused") is not True:
        lost.append("the pause")
    _, _, audit = await gw.request("GET", "/admin/audit", headers=gw.admin)
    if not (audit or {}).get("ok"):
        lost.append(f"audit: {audit}")
    return {"lost": lost, "places": places, "kept": kept, "buyers": len(gw.buyers),
            "payments": len(keys), "frames_after_fault": shown, "paused": after.get("paused"),
            "audit_ok": bool((audit or {}).get("ok")),
            "settled_by_replay": settled, "seen": gw.seen}


# --- the admitter: killed mid-tick while it admits


async def admitter_kill(rounds: int, down: float) -> dict[str, Any]:
    """SIGKILL the admitter `rounds` times while it admits; neither skip nor double-admit."""
    rate = 5.0
    with own_servers() as (redis, postgres):
        stack = Stack(redis.url, postgres.url)
        stack.env.update(ADMIT_RATE=str(rate), TICK_INTERVAL="0.2", WAIT_GRACE="3600")
        try:
            await asyncio.to_thread(stack.prepare, ("--concerts", "1", "--dates", "1",
                                                    "--seats", "10"))
            await asyncio.to_thread(stack.add_web)
            admitter = await asyncio.to_thread(stack.start_admitter)
            async with aiohttp.ClientSession() as session:
                gw = Gateway(stack, redis, postgres, session)
                await gw.request("PATCH", "/admin/concerts/1/queue", headers=gw.admin,
                                 json={"paused": True})
                tokens = [await gw.join(1 + i) for i in range(80)]
                await gw.request("PATCH", "/admin/concerts/1/queue", headers=gw.admin,
                                 json={"paused": False})
                recoveries = []
                began = time.monotonic()
                for _ in range(rounds):
                    await asyncio.sleep(1.3)  # ticks are 0.2 s: the kill lands anywhere in one
                    admitter.popen.kill()
                    await asyncio.to_thread(admitter.stop)
                    at_kill = (await gw.figures())["admitted_total"]
                    await asyncio.sleep(down)
                    admitter = await asyncio.to_thread(stack.start_admitter)
                    restarted = time.monotonic()

                    async def admitted_again(n: int = at_kill) -> bool:
                        return bool((await gw.figures())["admitted_total"] > n)

                    await until(admitted_again, RECOVERY_TIMEOUT)
                    recoveries.append(time.monotonic() - restarted)
                await asyncio.sleep(1.0)
                await gw.request("PATCH", "/admin/concerts/1/queue", headers=gw.admin,
                                 json={"paused": True})
                elapsed = time.monotonic() - began
                states = []
                for token in tokens:
                    _, _, body = await gw.request("GET", "/api/v1/queue", token)
                    states.append(body["state"])
                figures = await gw.figures()
            admitted = sum(s == "AVAILABLE" for s in states)
            prefix = states[:admitted] == ["AVAILABLE"] * admitted
            up = elapsed - rounds * down
            lost = []
            if not prefix:
                lost.append("admission out of order (someone skipped)")
            if figures["admitted_total"] != admitted:
                lost.append(f"admitted_total {figures['admitted_total']} for {admitted} admitted")
            if admitted > rate * up + rate * (rounds + 1):
                lost.append(f"a burst: {admitted} admitted in {up:.1f} s up at {rate}/s")
            return {"fault": f"admitter SIGKILL mid-tick, {rounds}× (down {down:g} s each)",
                    "recoveries": recoveries, "admitted": admitted, "up_s": up, "rate": rate,
                    "prefix": prefix, "lost": lost}
        finally:
            stack.stop()


# --- sockets closed while Redis is down: their tokens must still be let go


async def ghosts(down: float, grace: float = 2.0) -> dict[str, Any]:
    """Waiters close their tabs while Redis is down; once it is back, each of their tokens must be
    dropped after the grace period, not held forever by a release that never reached Redis."""
    with own_servers() as (redis, postgres):
        stack = Stack(redis.url, postgres.url)
        stack.env.update(TICK_INTERVAL="0.2", WAIT_GRACE=f"{grace:g}")
        try:
            await asyncio.to_thread(stack.prepare, ("--concerts", "1", "--dates", "1",
                                                    "--seats", "10"))
            await asyncio.to_thread(stack.start_admitter)
            await asyncio.to_thread(stack.add_web)
            async with aiohttp.ClientSession() as session:
                gw = Gateway(stack, redis, postgres, session)
                await gw.request("PATCH", "/admin/concerts/1/queue", headers=gw.admin,
                                 json={"paused": True})
                tokens = [await gw.join(1 + i) for i in range(10)]
                sockets = [await session.ws_connect(f"{gw.url}/ws/queue?token={t}") for t in tokens]
                for ws in sockets:
                    await ws.receive(timeout=10)  # its position: the token is held
                await asyncio.to_thread(redis.stop)
                await asyncio.gather(*(ws.close() for ws in sockets))  # tabs closed meanwhile
                await asyncio.sleep(down)
                await asyncio.to_thread(redis.start)
                back = time.monotonic()

                async def all_dropped() -> bool:
                    figures = await gw.figures()
                    return figures.get("dropped_total") == len(tokens)

                done = await until(all_dropped, RECOVERY_TIMEOUT)
                took = time.monotonic() - back
                figures = await gw.figures()
            held = len(tokens) - int(figures.get("dropped_total", 0))
            return {"fault": f"Redis restart, AOF on, while {len(tokens)} waiters close their "
                             f"sockets (WAIT_GRACE {grace:g} s)", "ghost": True,
                    "took": took if done else None, "held": held, "tokens": len(tokens)}
        finally:
            stack.stop()


# --- the report


def _seen_text(seen: Seen) -> str:
    parts = [f"{kind} ×{n}" for kind, n in sorted(seen.answers.items())
             if not kind.startswith(("poll 200", "hold 201", "hold 409"))]
    parts += [f"sockets {kind} ×{n}" for kind, n in sorted(seen.closes.items())]
    if seen.slowest_error_ms:
        parts.append(f"slowest error answer {seen.slowest_error_ms:.0f} ms")
    if seen.not_contract:
        parts.append(f"**outside the contract: {Counter(seen.not_contract)}**")
    return "; ".join(parts) or "nothing but normal answers"


def _s(value: float | None) -> str:
    return "not within 30 s" if value is None else f"{value:.2f} s"


def _first(value: tuple[float, int] | None) -> str:
    if value is None:
        return "not within 30 s"
    return f"{value[0]:.2f} s" + ("" if value[1] in (200, 201) else f" (a {value[1]})")


def row(result: dict[str, Any]) -> str:
    if "ghost" in result:
        lost = ("nothing: every token let go, none held by a socket that closed while Redis was "
                "down" if not result["held"] else
                f"**{result['held']} of {result['tokens']} tokens still held (ghost waiters)**")
        return (f"| {result['fault']} | the sockets closed by their clients; nothing else | "
                f"all {result['tokens']} dropped {_s(result['took'])} after Redis was back "
                f"(grace included) | {lost} |")
    if "recoveries" in result:
        seen = (f"{result['admitted']} admitted (rate {result['rate']:g}/s) in {result['up_s']:.1f} s "
                "outside the down time, the restarts' start-up included")
        times = "first admission after the restart: " + ", ".join(
            f"{t:.2f} s" for t in result["recoveries"])
        lost = "; ".join(result["lost"]) or (
            f"nothing: admitted in join order ({result['admitted']} of 80 a prefix), "
            "admitted_total = admitted (none twice), no burst")
        return f"| {result['fault']} | {seen} | {times} | {lost} |"
    poll = _first(result["poll"]) if result["poll_failed"] else "never failed"
    hold = _first(result["hold"]) if result["hold_failed"] else "never failed"
    sockets = (f"sockets at their places {_s(result['sockets_s'])} "
               f"({result['sockets_placed']}/{SOCKETS})")
    if "AOF off" in result["fault"]:
        sockets = "sockets told 4401 instead"
    times = f"poll {poll}, hold {hold}, {sockets}"
    checked = (f"{result['places']}/{WAITERS - 1} places kept, {result['kept']}/{result['buyers']} "
               "admitted "
               f"kept, admitted_total unchanged, audit clean")
    if result["payments"]:
        checked += (f"; {result['payments']} payments in flight, all settled once, "
                    f"{result['settled_by_replay']} of them first answered 503 and settled by "
                    "asking again with their Idempotency-Key")
    if "AOF off" in result["fault"]:
        # The data went with the server: what matters is that clients are told, and the
        # operator's settings come back from PostgreSQL.
        lost = (f"the queue's data, by design: {WAITERS - 1 - result['places']}/{WAITERS - 1} waiters "
                f"and {result['buyers'] - result['kept']}/{result['buyers']} admitted told "
                f"`token_invalid`/4401 (they join again); position frames shown after the fault: "
                f"{result['frames_after_fault']}; the pause restored from PostgreSQL: "
                f"{'yes' if result['paused'] else 'NO'}; "
                f"audit {'clean' if result['audit_ok'] else 'NOT clean'}")
    elif result["lost"]:
        lost = "; ".join(result["lost"]) + f" ({checked})"
    else:
        lost = f"nothing: {checked}"
    return (f"| {result['fault']} (down {result['down_s']:.1f} s) | {_seen_text(result['seen'])} "
            f"| {times} | {lost} |")


async def main_async(down: float, only: str | None) -> list[dict[str, Any]]:
    faults: list[tuple[str, Fault, dict[str, Any]]] = [
        ("Redis restart, AOF on", lambda gw: redis_restart(gw, down), {}),
        ("Redis restart, data lost (AOF off)", lambda gw: redis_restart(gw, down),
         {"appendonly": False}),
        ("PostgreSQL restart (fast shutdown)", lambda gw: postgres_restart(gw, down, "fast"), {}),
        ("PostgreSQL stopped mid-transaction (immediate shutdown, holds and payments in flight)",
         lambda gw: postgres_restart(gw, down, "immediate"), {"pay": True}),
        ("web process SIGTERM (a second one on the port)", lambda gw: web_kill(gw, False),
         {"from_kill": True}),
        ("web process SIGKILL (a second one on the port, --reuse-port)",
         lambda gw: web_kill(gw, True), {"from_kill": True}),
    ]
    results = []
    for name, fault, options in faults:
        if only and only.lower() not in name.lower():
            continue
        print(f"fault: {name} …", flush=True)
        results.append(await run_fault(name, fault, **options))
        print(row(results[-1]), flush=True)
    if not only or "ghost" in only or "redis" in only.lower():
        print("fault: sockets closed while Redis is down …", flush=True)
        results.append(await ghosts(down))
        print(row(results[-1]), flush=True)
    if not only or "admitter" in only:
        print("fault: admitter …", flush=True)
        results.append(await admitter_kill(3, down))
        print(row(results[-1]), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--down", type=float, default=2.0, help="seconds a server stays down")
    p.add_argument("--only", help="run only the faults whose name contains this")
    args = p.parse_args(argv)
    started = time.strftime("%Y%m%d-%H%M%S")
    results = asyncio.run(main_async(args.down, args.only))
    lines = [
        f"# Fault recovery ({started})", "",
        f"`python -m loadtest.faults --down {args.down:g}`: each fault on a gateway of its own "
        f"(its own Redis with AOF unless said, its own PostgreSQL, two web processes on one port, "
        f"one admitter); {WAITERS} waiters (queue paused, {SOCKETS} of them on WebSockets, all "
        f"polled), {BUYERS} admitted buyers holding and releasing a seat every 0.1 s. Times from "
        "the server back (or the kill, for a process).", "",
        "| fault injected | what clients saw | time to recover | anything lost |",
        "| --- | --- | --- | --- |",
        *(row(r) for r in results), "",
    ]
    REPORTS.mkdir(exist_ok=True)
    path = REPORTS / f"{started}-faults.md"
    path.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"written to {path}")
    bad = [r for r in results if r.get("held") or (r.get("lost") and "AOF off" not in r["fault"]) or (
        "AOF off" in r["fault"] and (r["frames_after_fault"] or not r["paused"]
                                     or not r["audit_ok"]))]
    return 1 if bad else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
