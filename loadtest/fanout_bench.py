"""Adaptive updates at scale: the position fan-out of one web process holding many waiting
sockets, adaptive (the default) against every waiter every second (ADAPTIVE_UPDATES=false),
beside the same-run ceiling of a bare aiohttp process sending every socket a frame every second;
and how soon admitted frames arrive in both.

    python -m loadtest.fanout_bench [--sockets 19000] [--seconds 20] [--admit-rate 20]

Starts its own stack on throwaway Redis and PostgreSQL servers; writes
loadtest/reports/<timestamp>-fanout.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from redis.asyncio import Redis

from waitingroom.servers import free_port

from .bench import follow_admissions
from .clients import ClientPool
from .procstat import cpu_seconds, raise_nofile
from .sampler import parse_metrics
from .stack import Stack, managed, start_bare

REPORTS = Path(__file__).parent / "reports"
# Sockets at the front of the line held by the bench itself, to time their admitted frames.
FRONT = 200


async def _drop(pool: ClientPool) -> None:
    """Kill the client processes: closing thousands of sockets politely is not what is measured."""
    pool.kill()
    for proc in pool.procs:
        await proc.wait()


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def bare_phase(url: str, pid: int, sockets: int, seconds: float) -> dict[str, float]:
    pool = ClientPool(url, sockets, gateway=False, ip_base=10)
    async with aiohttp.ClientSession() as s:
        async def stats() -> dict[str, Any]:
            async with s.get(url + "/stats") as r:
                return await r.json()  # type: ignore[no-any-return]
        try:
            ready = await pool.start(timeout=900)
            await asyncio.sleep(2)
            s0, c0, t0 = await stats(), cpu_seconds(pid), time.monotonic()
            await asyncio.sleep(seconds)
            s1, c1, t1 = await stats(), cpu_seconds(pid), time.monotonic()
        finally:
            await _drop(pool)
    ticks = max(1, s1["ticks"] - s0["ticks"])
    return {"sockets": ready["connected"], "fps": (s1["frames_sent"] - s0["frames_sent"]) / (t1 - t0),
            "cpu": (c1 - c0) / (t1 - t0), "cpu_tick": (c1 - c0) / ticks,
            "tick": (s1["busy_seconds"] - s0["busy_seconds"]) / ticks}


async def gateway_phase(stack: Stack, cid: int, first_user: int, sockets: int, seconds: float,
                        rate: float) -> dict[str, float]:
    pid = stack.webs[0].pid
    headers = {"Authorization": f"Bearer {stack.admin_token}"}
    published: dict[str, float] = {}
    redis = Redis.from_url(stack.redis_url)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        async def configure(**body: Any) -> None:
            async with s.patch(f"{stack.url}/admin/concerts/{cid}/queue", json=body,
                               headers=headers) as r:
                assert r.status == 200, await r.text()

        async def metrics() -> dict[str, float]:
            async with s.get(f"{stack.url}/metrics") as r:
                return parse_metrics(await r.read())

        await configure(admit_rate=0, max_active=10_000_000, paused=False)
        # The front of the line: this process's own sockets, timing their admitted frames.
        arrived: dict[str, float] = {}
        front = []
        for i in range(FRONT):
            async with s.post(f"{stack.url}/api/v1/concerts/{cid}/queue",
                              json={"user_id": first_user + sockets + i}) as r:
                front.append(str((await r.json())["token"]))

        async def watch(token: str) -> None:
            async with s.ws_connect(f"{stack.url}/ws/queue?token={token}") as ws:
                async for msg in ws:
                    if msg.data.startswith('{"type":"admitted"'):
                        arrived[token] = time.time()
                        return

        watchers = [asyncio.create_task(watch(t)) for t in front]
        pool = ClientPool(stack.url, sockets, gateway=True, concert_id=cid, first_user=first_user,
                          ip_base=30)
        listener = asyncio.create_task(follow_admissions(redis, cid, published))
        try:
            ready = await pool.start(timeout=900)
            await configure(admit_rate=rate)
            await asyncio.sleep(5)  # past the first frames every socket gets when the line moves
            m0, c0, t0 = await metrics(), cpu_seconds(pid), time.monotonic()
            await asyncio.sleep(seconds)
            m1, c1, t1 = await metrics(), cpu_seconds(pid), time.monotonic()
            await configure(admit_rate=0)
            await asyncio.sleep(2)
        finally:
            await _drop(pool)
            for task in [listener, *watchers]:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await redis.aclose()
    ticks = max(1.0, m1["waitingroom_position_tick_duration_seconds_count"]
                - m0["waitingroom_position_tick_duration_seconds_count"])
    tick_wall = (m1["waitingroom_position_tick_duration_seconds_sum"]
                 - m0["waitingroom_position_tick_duration_seconds_sum"]) / ticks
    delays = [(arrived[t] - published[t]) * 1000 for t in front if t in arrived and t in published]
    return {"sockets": ready["connected"],
            "fps": (m1["waitingroom_frames_sent"] - m0["waitingroom_frames_sent"]) / (t1 - t0),
            "cpu": (c1 - c0) / (t1 - t0), "cpu_tick": (c1 - c0) / ticks, "tick": tick_wall,
            "admitted": len(delays), "published": sum(1 for t in front if t in published),
            "p50": _pct(delays, 0.5), "p99": _pct(delays, 0.99),
            "max": max(delays) if delays else float("nan")}


def report(args: argparse.Namespace, bare: dict[str, float], adaptive: dict[str, float],
           every: dict[str, float]) -> str:
    def row(name: str, key: str, scale: float, unit: str, digits: int = 0) -> str:
        a, e, b = (x[key] * scale for x in (adaptive, every, bare))
        return (f"| {name} | {a:,.{digits}f}{unit} | {e:,.{digits}f}{unit} | {b:,.{digits}f}{unit} "
                f"| {a / b:.2f}× | {e / b:.2f}× |")

    saved = 1 - adaptive["fps"] / every["fps"] if every["fps"] else float("nan")
    lines = [
        f"# Adaptive position updates, {time.strftime('%Y-%m-%d %H:%M:%S')}", "",
        f"One web process holding {args.sockets:,} waiting sockets of one concert (positions "
        f"1 to {args.sockets:,}), the line moving at {args.admit_rate:g} admissions/s, "
        f"{args.seconds:g} s measured per phase (after 5 s of warm-up), tick 1 s. Ceiling: a bare "
        "aiohttp + uvloop process sending every socket one frame a second (loadtest/bare.py), "
        "measured in the same run with the same clients. CPU is the web process's own (user + "
        "system).", "",
        "| figure | adaptive | every second | bare send loop | adaptive ÷ bare | every second ÷ bare |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        row("sockets held", "sockets", 1, ""),
        row("frames/s sent", "fps", 1, ""),
        row("CPU per tick", "cpu_tick", 1000, " ms", 1),
        row("CPU, share of one core", "cpu", 100, " %", 1),
        row("tick wall time", "tick", 1000, " ms", 1),
        "",
        f"Fan-out work saved by adaptive updates: **{saved:.0%} fewer frames** "
        f"({adaptive['fps']:,.0f}/s against {every['fps']:,.0f}/s), "
        f"CPU per tick {adaptive['cpu_tick'] * 1000:,.1f} ms against "
        f"{every['cpu_tick'] * 1000:,.1f} ms.", "",
        f"Admitted frames of the first {FRONT} in line (sockets held by the bench process, "
        "admitted over the first seconds the line moves, while every socket gets its first "
        "moving frames): admitted event published by the admitter → frame at the client.", "",
        "| | adaptive | every second |", "| --- | ---: | ---: |",
        f"| frames timed / front tokens admitted | {adaptive['admitted']:.0f} / "
        f"{adaptive['published']:.0f} | "
        f"{every['admitted']:.0f} / {every['published']:.0f} |",
        f"| p50 | {adaptive['p50']:,.1f} ms | {every['p50']:,.1f} ms |",
        f"| p99 | {adaptive['p99']:,.1f} ms | {every['p99']:,.1f} ms |",
        f"| max | {adaptive['max']:,.1f} ms | {every['max']:,.1f} ms |", "",
        "Re-run: `python -m loadtest.fanout_bench " + " ".join(sys.argv[1:]) + "`", "",
    ]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> str:
    bare_port = free_port()
    bare_proc = start_bare(bare_port)
    try:
        print("[fanout] bare send loop …", file=sys.stderr, flush=True)
        bare = await bare_phase(f"http://127.0.0.1:{bare_port}", bare_proc.pid, args.sockets,
                                args.seconds)
    finally:
        bare_proc.stop()
    base = int(time.time()) % 100_000 * 10**10
    with managed(None, None) as stack:
        print("[fanout] gateway, adaptive …", file=sys.stderr, flush=True)
        adaptive = await gateway_phase(stack, 1, base + 10**9, args.sockets, args.seconds,
                                       args.admit_rate)
        stack.remove_web(stack.webs[0])
        stack.env["ADAPTIVE_UPDATES"] = "false"
        stack.add_web()
        print("[fanout] gateway, every second …", file=sys.stderr, flush=True)
        every = await gateway_phase(stack, 2, base + 2 * 10**9, args.sockets, args.seconds,
                                    args.admit_rate)
    return report(args, bare, adaptive, every)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.fanout_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sockets", type=int, default=19_000)
    p.add_argument("--seconds", type=float, default=20.0, help="measured per phase")
    p.add_argument("--admit-rate", type=float, default=20.0)
    args = p.parse_args(argv)
    raise_nofile()
    text = uvloop.run(run(args))
    REPORTS.mkdir(exist_ok=True)
    path = REPORTS / f"{time.strftime('%Y%m%d-%H%M%S')}-fanout.md"
    path.write_text(text)
    print(text)
    print(f"report: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
