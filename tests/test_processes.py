"""Real processes: web processes stopped and killed while clients wait, and the admitter."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any

import aiohttp
import asyncpg
from redis.asyncio import Redis

from tests.conftest import AddConcert, Spawn, eventually
from waitingroom import keys
from waitingroom.keys import ConcertKeys
from waitingroom.queue import Queues
from waitingroom.records import TokenRecord
from waitingroom.servers import free_port


async def frame(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    body: dict[str, Any] = msg.json()
    return body


async def test_stopped_process_says_going_away_and_place_is_kept_elsewhere(spawn: Spawn,
                                                                           add_concert: AddConcert,
                                                                           queues: Queues) -> None:
    cid = await add_concert()
    await queues.configure(cid, paused=True)
    one, two = await spawn("web"), await spawn("web")
    async with aiohttp.ClientSession() as http:
        for user in (1, 2):
            await http.post(f"{one.url}/api/v1/concerts/{cid}/queue", json={"user_id": user})
        r = await http.post(f"{one.url}/api/v1/concerts/{cid}/queue", json={"user_id": 3})
        token = (await r.json())["token"]
        ws = await http.ws_connect(f"{one.url}/ws/queue?token={token}")
        assert (await frame(ws))["position"] == 3
        one.proc.send_signal(signal.SIGTERM)
        msg = await ws.receive(timeout=10)
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1001)
        assert await one.proc.wait() == 0
        ws = await http.ws_connect(f"{two.url}/ws/queue?token={token}")
        assert (await frame(ws))["position"] == 3
        await ws.close()


async def test_admitter_process_admits_and_killed_web_process_releases_its_waiters(
        spawn: Spawn, add_concert: AddConcert, queues: Queues, redis: Redis) -> None:
    cid = await add_concert()
    await queues.configure(cid, paused=True, admit_rate=100.0)
    web = await spawn("web")
    await spawn("admitter")
    async with aiohttp.ClientSession() as http:
        tokens = []
        for user in (1, 2):
            r = await http.post(f"{web.url}/api/v1/concerts/{cid}/queue", json={"user_id": user})
            tokens.append((await r.json())["token"])
        sockets = [await http.ws_connect(f"{web.url}/ws/queue?token={t}") for t in tokens]
        for ws in sockets:
            await frame(ws)

        async def record(token: str) -> TokenRecord:
            raw = await redis.hget(ConcertKeys(cid).tokens, token)
            assert raw is not None, f"no record of token {token}"
            return TokenRecord.parse(raw)

        async def state(token: str) -> str:
            return (await record(token)).state

        # Held by open sockets, both outlive the 1 s grace period while the web process lives.
        start = await redis_seconds(redis)

        async def grace_passed() -> bool:
            return await redis_seconds(redis) - start >= 1.5

        await eventually(grace_passed, timeout=5)
        assert [await state(t) for t in tokens] == ["WAITING", "WAITING"]
        # The web process dies without a word: its lease runs out, the admitter releases its
        # tokens, and after the grace period they are dropped.
        web.proc.kill()
        await web.proc.wait()
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()

        async def both_dropped() -> bool:
            return [await state(t) for t in tokens] == ["EXPIRED", "EXPIRED"]

        await eventually(both_dropped, timeout=15, interval=0.2)
        reasons = [(await record(t)).reason for t in tokens]
        assert reasons == ["dropped", "dropped"]


async def redis_seconds(redis: Redis) -> float:
    sec, usec = await redis.time()
    return sec + usec / 1e6


async def waiting_on_a_lock(pg: asyncpg.Pool) -> bool:
    """Whether a session of the test database waits for a lock (one the test holds)."""
    return bool(await pg.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock'"))


async def test_sigterm_lets_a_request_in_flight_finish(spawn: Spawn, add_concert: AddConcert,
                                                       queues: Queues, pg: asyncpg.Pool) -> None:
    cid = await add_concert()
    await queues.configure(cid, paused=True)
    web = await spawn("web")
    async with aiohttp.ClientSession() as http:
        tokens = []
        for user in (1, 2, 3):
            r = await http.post(f"{web.url}/api/v1/concerts/{cid}/queue", json={"user_id": user})
            tokens.append((await r.json())["token"])
        sockets = [await http.ws_connect(f"{web.url}/ws/queue?token={t}") for t in tokens]
        assert [(await frame(ws))["position"] for ws in sockets] == [1, 2, 3]
        await pg.execute("INSERT INTO users (id) VALUES (1) ON CONFLICT DO NOTHING")
        await pg.execute("INSERT INTO balances (user_id, balance) VALUES (1, 0)")

        async def charge() -> tuple[int, Any]:
            async with http.post(f"{web.url}/api/v1/balance/charges", json={"amount": 5000},
                                 headers={"Authorization": f"Bearer {tokens[0]}"}) as r:
                return r.status, await r.json()

        async with pg.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            # The test holds the balance row: the charge is in flight, waiting for it.
            await conn.execute("SELECT 1 FROM balances WHERE user_id = 1 FOR UPDATE")
            in_flight = asyncio.create_task(charge())
            await eventually(lambda: waiting_on_a_lock(pg), timeout=10)
            signalled = time.monotonic()
            web.proc.send_signal(signal.SIGTERM)
            for ws in sockets:  # every socket is told to reconnect elsewhere
                msg = await ws.receive(timeout=10)
                assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1001), msg
            assert not in_flight.done()
            await tx.rollback()  # the row is free: the request goes on
        assert await in_flight == (201, {"balance": 5000})  # its normal answer
        assert await asyncio.wait_for(web.proc.wait(), 10) == 0
        drained = time.monotonic() - signalled
    assert await pg.fetchval("SELECT balance FROM balances WHERE user_id = 1") == 5000
    print(f"\nSIGTERM: 3 sockets closed 1001, the request in flight answered 201, "
          f"exit 0 after {drained:.2f} s")


async def test_a_killed_process_sharing_a_port_its_clients_come_back_to_their_places(
        spawn: Spawn, add_concert: AddConcert, queues: Queues, redis: Redis) -> None:
    cid = await add_concert()
    await queues.configure(cid, paused=True)
    port = free_port()
    one = await spawn("web", port=port, flags=["--reuse-port"])
    async with aiohttp.ClientSession() as http:
        tokens = []
        for user in range(1, 9):
            r = await http.post(f"{one.url}/api/v1/concerts/{cid}/queue", json={"user_id": user})
            tokens.append((await r.json())["token"])
        # Every socket is on the first process: it was alone on the port.
        sockets = [await http.ws_connect(f"{one.url}/ws/queue?token={t}") for t in tokens]
        assert [(await frame(ws))["position"] for ws in sockets] == list(range(1, 9))
        await spawn("web", port=port, flags=["--reuse-port"])
        await spawn("admitter")  # it reaps the dead process's lease (WAIT_GRACE is 1 s)

        async def both_live() -> bool:  # readiness above may have been the first one's answer
            return int(await redis.zcard(keys.PROCS)) == 2

        await eventually(both_live, timeout=20, interval=0.1)
        killed = time.monotonic()
        one.proc.kill()
        await one.proc.wait()
        for ws in sockets:  # no close frame: the connection just drops
            msg = await ws.receive(timeout=10)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.ERROR), msg
            assert ws.close_code != 1001
            await ws.close()

        dropped = time.monotonic() - killed
        sockets = []

        async def all_back() -> bool:  # to the same port, where only the other process listens
            while len(sockets) < len(tokens):
                try:
                    sockets.append(await http.ws_connect(
                        f"{one.url}/ws/queue?token={tokens[len(sockets)]}"))
                except aiohttp.ClientError:
                    return False  # refused while the port changes hands: try again
            return True

        await eventually(all_back, timeout=10)
        assert [(await frame(ws))["position"] for ws in sockets] == list(range(1, 9))
        recovered = time.monotonic() - killed

        # The dead process's lease runs out and the admitter reaps it: the tokens, held by the
        # live process's sockets now, are not released, and after the grace period all wait on.
        async def reaped() -> bool:
            return int(await redis.zcard(keys.PROCS)) == 1

        await eventually(reaped, timeout=15, interval=0.1)
        raws = await redis.hmget(ConcertKeys(cid).tokens, tokens)
        assert [r and TokenRecord.parse(r).state for r in raws] == ["WAITING"] * 8
        for ws in sockets:
            await ws.close()
    print(f"\nSIGKILL of one of two --reuse-port processes: 8 sockets dropped after "
          f"{dropped:.2f} s, all back in place after {recovered:.2f} s")


# Nobody here keeps a socket open or polls: a long grace period keeps them in line.
LONG_GRACE = {"WAIT_GRACE": "600"}
# What the admission budget may hold at 20/s (lua/admit.lua): a second's worth, plus one.
ONE_SECONDS_WORTH = 21 + 0.5


async def _records(redis: Redis, cid: int, tokens: list[str]) -> list[TokenRecord]:
    raws = await redis.hmget(ConcertKeys(cid).tokens, tokens)
    assert None not in raws
    return [TokenRecord.parse(r) for r in raws if r is not None]


def _admitted_in_order(records: list[TokenRecord]) -> int:
    """How many were admitted; fails unless they are a prefix of the line (nobody skipped),
    admitted in line order (their deadlines never go down), each once (counted below)."""
    states = [r.state for r in records]
    n = states.count("AVAILABLE")
    assert states == ["AVAILABLE"] * n + ["WAITING"] * (len(states) - n), states
    deadlines = [r.expires_ms or 0 for r in records[:n]]
    assert deadlines == sorted(deadlines)
    return n


def _fastest(deadlines: list[int], rate: float) -> float:
    """The most admissions in any stretch beyond what the rate allows for it (admission
    deadlines are admission times plus the same ACTIVE_TTL)."""
    worst = 0.0
    for i, first in enumerate(deadlines):
        for j in range(i, len(deadlines)):
            worst = max(worst, (j - i + 1) - rate * (deadlines[j] - first) / 1000)
    return worst


async def test_an_admitter_killed_mid_tick_again_and_again_skips_and_repeats_nobody(
        spawn: Spawn, add_concert: AddConcert, queues: Queues, redis: Redis,
        pg: asyncpg.Pool) -> None:
    cid = await add_concert()
    # The users exist in PostgreSQL (as an HTTP join makes them), so admissions' rows can be written.
    await pg.execute("INSERT INTO users (id) SELECT generate_series(1, 80)")
    # Enough for three restarts: each may admit a second's worth (20) at once, then 20/s.
    tokens = [(await queues.join(cid, user)).token for user in range(1, 81)]
    await queues.configure(cid, admit_rate=20.0)
    kills = 0
    for _ in range(3):
        admitter = await spawn("admitter", **LONG_GRACE)
        before = (await queues.figures([cid]))[cid].admitted_total

        async def admitting(before: int = before) -> bool:
            return (await queues.figures([cid]))[cid].admitted_total >= before + 4

        await eventually(admitting, timeout=20, interval=0.05)
        async with pg.acquire() as conn, conn.transaction():
            # Its next tick admits in Redis, then waits to write the admissions' rows: it is
            # killed right there, in the middle of a tick.
            await conn.execute("LOCK TABLE waiting_token IN EXCLUSIVE MODE")
            await eventually(lambda: waiting_on_a_lock(pg), timeout=10)
            admitter.proc.kill()
            await admitter.proc.wait()
            kills += 1
        _admitted_in_order(await _records(redis, cid, tokens))
    await spawn("admitter", **LONG_GRACE)

    async def everyone() -> bool:
        return _admitted_in_order(await _records(redis, cid, tokens)) == len(tokens)

    await eventually(everyone, timeout=30, interval=0.1)
    # Each admitted once: the admission count is the number of people.
    assert (await queues.figures([cid]))[cid].admitted_total == len(tokens)
    deadlines = [r.expires_ms or 0 for r in await _records(redis, cid, tokens)]
    # No making up for the time it was down: never more in any stretch than the rate allows
    # plus the budget's cap, about one second's worth (what a late tick may catch up).
    assert _fastest(deadlines, 20.0) <= ONE_SECONDS_WORTH
    # The rows of the admissions whose tick was cut short are written by the next admitter.
    async def every_row() -> bool:
        rows = await pg.fetch("SELECT token::text, ticket FROM waiting_token "
                              "WHERE concert_id = $1 AND state = 'AVAILABLE'", cid)
        return {r["token"] for r in rows} == set(tokens)

    await eventually(every_row, timeout=10, interval=0.1)
    span = (deadlines[-1] - deadlines[0]) / 1000
    print(f"\nadmitter killed mid-tick {kills} times: {len(tokens)} of {len(tokens)} admitted "
          f"once each, in order, {len(tokens) / span:.1f}/s over {span:.1f} s at 20/s "
          f"(restarts included), every row written")


async def test_two_admitters_one_killed_the_other_carries_on_at_the_rate(
        spawn: Spawn, add_concert: AddConcert, queues: Queues, redis: Redis) -> None:
    cid = await add_concert()
    tokens = [(await queues.join(cid, user)).token for user in range(1, 61)]
    await queues.configure(cid, admit_rate=20.0)
    first = await spawn("admitter", **LONG_GRACE)
    await spawn("admitter", **LONG_GRACE)

    async def admitted(n: int) -> bool:
        return (await queues.figures([cid]))[cid].admitted_total >= n

    await eventually(lambda: admitted(10), timeout=20, interval=0.05)
    first.proc.kill()
    await first.proc.wait()
    killed_at = _admitted_in_order(await _records(redis, cid, tokens))
    await eventually(lambda: admitted(len(tokens)), timeout=20, interval=0.1)
    assert _admitted_in_order(await _records(redis, cid, tokens)) == len(tokens)
    assert (await queues.figures([cid]))[cid].admitted_total == len(tokens)
    after = [r.expires_ms or 0 for r in (await _records(redis, cid, tokens))[killed_at:]]
    rate = (len(after) - 1) / ((after[-1] - after[0]) / 1000)
    assert _fastest(after, 20.0) <= ONE_SECONDS_WORTH
    assert 15 <= rate <= 25  # it carried on at the rate (no gap), not merely eventually
    print(f"\ntwo admitters, one killed: the other admitted the last {len(after)} at "
          f"{rate:.1f}/s (configured 20/s)")
