"""The gateway on a real Redis Cluster (REDIS_CLUSTER=true): three primaries with a replica each
on loopback, concerts spread over the three; joins, polls, sockets, admission at the configured
rate, holds and payments, and a primary killed while people wait."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import Spawn, eventually
from waitingroom.keys import ConcertKeys
from waitingroom.servers import free_port, redis_binary

ADMIN = {"Authorization": "Bearer k"}
PRIMARIES, REPLICAS = 3, 1


def _cli() -> str:
    return redis_binary().replace("redis-server", "redis-cli")


class RedisCluster:
    """Six redis-servers of the test's own (AOF on): three primaries, a replica each."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def cli(self, port: int, *args: str) -> str:
        return subprocess.run([_cli(), "-p", str(port), *args], capture_output=True,
                              text=True, timeout=10).stdout.strip()

    def start(self) -> None:
        ports: list[int] = []
        while len(ports) < PRIMARIES * (1 + REPLICAS):
            port = free_port()
            if port + 10000 < 65536 and port not in ports:  # the cluster bus port too
                ports.append(port)
        for port in ports:
            folder = self.folder / str(port)
            folder.mkdir()
            self.procs[port] = subprocess.Popen(
                [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                 "--cluster-node-timeout", "2000", "--appendonly", "yes", "--dir", str(folder)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        for port in ports:
            while self.cli(port, "ping") != "PONG":
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        subprocess.run([_cli(), "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                        "--cluster-replicas", str(REPLICAS), "--cluster-yes"],
                       capture_output=True, check=True, timeout=30)
        self.wait_ok()

    def wait_ok(self, timeout: float = 20) -> None:
        """Until every live node says cluster_state:ok and sees three primaries serving."""
        deadline = time.monotonic() + timeout
        while True:
            live = [p for p, proc in self.procs.items() if proc.poll() is None]
            if all("cluster_state:ok" in self.cli(p, "cluster", "info") for p in live) and all(
                    len(self.primaries(p)) == PRIMARIES for p in live):
                return
            assert time.monotonic() < deadline, "the cluster did not become ready"
            time.sleep(0.1)

    def primaries(self, port: int | None = None) -> dict[int, list[tuple[int, int]]]:
        """Live primaries as node `port` sees them: port -> slot ranges."""
        port = port or self.any_port
        out: dict[int, list[tuple[int, int]]] = {}
        for line in self.cli(port, "cluster", "nodes").splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2] or len(fields) < 9:
                continue
            ranges = []
            for r in fields[8:]:
                if not r.startswith("["):  # a slot being migrated
                    lo, _, hi = r.partition("-")
                    ranges.append((int(lo), int(hi or lo)))
            out[int(fields[1].split(":")[1].split("@")[0])] = ranges
        return out

    @property
    def any_port(self) -> int:
        return next(p for p, proc in self.procs.items() if proc.poll() is None)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.any_port}"

    def primary_of(self, key: str) -> int:
        slot = int(self.cli(self.any_port, "cluster", "keyslot", key))
        return next(p for p, ranges in self.primaries().items()
                    if any(lo <= slot <= hi for lo, hi in ranges))

    def replicas_synced(self, port: int) -> bool:
        """Whether every replica of primary `port` has its replication link up."""
        me = self.cli(port, "cluster", "myid")
        replicas = [int(line.split()[1].split(":")[1].split("@")[0])
                    for line in self.cli(port, "cluster", "nodes").splitlines()
                    if " slave " in f" {line.split()[2]} " and line.split()[3] == me]
        return bool(replicas) and all(
            "master_link_status:up" in self.cli(r, "info", "replication") for r in replicas)

    def kill(self, port: int) -> None:
        proc = self.procs[port]
        proc.kill()
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    if not shutil.which(_cli()) and not Path(_cli()).exists():
        pytest.skip("redis-cli is not installed")
    c = RedisCluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture
def fresh(cluster: RedisCluster) -> RedisCluster:
    """The module's cluster, emptied (PostgreSQL numbers concerts from 1 again in every test)."""
    for port in cluster.primaries():
        cluster.cli(port, "flushall")
    return cluster


async def _concerts(pg: asyncpg.Pool, cluster: RedisCluster) -> list[int]:
    """Concerts with ten seats on one date, until three of them live on three primaries."""
    chosen: dict[int, int] = {}
    while len(chosen) < PRIMARIES:
        async with pg.acquire() as conn, conn.transaction():
            cid = await conn.fetchval("INSERT INTO concerts (name, host) VALUES ($1, 'Hall')"
                                      " RETURNING id", f"Concert {uuid.uuid4().hex[:8]}")
            sid = await conn.fetchval("INSERT INTO concert_schedules (concert_id, concert_date)"
                                      " VALUES ($1, $2) RETURNING id", cid, date(2026, 12, 24))
            await conn.execute("INSERT INTO concert_seats (schedule_id, seat_number, price)"
                               " SELECT $1, n, 10000 FROM generate_series(1, 10) n", sid)
        chosen.setdefault(cluster.primary_of(ConcertKeys(cid).queue), cid)
    return sorted(chosen.values())


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _join(s: aiohttp.ClientSession, url: str, concert_id: int, user: int) -> dict[str, Any]:
    async with s.post(f"{url}/api/v1/concerts/{concert_id}/queue", json={"user_id": user}) as r:
        assert r.status in (200, 201), await r.text()
        body: dict[str, Any] = await r.json()
        return body


async def _poll(s: aiohttp.ClientSession, url: str, token: str) -> tuple[int, dict[str, Any]]:
    async with s.get(url + "/api/v1/queue", headers=_bearer(token)) as r:
        body = await r.json()
        if r.status == 503:
            assert r.headers["Retry-After"] and body["code"] == "service_unavailable"
        return r.status, body


async def _configure(s: aiohttp.ClientSession, url: str, concert_id: int, **change: Any) -> None:
    async with s.patch(f"{url}/admin/concerts/{concert_id}/queue", headers=ADMIN,
                       json=change) as r:
        assert r.status == 200, await r.text()


async def _figures(s: aiohttp.ClientSession, url: str, concert_id: int) -> dict[str, Any]:
    async with s.get(f"{url}/admin/concerts/{concert_id}/queue", headers=ADMIN) as r:
        assert r.status == 200
        body: dict[str, Any] = await r.json()
        return body


async def _frame(ws: aiohttp.ClientWebSocketResponse, kind: str,
                 timeout: float = 10) -> dict[str, Any]:
    """The next frame of this type (others skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        frame: dict[str, Any] = await ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
        if frame["type"] == kind:
            return frame


async def test_the_gateway_runs_unchanged_on_a_cluster(spawn: Spawn, pg: asyncpg.Pool,
                                                       fresh: RedisCluster) -> None:
    cluster = fresh
    a, b, c = await _concerts(pg, cluster)
    assert len({cluster.primary_of(ConcertKeys(cid).queue) for cid in (a, b, c)}) == PRIMARIES
    env = {"REDIS_URL": cluster.url, "REDIS_CLUSTER": "true", "WAIT_GRACE": "60"}
    one, two = await spawn("web", **env), await spawn("web", **env)
    await spawn("admitter", **env)
    async with aiohttp.ClientSession() as s:
        for cid in (a, b, c):
            await _configure(s, one.url, cid, paused=True, admit_rate=10)
        # Joins and polls on either process, in every concert (every primary).
        tokens: dict[int, list[str]] = {}
        for cid in (a, b, c):
            tokens[cid] = []
            for user in range(1, 21):
                web = one if user % 2 else two
                joined = await _join(s, web.url, cid, user)
                assert joined["position"] == user and joined["state"] == "WAITING"
                tokens[cid].append(joined["token"])
            again = await _join(s, two.url, cid, 1)  # one live token per user per concert
            assert again["token"] == tokens[cid][0] and again["position"] == 1
            polls = await asyncio.gather(*(_poll(s, one.url, t) for t in tokens[cid]))
            assert [(st, body["position"], body["concert_id"]) for st, body in polls] == [
                (200, n, cid) for n in range(1, 21)]
        # Sockets on the other process than the one the admin talks to: the events travel
        # from the admitter through the cluster's pub/sub.
        sockets = {cid: await s.ws_connect(f"{two.url}/ws/queue?token={tokens[cid][1]}")
                   for cid in (a, b, c)}
        for ws in sockets.values():
            assert (await _frame(ws, "position"))["position"] == 2
        # Leaving moves the one behind forward.
        async with s.delete(one.url + "/api/v1/queue", headers=_bearer(tokens[b][0])) as r:
            assert r.status == 204
        assert (await _frame(sockets[b], "position"))["position"] == 1

        # Admission at the configured rate (10/s), measured over two seconds.
        await _configure(s, one.url, a, paused=False)
        admitted = await _frame(sockets[a], "admitted")
        assert admitted["concert_id"] == a
        started = (await _figures(s, one.url, a))["admitted_total"]
        assert started <= 13  # no banking while paused: about one second's worth at most
        t0 = time.monotonic()
        await asyncio.sleep(1.5)
        done = (await _figures(s, one.url, a))["admitted_total"]
        rate = (done - started) / (time.monotonic() - t0)
        assert 6 <= rate <= 14, rate
        status, body = await _poll(s, one.url, tokens[a][0])
        assert (status, body["state"]) == (200, "AVAILABLE")

        # The booking gate reads the token from the cluster: hold two seats and pay.
        buyer = tokens[a][0]
        async with s.post(one.url + "/api/v1/balance/charges", headers=_bearer(buyer),
                          json={"amount": 50_000}) as r:
            assert r.status == 201
        async with s.get(f"{two.url}/api/v1/concerts/{a}/schedules", headers=_bearer(buyer)) as r:
            assert r.status == 200
            (schedule,) = await r.json()
        async with s.post(two.url + "/api/v1/reservations", headers=_bearer(buyer),
                          json={"schedule_id": schedule["id"], "quantity": 2}) as r:
            assert r.status == 201, await r.text()
            held = await r.json()
        # The buyer's socket on the other process hears that the payment ended the token
        # (published by the queue's script on the concert's primary).
        buyer_ws = await s.ws_connect(f"{two.url}/ws/queue?token={buyer}")
        await _frame(buyer_ws, "admitted")
        async with s.post(one.url + "/api/v1/payments",
                          headers=_bearer(buyer) | {"Idempotency-Key": "pay-1"},
                          json={"reservation_id": held["id"]}) as r:
            assert r.status == 201, await r.text()
            assert (await r.json())["balance"] == 30_000
        status, body = await _poll(s, two.url, buyer)
        assert (status, body["state"], body["reason"]) == (200, "EXPIRED", "completed")
        assert (await _frame(buyer_ws, "expired"))["reason"] == "completed"
        await buyer_ws.close()
        # A waiter of a concert still paused cannot book.
        async with s.get(f"{one.url}/api/v1/concerts/{c}/schedules",
                         headers=_bearer(tokens[c][0])) as r:
            assert (r.status, (await r.json())["code"]) == (403, "token_not_admitted")

        async with s.get(one.url + "/api/v1/concerts") as r:
            queues = {q["id"]: q["queue"] for q in await r.json()}
        assert queues[b]["waiting"] == 19 and queues[c]["paused"] is True
        for ws in sockets.values():
            await ws.close()


async def test_a_primary_killed_is_like_a_redis_restart(spawn: Spawn, pg: asyncpg.Pool,
                                                        fresh: RedisCluster) -> None:
    cluster = fresh
    a, *_ = await _concerts(pg, cluster)
    env = {"REDIS_URL": cluster.url, "REDIS_CLUSTER": "true", "WAIT_GRACE": "60"}
    web = await spawn("web", **env)
    await spawn("admitter", **env)
    async with aiohttp.ClientSession() as s:
        await _configure(s, web.url, a, paused=True, admit_rate=5)
        tokens = [(await _join(s, web.url, a, user))["token"] for user in range(101, 111)]

        # The admitter has met the cluster (a process that first starts while the node named
        # by REDIS_URL is dead cannot find the others): its tick has recorded itself.
        state = ConcertKeys(a).state

        async def ticked() -> bool:
            return cluster.cli(cluster.primary_of(state), "hexists", state, "last_ms") == "1"

        await eventually(ticked, timeout=30, interval=0.1)
        ws = await s.ws_connect(f"{web.url}/ws/queue?token={tokens[4]}")
        assert (await _frame(ws, "position"))["position"] == 5
        await asyncio.sleep(0.5)  # replication is asynchronous: let the replica catch up

        victim = cluster.primary_of(ConcertKeys(a).queue)

        async def synced() -> bool:  # a replica not yet in sync would not take over
            return cluster.replicas_synced(victim)

        await eventually(synced, timeout=20, interval=0.1)
        cluster.kill(victim)
        seen: list[int] = []
        deadline = time.monotonic() + 30
        while True:
            status, body = await _poll(s, web.url, tokens[0])
            seen.append(status)
            if status == 200:
                break
            assert status == 503, body
            assert time.monotonic() < deadline, "the gateway did not come back"
            await asyncio.sleep(0.2)
        cluster.wait_ok()
        assert victim not in cluster.primaries()
        # Every token and place kept, in order; the operator's settings too.
        polls = await asyncio.gather(*(_poll(s, web.url, t) for t in tokens))
        assert [(st, body["position"]) for st, body in polls] == [
            (200, n) for n in range(1, 11)]
        figures = await _figures(s, web.url, a)
        assert figures["paused"] is True and figures["admitted_total"] == 0
        # Admission and the socket's frames go on (the listener subscribes again).
        await _configure(s, web.url, a, paused=False)

        async def admitted() -> bool:
            return bool((await _poll(s, web.url, tokens[4]))[1]["state"] == "AVAILABLE")

        await eventually(admitted, timeout=10)
        frame = await _frame(ws, "admitted", timeout=10)
        assert frame["concert_id"] == a
        await ws.close()
        print(f"while the primary failed over: {seen.count(503)} polls answered 503")
