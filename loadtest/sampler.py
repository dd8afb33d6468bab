"""Time series for the chart: queue length, admissions and open sockets, sampled twice a second."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

_METRIC = re.compile(rb"^(waitingroom_\w+) ([0-9.eE+-]+)$", re.M)


@dataclasses.dataclass(slots=True)
class Sample:
    t: float
    waiting: int
    admitted_total: int
    sockets: int  # the gateway's web processes, as /metrics reports them
    bare_sockets: int


def parse_metrics(body: bytes) -> dict[str, float]:
    return {m[1].decode(): float(m[2]) for m in _METRIC.finditer(body)}


class Sampler:
    def __init__(self, session: aiohttp.ClientSession, url: str, admin_token: str | None,
                 concert_ids: list[int], bare_url: str) -> None:
        self.session = session
        self.url = url
        self.headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
        self.concert_ids = concert_ids
        self.bare_url = bare_url
        self.samples: list[Sample] = []
        self.phases: list[tuple[str, float, float]] = []
        self.started = time.monotonic()

    def mark(self, name: str, start: float, end: float) -> None:
        self.phases.append((name, start - self.started, end - self.started))

    async def _json(self, url: str, headers: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=2),
                                        headers=headers) as r:
                if r.status != 200:
                    return None
                body: dict[str, Any] = await r.json()
                return body
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def one(self) -> Sample:
        waiting = admitted = sockets = bare = 0
        if self.headers:
            for cid in self.concert_ids:
                q = await self._json(f"{self.url}/admin/concerts/{cid}/queue", headers=self.headers)
                if q:
                    waiting += int(q["waiting"])
                    admitted += int(q["admitted_total"])
        try:
            async with self.session.get(f"{self.url}/metrics",
                                        timeout=aiohttp.ClientTimeout(total=2)) as r:
                sockets = int(parse_metrics(await r.read()).get("waitingroom_sockets", 0))
        except (aiohttp.ClientError, TimeoutError):
            pass
        st = await self._json(f"{self.bare_url}/stats")
        if st:
            bare = int(st["sockets"])
        return Sample(time.monotonic() - self.started, waiting, admitted, sockets, bare)

    async def run(self, interval: float = 0.5, max_seconds: float = 1800) -> None:
        deadline = time.monotonic() + max_seconds
        while time.monotonic() < deadline:
            self.samples.append(await self.one())
            await asyncio.sleep(interval)
