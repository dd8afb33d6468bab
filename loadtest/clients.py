"""A pool of WebSocket client processes (loadtest.wsclient), driven over their stdin/stdout."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

PER_PROCESS = 5000


class ClientPool:
    def __init__(self, url: str, total: int, *, gateway: bool, concert_id: int = 0,
                 first_user: int = 1, ip_base: int = 10, max_seconds: float = 900) -> None:
        self.cfgs: list[dict[str, Any]] = []
        n = -(-total // PER_PROCESS)
        for i in range(n):
            count = total // n + (1 if i < total % n else 0)
            self.cfgs.append({"url": url, "gateway": gateway, "concert_id": concert_id,
                              "first_user": first_user, "count": count,
                              # A source address per process: ports never run out across phases.
                              "local_ip": f"127.0.0.{ip_base + i}", "concurrency": 100,
                              "max_seconds": max_seconds})
            first_user += count
        self.procs: list[asyncio.subprocess.Process] = []

    async def _line(self, proc: asyncio.subprocess.Process, timeout: float) -> dict[str, Any]:
        assert proc.stdout is not None
        while True:
            raw = await asyncio.wait_for(proc.stdout.readline(), timeout)
            if not raw:
                raise RuntimeError(f"client process {proc.pid} exited early")
            line = raw.decode().strip()
            if line.startswith("{"):
                return json.loads(line)  # type: ignore[no-any-return]

    async def start(self, timeout: float = 180) -> dict[str, Any]:
        """Open every socket; returns how many opened, failed, and how long it took."""
        for cfg in self.cfgs:
            self.procs.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "loadtest.wsclient", json.dumps(cfg),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                limit=1 << 26))
        ready = await asyncio.gather(*(self._line(p, timeout) for p in self.procs))
        errors: dict[str, int] = {}
        for r in ready:
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
        return {"connected": sum(r["connected"] for r in ready),
                "failed": sum(r["failed"] for r in ready), "errors": errors,
                "seconds": max(r["seconds"] for r in ready)}

    async def _ask(self, cmd: str, timeout: float) -> list[dict[str, Any]]:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(cmd.encode() + b"\n")
            await p.stdin.drain()
        return list(await asyncio.gather(*(self._line(p, timeout) for p in self.procs)))

    async def stats(self) -> dict[str, Any]:
        out = await self._ask("stats", 30)
        frames: dict[str, int] = {}
        for r in out:
            for k, v in r["frames"].items():
                frames[k] = frames.get(k, 0) + v
        return {"frames": frames, "open": sum(r["open"] for r in out)}

    async def stop(self) -> dict[str, Any]:
        """Close every socket; returns frame counts, close codes and admitted-frame arrivals."""
        out = await self._ask("stop", 120)
        admitted: dict[str, float] = {}
        frames: dict[str, int] = {}
        closes: dict[str, int] = {}
        for r in out:
            admitted.update(r["admitted"])
            for src, dst in ((r["frames"], frames), (r["closes"], closes)):
                for k, v in src.items():
                    dst[k] = dst.get(k, 0) + v
        for p in self.procs:
            try:
                await asyncio.wait_for(p.wait(), 20)
            except TimeoutError:
                p.kill()
                await p.wait()
        self.procs.clear()
        return {"admitted": admitted, "frames": frames, "closes": closes}

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def kill(self) -> None:
        for p in self.procs:
            if p.returncode is None:
                p.kill()
