"""The joins section alone, in about a minute: joins/s of one `waitingroom web` process under wrk
beside the bare aiohttp handler (loadtest.bare), measured in turn in the same run, as a ratio.

    python -m loadtest.join_bench [--rounds 2] [--seconds 8] [--connections 50] [--profile]

Starts its own throwaway Redis and PostgreSQL, one web process (RATE_LIMIT_JOINS=0, unsigned
joins allowed, as in loadtest.bench) and the bare process; rounds alternate bare and gateway so
that both see the same machine. With --profile, py-spy records the web process under load and
writes the collapsed stacks to loadtest/reports/<timestamp>-joins.collapsed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from waitingroom.servers import free_port

from . import profile, wrk
from .stack import managed, start_bare

REPORTS = Path(__file__).parent / "reports"


async def _bench(args: argparse.Namespace, url: str, bare_url: str, web_pid: int) -> int:
    base = int(time.time()) % 100_000 * 10**10
    phase = 0

    async def hit(target: str, seconds: float) -> wrk.HttpResult:
        nonlocal phase
        phase += 1
        return await wrk.run(target, 1, base_user=base + phase * 10**9, seconds=seconds,
                             connections=args.connections)

    await hit(bare_url, 2)
    await hit(url, 2)
    ratios = []
    for i in range(args.rounds):
        bare = await hit(bare_url, args.seconds)
        gw = await hit(url, args.seconds)
        r = gw.rps / bare.rps
        ratios.append(r)
        print(f"round {i + 1}: gateway {gw.rps:,.0f}/s (p50 {gw.p50_ms:.1f} ms, p99 "
              f"{gw.p99_ms:.1f} ms, errors {gw.errors}), bare {bare.rps:,.0f}/s "
              f"(p99 {bare.p99_ms:.1f} ms): {r:.2f}×", flush=True)
    print(f"joins/s ÷ bare handler: median {statistics.median(ratios):.2f}× "
          f"(target ≥ 0.50×), rounds {', '.join(f'{r:.2f}' for r in ratios)}")
    if args.profile:
        out = REPORTS / f"{time.strftime('%Y%m%d-%H%M%S')}-joins.collapsed"
        task = asyncio.create_task(hit(url, args.seconds + 2))
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
                                      stack.webs[0].pid))
    finally:
        bare.stop()


if __name__ == "__main__":
    sys.exit(main())
