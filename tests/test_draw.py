"""The scheduled opening: a pre-queue placed by a committed, published, verifiable draw."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from waitingroom import admission
from waitingroom.keys import ConcertKeys
from waitingroom.queue import Queues
from waitingroom.verify import mac

from .conftest import AddConcert, AppClient, MakeSettings, admin_headers, bearer, eventually

ADMIN = {"Authorization": "Bearer test-admin"}


def _in(seconds: float) -> str:
    """An RFC 3339 time this many seconds from now."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def _schedule(client: AppClient, concert: int, seconds: float, **more: Any) -> dict[str, Any]:
    r = await client.patch(f"/admin/concerts/{concert}/queue", headers=ADMIN,
                           json={"opens_at": _in(seconds), **more})
    assert r.status == 200, await r.text()
    body: dict[str, Any] = await r.json()
    assert body["opens_at"] is not None
    return body


async def _join(client: AppClient, concert: int, user: int) -> dict[str, Any]:
    r = await client.post(f"/api/v1/concerts/{concert}/queue", json={"user_id": user})
    assert r.status == 201, await r.text()
    body: dict[str, Any] = await r.json()
    return body


async def _draw(client: AppClient, concert: int) -> dict[str, Any]:
    r = await client.get(f"/api/v1/concerts/{concert}/draw")
    assert r.status == 200, await r.text()
    body: dict[str, Any] = await r.json()
    return body


async def _open(client: AppClient, queues: Queues, pg: asyncpg.Pool,
                concert: int) -> dict[str, Any]:
    """Run admitter ticks until the opening's draw is published; returns it."""
    async def drawn() -> bool:
        await admission.tick(queues, pg)
        return (await _draw(client, concert)).get("seed") is not None

    await eventually(drawn, timeout=8, interval=0.1)
    return await _draw(client, concert)


async def _positions(client: AppClient, tokens: list[str]) -> list[int]:
    out = []
    for token in tokens:
        r = await client.get("/api/v1/queue", headers=bearer(token))
        body = await r.json()
        assert body["state"] == "WAITING" and "pre_queue" not in body, body
        out.append(body["position"])
    return out


async def test_equal_arrivals_before_the_opening_are_ranked_by_the_seed(
        client: AppClient, queues: Queues, pg: asyncpg.Pool, add_concert: AddConcert) -> None:
    concert = await add_concert()
    # Paused too, so that nobody is admitted while the places are compared.
    scheduled = await _schedule(client, concert, 3, paused=True)
    before = await _draw(client, concert)
    assert set(before) == {"concert_id", "opens_at", "commitment", "drawn_at", "seed", "hmacs"}
    assert before["seed"] is None and before["hmacs"] is None
    assert before["opens_at"] == scheduled["opens_at"]

    # Thirty arrivals at the same moment, in user order.
    joined = await asyncio.gather(*(_join(client, concert, u) for u in range(1, 31)))
    for j in joined:
        assert (j["state"], j["position"], j["eta_seconds"]) == ("WAITING", None, None)
        assert j["pre_queue"] is True and j["opens_at"] == scheduled["opens_at"]
    tokens = [j["token"] for j in joined]
    r = await client.get("/api/v1/queue", headers=bearer(tokens[0]))
    polled = await r.json()
    assert (polled["position"], polled["pre_queue"], polled["opens_at"]) == (
        None, True, scheduled["opens_at"])
    # Joining again before the opening keeps the same pre-queue token.
    r = await client.post(f"/api/v1/concerts/{concert}/queue", json={"user_id": 1})
    assert r.status == 200 and (await r.json())["token"] == tokens[0]

    published = await _open(client, queues, pg, concert)
    seed = bytes.fromhex(published["seed"])
    assert hashlib.sha256(seed).hexdigest() == before["commitment"] == published["commitment"]
    assert published["hmacs"] == sorted(mac(seed, t) for t in tokens)
    # Places follow the HMAC order, not the order of arrival.
    by_hmac = sorted(tokens, key=lambda t: mac(seed, t))
    positions = await _positions(client, tokens)
    assert positions == [by_hmac.index(t) + 1 for t in tokens]
    assert positions != list(range(1, 31))
    # Later arrivals are first come, first served, behind everyone drawn.
    later = [(await _join(client, concert, u)) for u in range(31, 36)]
    assert [j["position"] for j in later] == [31, 32, 33, 34, 35]
    assert all("pre_queue" not in j for j in later)
    r = await client.get(f"/admin/concerts/{concert}/queue", headers=ADMIN)
    assert (await r.json())["opens_at"] is None


async def test_another_seed_draws_another_order(client: AppClient, queues: Queues,
                                                pg: asyncpg.Pool, add_concert: AddConcert) -> None:
    first, second = await add_concert(), await add_concert()
    for concert in (first, second):
        await _schedule(client, concert, 3, paused=True)
    tokens = {c: [(await _join(client, c, u))["token"] for u in range(1, 21)]
              for c in (first, second)}
    seeds, orders = [], []
    for concert in (first, second):
        seeds.append((await _open(client, queues, pg, concert))["seed"])
        orders.append(await _positions(client, tokens[concert]))
    assert seeds[0] != seeds[1]
    # The same twenty users, arriving in the same order, end up in another order.
    assert orders[0] != orders[1]
    assert sorted(orders[0]) == sorted(orders[1]) == list(range(1, 21))


async def _verify(tokens: list[str], source: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "waitingroom", "verify-draw", *tokens, source,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_verify_draw_recomputes_the_rank_from_published_data_only(
        client: AppClient, queues: Queues, pg: asyncpg.Pool, add_concert: AddConcert,
        tmp_path: Path) -> None:
    concert = await add_concert()
    await _schedule(client, concert, 3, paused=True)
    tokens = [j["token"] for j in await asyncio.gather(*(_join(client, concert, u)
                                                         for u in range(1, 9)))]
    url = str(client.make_url(f"/api/v1/concerts/{concert}/draw"))
    code, out = await _verify(tokens[:1], url)
    assert code != 0 and "not taken place" in out
    published = await _open(client, queues, pg, concert)
    positions = await _positions(client, tokens)
    saved = tmp_path / "draw.json"
    saved.write_text(json.dumps(published))
    # Every token's rank recomputed from the saved copy (and one straight from the endpoint)
    # is its place: the whole permutation.
    (code, out), (url_code, url_out) = await asyncio.gather(_verify(tokens, str(saved)),
                                                            _verify(tokens[3:4], url))
    assert code == 0, out
    for token, position in zip(tokens, positions, strict=True):
        assert f"{token}: rank {position} of 8" in out
    assert url_code == 0 and f"{tokens[3]}: rank {positions[3]} of 8" in url_out

    seed = published["seed"]
    tampered_seed = dict(published, seed=("0" if seed[0] != "0" else "1") + seed[1:])
    swapped = list(published["hmacs"])
    swapped[0], swapped[1] = swapped[1], swapped[0]
    mine = mac(bytes.fromhex(seed), tokens[0])
    without_mine = sorted([h for h in published["hmacs"] if h != mine] + ["f" * 64])
    runs = []
    for n, bad in enumerate((tampered_seed, dict(published, hmacs=swapped),
                             dict(published, hmacs=without_mine))):
        (tmp_path / f"bad{n}.json").write_text(json.dumps(bad))
        runs.append(_verify(tokens[:1], str(tmp_path / f"bad{n}.json")))
    runs.append(_verify([tokens[1], "00000000-0000-4000-8000-000000000000"], str(saved)))
    *bad_results, (code, out) = await asyncio.gather(*runs)
    assert all(c != 0 for c, _ in bad_results), bad_results
    assert "commitment" in bad_results[0][1] and "sorted" in bad_results[1][1]
    assert "not in the list" in bad_results[2][1]
    assert code != 0 and "not in the list" in out


async def test_joins_racing_the_draw_of_two_admitters_are_in_it_or_behind_it(
        client: AppClient, queues: Queues, pg: asyncpg.Pool, add_concert: AddConcert,
        make_settings: MakeSettings, redis_url: str) -> None:
    from waitingroom.app import redis_client

    concert = await add_concert()
    await _schedule(client, concert, 1.0, paused=True)
    other = redis_client(redis_url, 10)
    second = Queues(other, make_settings())
    joined: list[str] = []
    done = asyncio.Event()

    async def joiner() -> None:
        user = 0
        while not done.is_set() and user < 400:
            user += 1
            joined.append((await _join(client, concert, user))["token"])

    async def admitter(q: Queues) -> None:
        while not done.is_set():
            await admission.tick(q, pg)
            if (await _draw(client, concert))["seed"] is not None:
                done.set()
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(asyncio.gather(joiner(), admitter(queues), admitter(second)),
                               timeout=15)
    finally:
        await other.aclose()
    # A few more once it is all over, to see them behind.
    for user in range(1000, 1003):
        joined.append((await _join(client, concert, user))["token"])
    published = await _draw(client, concert)
    seed = bytes.fromhex(published["seed"])
    hmacs = published["hmacs"]
    drawn = [t for t in joined if mac(seed, t) in set(hmacs)]
    after = [t for t in joined if mac(seed, t) not in set(hmacs)]
    assert len(drawn) == len(hmacs) > 0 and len(after) >= 3
    positions = dict(zip(joined, await _positions(client, joined), strict=True))
    # Every token exactly once: the places are 1..N.
    assert sorted(positions.values()) == list(range(1, len(joined) + 1))
    # The drawn come first in HMAC order, everyone else behind them in order of arrival.
    assert [positions[t] for t in sorted(drawn, key=lambda t: mac(seed, t))] == list(
        range(1, len(drawn) + 1))
    assert [positions[t] for t in after] == list(range(len(drawn) + 1, len(joined) + 1))


async def test_pre_queue_frames_then_position_frames(client: AppClient, queues: Queues,
                                                     pg: asyncpg.Pool,
                                                     add_concert: AddConcert) -> None:
    concert = await add_concert()
    scheduled = await _schedule(client, concert, 3, paused=True)
    first = await _join(client, concert, 1)
    second = await _join(client, concert, 2)
    sockets = [await client.ws_connect(f"/ws/queue?token={j['token']}") for j in (first, second)]
    for ws in sockets:
        frame = await ws.receive_json(timeout=5)
        assert frame == {"type": "pre_queue", "opens_at": scheduled["opens_at"]}
    published = await _open(client, queues, pg, concert)
    seed = bytes.fromhex(published["seed"])
    ranked = sorted([first["token"], second["token"]], key=lambda t: mac(seed, t))
    for j, ws in zip((first, second), sockets, strict=True):
        frame = await ws.receive_json(timeout=5)
        assert frame["type"] == "position"
        assert frame["position"] == ranked.index(j["token"]) + 1
        await ws.close()


@pytest.mark.parametrize("opens_at", [
    "tomorrow", "2026-13-01T00:00:00Z", "2099-01-01T00:00:00", "2099-02-30T00:00:00Z",
    "2099-01-01", "x" * 41, 12, True, {"at": "2099-01-01T00:00:00Z"},
])
async def test_admin_rejects_a_bad_opening_and_changes_nothing(
        client: AppClient, add_concert: AddConcert, opens_at: object) -> None:
    concert = await add_concert()
    r = await client.patch(f"/admin/concerts/{concert}/queue", headers=ADMIN,
                           json={"opens_at": opens_at, "paused": True})
    assert r.status == 400 and r.content_type == "application/problem+json"
    problem = await r.json()
    assert problem["code"] == "validation_error" and "opens_at" in problem["detail"] + str(
        problem.get("field"))
    r = await client.get(f"/admin/concerts/{concert}/queue", headers=ADMIN)
    body = await r.json()
    assert body["opens_at"] is None and body["paused"] is False
    r = await client.get(f"/api/v1/concerts/{concert}/draw")
    assert r.status == 404
    joined = await _join(client, concert, 1)
    assert joined["position"] == 1 and "pre_queue" not in joined


async def test_moving_the_opening_keeps_the_commitment_and_null_opens_now(
        client: AppClient, queues: Queues, pg: asyncpg.Pool, add_concert: AddConcert) -> None:
    concert = await add_concert()
    await _schedule(client, concert, 600, paused=True)
    committed = (await _draw(client, concert))["commitment"]
    moved = await _schedule(client, concert, 1200)
    assert (await _draw(client, concert))["commitment"] == committed
    assert (await _draw(client, concert))["opens_at"] == moved["opens_at"]
    token = (await _join(client, concert, 7))["token"]
    r = await client.patch(f"/admin/concerts/{concert}/queue", headers=ADMIN,
                           json={"opens_at": None})
    assert r.status == 200
    published = await _open(client, queues, pg, concert)
    assert published["commitment"] == committed
    assert published["hmacs"] == [mac(bytes.fromhex(published["seed"]), token)]
    assert await _positions(client, [token]) == [1]


async def test_an_opening_survives_redis_coming_back_empty(
        client: AppClient, queues: Queues, pg: asyncpg.Pool, redis: Redis,
        add_concert: AddConcert) -> None:
    concert = await add_concert()
    scheduled = await _schedule(client, concert, 600)
    # Redis loses the concert's queue (as when it comes back empty).
    await redis.delete(*ConcertKeys(concert).queue_keys)
    await admission.tick(queues, pg)
    r = await client.get(f"/admin/concerts/{concert}/queue", headers=admin_headers(
        queues.settings))
    assert (await r.json())["opens_at"] == scheduled["opens_at"]
    joined = await _join(client, concert, 1)
    assert joined["pre_queue"] is True and joined["position"] is None
