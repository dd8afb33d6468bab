"""The joins section alone, in about a minute: joins/s of one `waitingroom web` process under wrk
beside the bare aiohttp handler (loadtest.bare), measured in turn in the same run, as a ratio.

    python -m loadtest.join_bench [--rounds 2] [--seconds 8] [--connections 50] [--profile]

Starts its own throwaway Redis and PostgreSQL, one web process (RATE_LIMIT_JOINS=0, unsigned
joins allowed, as in loadtest.bench) and the bare process; rounds alternate bare and gateway so
that both see the same machine. Each round also gives the CPU time each process spent per join
(user + system, from /proc), a ratio that a busy machine disturbs less than requests per
second do, and Redis's CPU time per join (INFO cpu). With --profile, py-spy records the web
process under load and writes the collapsed stacks to loadtest/reports/<timestamp>-joins.collapsed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from redis.asyncio import Redis

from waitingroom.servers import free_port

from . import profile, wrk
from .procstat import cpu_seconds
from .stack import managed, start_bare

REPORTS = Path(__file__).parent / "reports"


async def _bench(args: argparse.Namespace, url: str, bare_url: str, web_pid: int,
                 bare_pid: int, redis_url: str) -> int:
    redis = Redis.from_url(redis_url)
    try:
        return await _rounds(args, url, bare_url, web_pid, bare_pid, redis)
    finally:
        await redis.aclose()


async def _rounds(args: argparse.Namespace, url: str, bare_url: str, web_pid: int,
                  bare_pid: int, redis: Redis) -> int:
    base = int(time.time()) % 100_000 * 10**10
    phase = 0

    async def redis_cpu() -> float:
        info = await redis.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    async def hit(target: str, seconds: float, pid: int) -> tuple[wrk.HttpResult, float, float]:
        """wrk's figures, and the server's and Redis's CPU microseconds per request."""
        nonlocal phase
        phase += 1
        before, redis_before = cpu_seconds(pid), await redis_cpu()
        result = await wrk.run(target, 1, base_user=base + phase * 10**9, seconds=seconds,
                               connections=args.connections)
        n = max(1, result.requests)
        return (result, (cpu_seconds(pid) - before) * 1e6 / n,
                (await redis_cpu() - redis_before) * 1e6 / n)

    await hit(bare_url, 2, bare_pid)
    await hit(url, 2, web_pid)
    ratios, cpu_ratios = [], []
    for i in range(args.rounds):
        bare, bare_cpu, _ = await hit(bare_url, args.seconds, bare_pid)
        gw, gw_cpu, gw_redis = await hit(url, args.seconds, web_pid)
        r = gw.rps / bare.rps
        ratios.append(r)
        cpu_ratios.append(bare_cpu / gw_cpu)
        print(f"round {i + 1}: gateway {gw.rps:,.0f}/s (p50 {gw.p50_ms:.1f} ms, p99 "
              f"{gw.p99_ms:.1f} ms, errors {gw.errors}, CPU {gw_cpu:.0f} µs/join, Redis "
              f"{gw_redis:.0f} µs/join), bare "
              f"{bare.rps:,.0f}/s (p99 {bare.p99_ms:.1f} ms, CPU {bare_cpu:.0f} µs/join): "
              f"{r:.2f}×, CPU per join {cpu_ratios[-1]:.2f}×", flush=True)
    print(f"joins/s ÷ bare handler: median {statistics.median(ratios):.2f}× "
          f"(target ≥ 0.50×), rounds {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"bare CPU per join ÷ gateway's: median {statistics.median(cpu_ratios):.2f}×, "
          f"rounds {', '.join(f'{r:.2f}' for r in cpu_ratios)}")
    if args.profile:
        out = REPORTS / f"{time.strftime('%Y%m%d-%H%M%S')}-joins.collapsed"
        task = asyncio.create_task(hit(url, args.seconds + 2, web_pid))
        prof = await profile.record(web_pid, args.seconds, out)
        await task
        if prof.error:
            print(f"py-spy: {prof.error}")
        else:
            print(f"profile ({prof.samples} samples): {out}")
            for name, share in prof.incl_top:
                print(f"  {share:6.1%}  {name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.join_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2, help="bare/gateway pairs (default 2)")
    p.add_argument("--seconds", type=float, default=8, help="each measurement (default 8)")
    p.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    p.add_argument("--profile", action="store_true", help="py-spy the web process afterwards")
    args = p.parse_args(argv)
    if not wrk.available():
        print("needs wrk: `apt-get install -y wrk`", file=sys.stderr)
        return 2
    bare_port = free_port()
    bare = start_bare(bare_port)
    try:
        with managed(None, None) as stack:
            return asyncio.run(_bench(args, stack.url, f"http://127.0.0.1:{bare_port}",
                                      stack.webs[0].pid, bare.pid, stack.redis_url))
    finally:
        bare.stop()


if __name__ == "__main__":
    sys.exit(main())
