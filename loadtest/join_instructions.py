"""Joins counted in machine instructions: a figure that a busy machine does not move.

    python -m loadtest.join_instructions [--joins 2000] [--concurrency 50]

Runs one `waitingroom web` process and then the bare handler (loadtest.bare) under valgrind's
callgrind, sends each the same joins over loopback (a warm-up first, not counted) and reads the
instructions each process ran for them. On a shared machine requests per second and CPU time
swing by a fifth from one minute to the next (loadtest/README.md); instruction counts repeat to
within a percent, so they tell whether a change to the join path made it cheaper. They leave out
what the kernel does for a process (its reads and writes) and Redis's own work: that is given
apart, as Redis's time per join script (INFO commandstats) over joins sent straight to it in
pipelines, with nothing else running (time, so a busy machine moves it; loadtest.join_bench
gives Redis's CPU per join under load). Needs valgrind (`apt-get install -y valgrind`); takes
about two minutes. Starts its own throwaway Redis and PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from redis.asyncio import Redis

from waitingroom.queue import concert_keys, new_token
from waitingroom.scripts import Scripts
from waitingroom.servers import services

from .report import REPORTS
from .stack import Proc, Stack, wait_http

WARM = 300  # joins before counting: imports, first plans, caches
CONCERT = 1  # seeded by Stack.prepare
SCRIPT_CONCERT = 2  # the straight-to-Redis joins: a queue of their own
SCRIPT_JOINS, SCRIPT_PIPELINE, SCRIPT_TURNS = 20_000, 200, 3


@dataclasses.dataclass(slots=True)
class Count:
    instructions: float  # per join
    joins: int


async def _joins(url: str, n: int, first_user: int, concurrency: int) -> None:
    async with aiohttp.ClientSession() as s:
        gate = asyncio.Semaphore(concurrency)

        async def one(user: int) -> None:
            async with gate, s.post(f"{url}/api/v1/concerts/{CONCERT}/queue",
                                    json={"user_id": user}) as r:
                await r.read()
                if r.status not in (200, 201):
                    raise RuntimeError(f"join answered {r.status}")

        await asyncio.gather(*(one(first_user + i) for i in range(n)))


def _total(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dump}")


@contextlib.contextmanager
def _under_callgrind(name: str, argv: list[str], env: dict[str, str], ready: str,
                     out: Path) -> Iterator[Proc]:
    proc = Proc(name, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/{name}.%p",
                       "--dump-instr=no", "--collect-jumps=no", *argv], env)
    try:
        wait_http(ready, proc, timeout=600)  # Python starts some 50 times slower under valgrind
        yield proc
    finally:
        proc.stop(timeout=60)


def _count(name: str, proc: Proc, url: str, joins: int, concurrency: int, out: Path) -> Count:
    base = int(time.time()) % 100_000 * 10**7
    asyncio.run(_joins(url, WARM, base, concurrency))
    subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
    asyncio.run(_joins(url, joins, base + WARM, concurrency))
    subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
    dumps = sorted(out.glob(f"{name}.{proc.pid}.*"), key=lambda p: p.stat().st_mtime)
    return Count(_total(dumps[-1]) / joins, joins)


async def _script_usec(redis_url: str) -> list[float]:
    """Redis's microseconds per join script, each turn over SCRIPT_JOINS new users."""
    redis = Redis.from_url(redis_url)
    try:
        join = Scripts.register(redis).join
        await join(keys=concert_keys(SCRIPT_CONCERT), args=[0, new_token(SCRIPT_CONCERT)])
        turns = []
        for turn in range(SCRIPT_TURNS):
            await redis.config_resetstat()
            for first in range(0, SCRIPT_JOINS, SCRIPT_PIPELINE):
                pipe = redis.pipeline(transaction=False)
                for user in range(first, first + SCRIPT_PIPELINE):
                    pipe.evalsha(join.sha, 1, *concert_keys(SCRIPT_CONCERT),
                                 (turn + 1) * 10**7 + user, new_token(SCRIPT_CONCERT))
                await pipe.execute()
            stats = (await redis.info("commandstats"))["cmdstat_evalsha"]
            turns.append(float(stats["usec_per_call"]))
        return turns
    finally:
        await redis.aclose()


def run(joins: int, concurrency: int) -> str:
    with services("", "") as (redis_url, pg_url), tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        stack = Stack(redis_url, pg_url)
        stack.prepare()
        py = sys.executable
        with _under_callgrind("web", [py, "-m", "waitingroom", "web", "--host", "127.0.0.1",
                                      "--port", str(stack.port)], stack.env,
                              f"{stack.url}/readyz", out) as web:
            ours = _count("web", web, stack.url, joins, concurrency, out)
        with _under_callgrind("bare", [py, "-m", "loadtest.bare", "--port", str(stack.port)],
                              stack.env, f"{stack.url}/stats", out) as bare_proc:
            bare = _count("bare", bare_proc, stack.url, joins, concurrency, out)
        script = asyncio.run(_script_usec(redis_url))
    return "\n".join([
        f"# Joins in instructions ({time.strftime('%Y-%m-%d %H:%M')})", "",
        f"`python -m loadtest.join_instructions --joins {joins} --concurrency {concurrency}`: "
        f"{joins} joins counted after {WARM} not counted, {concurrency} at a time, each process "
        "under callgrind.", "",
        "| process | instructions per join | bare ÷ ours |",
        "| --- | ---: | ---: |",
        f"| `waitingroom web` | {ours.instructions:,.0f} | {bare.instructions / ours.instructions:.2f}× |",
        f"| bare handler (loadtest.bare) | {bare.instructions:,.0f} | 1.00× |", "",
        f"Redis, per join script: {sorted(script)[len(script) // 2]:.1f} µs (median of "
        f"{', '.join(f'{u:.1f}' for u in script)}; {SCRIPT_TURNS} × {SCRIPT_JOINS:,} new users "
        f"joining straight through pipelines of {SCRIPT_PIPELINE}, INFO commandstats).", ""])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.join_instructions", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--joins", type=int, default=2000, help="joins counted (default 2000)")
    p.add_argument("--concurrency", type=int, default=50, help="joins in flight (default 50)")
    args = p.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("needs valgrind: `apt-get install -y valgrind`", file=sys.stderr)
        return 2
    text = run(args.joins, args.concurrency)
    REPORTS.mkdir(exist_ok=True)
    path = REPORTS / f"{time.strftime('%Y%m%d-%H%M%S')}-join-instructions.md"
    path.write_text(text)
    print(text)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
