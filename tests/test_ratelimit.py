"""Rate limits: shared by every web process, per client address (behind trusted proxies only)
and per token; a refused call gets 429 with Retry-After and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_network
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from tests.conftest import TEST_SECRET
from waitingroom.identity import sign
from waitingroom.ratelimit import client_address

TRUSTED = [ip_network("10.0.0.0/8"), ip_network("127.0.0.1/32")]


@pytest.mark.parametrize("peer, forwarded, client", [
    ("203.0.113.9", None, "203.0.113.9"),
    ("203.0.113.9", "1.2.3.4", "203.0.113.9"),          # an untrusted peer's header is ignored
    ("10.1.1.1", "1.2.3.4", "1.2.3.4"),
    ("10.1.1.1", "6.6.6.6, 1.2.3.4, 10.2.2.2", "1.2.3.4"),  # the last hop not a proxy of ours
    ("10.1.1.1", "10.2.2.2, 10.3.3.3", "10.2.2.2"),      # only proxies: the first of them
    ("10.1.1.1", "junk, 1.2.3.4", "1.2.3.4"),
    ("10.1.1.1", "1.2.3.4, junk", "10.1.1.1"),           # an unreadable hop stops the walk
])
def test_client_address(peer: str, forwarded: str | None, client: str) -> None:
    assert client_address(peer, forwarded, TRUSTED) == client


async def _join(s: aiohttp.ClientSession, url: str, user: int,
                forwarded: str | None = None) -> tuple[int, dict[str, str]]:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    async with s.post(url + "/api/v1/concerts/1/queue", headers=headers,
                      json={"identity": sign(TEST_SECRET, user, 60)}) as r:
        if r.status == 429:
            assert r.content_type == "application/problem+json"
            assert (await r.json())["code"] == "rate_limited"
        return r.status, dict(r.headers)


async def test_join_limit_is_shared_by_two_processes(spawn: Callable[..., Any], add_concert: Any,
                                                     redis: Redis) -> None:
    await add_concert()
    env = {"RATE_LIMIT_JOINS": "4", "ALLOW_UNSIGNED_JOINS": "false"}
    a, b = await spawn("web", **env), await spawn("web", **env)
    async with aiohttp.ClientSession() as s:
        answers = [await _join(s, (a, b)[i % 2].url, 100 + i) for i in range(6)]
        assert [status for status, _ in answers] == [201, 201, 201, 201, 429, 429]
        retry = int(answers[4][1]["Retry-After"])
        assert 1 <= retry <= 15
    # Only the four allowed joins wrote anything.
    assert await redis.zcard("wr:{c:1}:q") == 4


async def test_forwarded_for_counts_only_behind_trusted_proxies(spawn: Callable[..., Any],
                                                                add_concert: Any) -> None:
    await add_concert()
    trusting = await spawn("web", RATE_LIMIT_JOINS="2", TRUSTED_PROXIES="127.0.0.1/32")
    plain = await spawn("web", RATE_LIMIT_JOINS="2")
    async with aiohttp.ClientSession() as s:
        behind = [(await _join(s, trusting.url, 200 + i, "198.51.100.7"))[0] for i in range(3)]
        other = (await _join(s, trusting.url, 210, "198.51.100.8"))[0]
        assert behind == [201, 201, 429] and other == 201
        # A chain too long to be remembered is read all the same: the client is its last hop.
        chain = ", ".join(f"192.0.2.{i}" for i in range(40)) + ", 198.51.100.9"
        assert len(chain) > 256
        long = [(await _join(s, trusting.url, 220 + i, chain))[0] for i in range(2)]
        assert long == [201, 201]
        assert (await _join(s, trusting.url, 230, "198.51.100.9"))[0] == 429
        # Without trust the header is the client's own say-so: everyone here is 127.0.0.1.
        spoofed = [(await _join(s, plain.url, 300 + i, f"198.51.100.{i}"))[0] for i in range(3)]
        assert spoofed == [201, 201, 429]


async def test_bearer_calls_are_limited_per_token(spawn: Callable[..., Any], add_concert: Any) -> None:
    await add_concert()
    web = await spawn("web", RATE_LIMIT_CALLS="3")
    async with aiohttp.ClientSession() as s:
        tokens = []
        for user in (1, 2):
            async with s.post(web.url + "/api/v1/concerts/1/queue", json={"user_id": user}) as r:
                tokens.append((await r.json())["token"])
        polls = []
        for _ in range(4):
            async with s.get(web.url + "/api/v1/queue",
                             headers={"Authorization": f"Bearer {tokens[0]}"}) as r:
                polls.append(r.status)
        assert polls == [200, 200, 200, 429]
        async with s.get(web.url + "/api/v1/queue",
                         headers={"Authorization": f"Bearer {tokens[1]}"}) as r:
            assert r.status == 200  # another token has its own allowance


async def test_admin_calls_are_limited(spawn: Callable[..., Any], add_concert: Any) -> None:
    await add_concert()
    web = await spawn("web", RATE_LIMIT_ADMIN="2")
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer wrong"}) as s:
        statuses = []
        for _ in range(3):
            async with s.get(web.url + "/admin/concerts/1/queue") as r:
                statuses.append(r.status)
        assert statuses == [401, 401, 429]  # guessing the admin key is slow too
