"""ETAs people can trust: from the configured rate until enough is measured, then from a window
long enough to be steady; never rising while the line moves at a steady rate; frames at most
about once a second whatever the tick."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import aiohttp
import pytest

from tests.conftest import Spawn

ADMIN = {"Authorization": "Bearer k"}


async def _fill(s: aiohttp.ClientSession, url: str, count: int) -> list[str]:
    async def one(user: int) -> str:
        async with s.post(url + "/api/v1/concerts/1/queue", json={"user_id": user}) as r:
            return str((await r.json())["token"])

    return [await one(u) for u in range(1, count + 1)]


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
