"""ETAs people can trust: from the configured rate until enough is measured, then from a window
long enough to be steady; never rising while the line moves at a steady rate; frames at most
about once a second whatever the tick."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from typing import Any

import aiohttp
import pytest

from tests.conftest import Spawn, eventually

ADMIN = {"Authorization": "Bearer k"}


async def _fill(s: aiohttp.ClientSession, url: str, count: int) -> list[str]:
    async def one(user: int) -> str:
        async with s.post(url + "/api/v1/concerts/1/queue", json={"user_id": user}) as r:
            return str((await r.json())["token"])

    return [await one(u) for u in range(1, count + 1)]


async def _fill_from(s: aiohttp.ClientSession, url: str, first: int, last: int) -> list[str]:
    """Users first..last join concert 1, a few at a time; their tokens in order of joining."""
    async def one(user: int) -> str:
        async with s.post(url + "/api/v1/concerts/1/queue", json={"user_id": user}) as r:
            return str((await r.json())["token"])

    tokens: list[str] = []
    for start in range(first, last + 1, 50):  # in order: each batch joins after the one before
        tokens += await asyncio.gather(*(one(u) for u in range(start, min(start + 50, last + 1))))
    return tokens


async def _status(s: aiohttp.ClientSession, url: str, token: str) -> dict[str, Any]:
    async with s.get(url + "/api/v1/queue", headers={"Authorization": f"Bearer {token}"}) as r:
        body: dict[str, Any] = await r.json()
        return body


@pytest.mark.parametrize("rate", [0.05, 0.5])
async def test_slow_rate_eta_comes_from_the_configured_rate(spawn: Spawn, add_concert: Any,
                                                            rate: float) -> None:
    await add_concert()
    web = await spawn("web", WAIT_GRACE="600")
    async with aiohttp.ClientSession() as s:
        async with s.patch(web.url + "/admin/concerts/1/queue", headers=ADMIN,
                           json={"admit_rate": rate}) as r:
            assert r.status == 200
        tokens = await _fill(s, web.url, 40)
        await spawn("admitter", WAIT_GRACE="600")
        seen = []
        for _ in range(12):  # six seconds of polling a slow line
            body = await _status(s, web.url, tokens[30])
            seen.append((body["position"], body["eta_seconds"]))
            await asyncio.sleep(0.5)
    if rate >= 0.5:
        assert seen[-1][0] < seen[0][0]  # the line moved while we watched
    for position, eta in seen:
        true_wait = position / rate
        assert abs(eta - true_wait) <= 0.2 * true_wait, seen
    assert all(b[1] <= a[1] for a, b in itertools.pairwise(seen)), seen


async def test_fast_rate_eta_from_the_measured_rate_never_rises(spawn: Spawn, add_concert: Any) -> None:
    await add_concert()
    web = await spawn("web", WAIT_GRACE="600")
    async with aiohttp.ClientSession() as s:
        async with s.patch(web.url + "/admin/concerts/1/queue", headers=ADMIN,
                           json={"admit_rate": 50}) as r:
            assert r.status == 200
        tokens = await _fill(s, web.url, 700)
        async with s.ws_connect(f"{web.url}/ws/queue?token={tokens[-1]}") as ws:
            first = await ws.receive_json(timeout=10)
            assert first["type"] == "position" and first["position"] == 700
            await spawn("admitter", WAIT_GRACE="600")
            frames: list[tuple[float, int, int]] = []
            started = time.monotonic()
            while time.monotonic() - started < 9:
                frame = await ws.receive_json(timeout=10)
                if frame["type"] != "position":
                    break
                frames.append((time.monotonic(), frame["position"], frame["eta_seconds"]))
    assert len(frames) >= 5
    # About one frame a second although the tick here is 0.1 s.
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(frames)]
    assert min(gaps) >= 0.8, gaps
    positions = [p for _, p, _ in frames]
    etas = [e for _, _, e in frames]
    assert positions == sorted(positions, reverse=True) and positions[-1] < positions[0]
    assert etas == sorted(etas, reverse=True), frames
    # Once measured (after a few seconds at 50/s), within 20 % of the true wait.
    for _, position, eta in frames[3:]:
        assert abs(eta - position / 50) <= 0.2 * position / 50 + 1, frames


async def _admin_queue(s: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with s.get(url + "/admin/concerts/1/queue", headers=ADMIN) as r:
        body: dict[str, Any] = await r.json()
        return body


def _width(body: dict[str, Any]) -> float:
    """How wide the ETA's range is, relative to the ETA (low <= eta <= high checked on the way)."""
    low, high = body["eta_range"]
    assert low <= body["eta_seconds"] <= high, body
    return float((high - low) / body["eta_seconds"])


@pytest.mark.timeout(120)  # about 30 s; more on a busy machine
async def test_eta_error_is_measured_and_the_range_widens_after_a_rate_change_then_narrows(
        spawn: Spawn, add_concert: Any) -> None:
    await add_concert()
    web = await spawn("web", WAIT_GRACE="600")
    async with aiohttp.ClientSession() as s:
        async with s.patch(web.url + "/admin/concerts/1/queue", headers=ADMIN,
                           json={"admit_rate": 40}) as r:
            assert r.status == 200
        assert (await _admin_queue(s, web.url))["eta_error"] == {"median": None, "p90": None,
                                                                 "samples": 0}
        async with s.post(web.url + "/api/v1/concerts/1/queue", json={"user_id": 1}) as r:
            joined = await r.json()
        assert joined["eta_range"][0] <= joined["eta_seconds"] <= joined["eta_range"][1]
        await _fill_from(s, web.url, 2, 599)
        (last,) = await _fill_from(s, web.url, 600, 600)
        async with s.ws_connect(f"{web.url}/ws/queue?token={last}") as ws:
            frame = await ws.receive_json(timeout=10)
        assert frame["type"] == "position" and frame["position"] == 600
        assert frame["eta_range"][0] <= frame["eta_seconds"] <= frame["eta_range"][1], frame
        await spawn("admitter", WAIT_GRACE="600")

        # A steady 40/s: the range narrows as the measurement settles...
        async def narrow() -> bool:
            return _width(await _status(s, web.url, last)) <= 0.15
        await eventually(narrow, timeout=25, interval=0.2)
        # ...and the ETAs given at joining were right: scored once admitted after 5 s or more.
        async def scored() -> bool:
            return int((await _admin_queue(s, web.url))["eta_error"]["samples"]) >= 50
        await eventually(scored, timeout=15, interval=0.2)
        error = (await _admin_queue(s, web.url))["eta_error"]
        assert error["median"] <= 0.1 and error["median"] <= error["p90"], error
        async with s.get(web.url + "/metrics") as r:
            text = await r.text()
        quantile = re.search(r'waitingroom_eta_error_ratio\{concert_id="1",quantile="0.5"\} (\S+)',
                             text)
        assert quantile and float(quantile[1]) <= 0.1, text[-2000:]

        # The rate halves: what was measured says nothing of the new one, so the range widens,
        # then narrows again as the new rate is measured.
        async with s.patch(web.url + "/admin/concerts/1/queue", headers=ADMIN,
                           json={"admit_rate": 20}) as r:
            assert r.status == 200
        assert _width(await _status(s, web.url, last)) >= 0.4

        async def narrow_again() -> bool:
            body = await _status(s, web.url, last)
            return body["state"] == "WAITING" and _width(body) <= 0.15
        await eventually(narrow_again, timeout=25, interval=0.2)
