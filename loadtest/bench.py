"""The gateway's benchmark: joins, sockets, fan-out, admission and scale-out, then holds and
payments (loadtest.booking_bench) and booking at stadium scale (loadtest.stadium_bench), each
beside a ceiling measured in the same run, written to loadtest/reports/<timestamp>.md with a
chart.

    python -m loadtest.bench [--quick] [--url http://127.0.0.1:8080 --admin-token T ...]

Without --url it starts its own stack on throwaway Redis and PostgreSQL servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import uvloop
from redis.asyncio import Redis

from waitingroom.keys import ConcertKeys, channel
from waitingroom.servers import free_port

from . import profile, wrk
from .chart import draw
from .clients import ClientPool
from .procstat import cpu_seconds, machine_jiffies, raise_nofile, rss_bytes
from .report import Report, fmt, ratio, verdict
from .sampler import Sampler, parse_metrics
from .stack import Proc, Stack, managed, start_bare

REPORTS = Path(__file__).parent / "reports"
SOCKET_TARGET = 19_000
FD_HEADROOM = 800  # Redis and PostgreSQL pools, listeners, log files


async def follow_admissions(redis: Redis, cid: int, published: dict[str, float]) -> None:
    """Timestamp every admitted event as this process receives it from Redis."""
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel(cid))
    try:
        async for msg in pubsub.listen():
            now = time.time()
            event = json.loads(msg["data"])
            if event[0] == "a":
                for token in event[1]:
                    published.setdefault(token, now)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


@dataclasses.dataclass
class Plan:
    """How long each phase runs: the default run, or a smoke run with --quick."""

    warm: float
    joins: float
    window: float
    admission: float
    sockets: int
    connections: int
    admit_rate: float
    profile_seconds: float

    @classmethod
    def make(cls, args: argparse.Namespace, fd_limit: int) -> Plan:
        most = min(SOCKET_TARGET, fd_limit - FD_HEADROOM)
        if args.quick:
            plan = cls(1, 3, 5, 15, min(5000, most), args.connections, args.admit_rate or 100, 2)
        else:
            plan = cls(2, 10, 10, 60, most, args.connections, args.admit_rate or 100, 4)
        if args.sockets:
            plan.sockets = min(args.sockets, most)
        return plan


class Bench:
    def __init__(self, args: argparse.Namespace, plan: Plan, url: str, admin_token: str | None,
                 redis_url: str | None, web_pid: int | None, stack: Stack | None,
                 bare: Proc, bare_port: int) -> None:
        self.args, self.plan, self.url, self.admin_token = args, plan, url, admin_token
        self.redis_url, self.web_pid, self.stack = redis_url, web_pid, stack
        self.bare, self.bare_port = bare, bare_port
        self.bare_url = f"http://127.0.0.1:{bare_port}"
        self.stamp = time.strftime("%Y%m%d-%H%M%S")
        mode = ("Managed stack: throwaway Redis and PostgreSQL, `waitingroom web --reuse-port` and "
                "`waitingroom admitter` subprocesses" if stack else f"Running deployment at {url}")
        self.report = Report(f"Waiting-room benchmark {self.stamp}" + (" (quick)" if args.quick
                                                                        else ""), mode)
        self.run_id = int(time.time()) % 100_000
        self.join_concert, self.socket_concert = args.concerts
        self.joins_one: wrk.HttpResult | None = None
        self.bare_one: wrk.HttpResult | None = None
        self.missed: set[str] = set()

    def users(self, phase: int) -> int:
        """A base user id unique to this run and phase: every join is a new user."""
        return self.run_id * 10**10 + phase * 10**9

    # -- helpers ----------------------------------------------------------------------------
    async def metrics(self) -> dict[str, float]:
        async with self.session.get(f"{self.url}/metrics") as r:
            return parse_metrics(await r.read())

    async def bare_stats(self) -> dict[str, Any]:
        async with self.session.get(f"{self.bare_url}/stats") as r:
            return await r.json()  # type: ignore[no-any-return]

    async def configure(self, concert_id: int, **body: Any) -> None:
        if not self.admin_token:
            raise RuntimeError("the admin API is needed: pass --admin-token")
        async with self.session.patch(f"{self.url}/admin/concerts/{concert_id}/queue", json=body,
                                      headers={"Authorization": f"Bearer {self.admin_token}"}) as r:
            if r.status != 200:
                raise RuntimeError(f"PATCH queue answered {r.status}: {await r.text()}")

    async def profile(self, what: str, pid: int | None, seconds: float) -> None:
        if pid is None:
            return
        out = REPORTS / f"{self.stamp}-{what.split()[0].lower()}.collapsed"
        self.report.profiles.append((what, await profile.record(pid, seconds, out)))

    async def wrk(self, url: str, phase: int, seconds: float) -> wrk.HttpResult:
        return await wrk.run(url, self.join_concert, base_user=self.users(phase), seconds=seconds,
                             connections=self.plan.connections)

    def timed(self, name: str) -> contextlib.AbstractContextManager[None]:
        @contextlib.contextmanager
        def cm() -> Iterator[None]:
            start = time.monotonic()
            print(f"[bench] {name} …", file=sys.stderr, flush=True)
            try:
                yield
            finally:
                self.sampler.mark(name, start, time.monotonic())
        return cm()

    # -- phases -----------------------------------------------------------------------------
    async def joins(self) -> None:
        p = self.plan
        with self.timed("joins"):
            await self.wrk(self.bare_url, 1, p.warm)
            bare = self.bare_one = await self.wrk(self.bare_url, 1, p.joins)
            await self.wrk(self.url, 2, p.warm)
            redis_pid = redis_server_pid(self.redis_url)
            pids = [x for x in (self.web_pid, redis_pid) if x]
            c0, t0 = [cpu_seconds(x) for x in pids], time.monotonic()
            gw = self.joins_one = await self.wrk(self.url, 3, p.joins)
            busy = [(cpu_seconds(x) - c) / (time.monotonic() - t0) for x, c in zip(pids, c0, strict=True)]
        r = gw.rps / bare.rps
        ok = r >= 0.5 and gw.p99_ms < 50
        names = (["web"] if self.web_pid else []) + (["redis-server"] if redis_pid else [])
        self.report.facts["CPU during the gateway joins"] = ", ".join(
            f"{n} {b:.0%} of one core" for n, b in zip(names, busy, strict=True)) or "n/a"
        if not ok:
            self.missed.add("joins")
        c = f"{p.connections} conn"
        self.report.add("joins", f"joins/s at {c}", fmt(gw.rps), fmt(bare.rps), f"{r:.2f}×",
                        "≥ 0.50×", verdict(r >= 0.5))
        self.report.add("joins", "p50 latency", fmt(gw.p50_ms, " ms", 1), fmt(bare.p50_ms, " ms", 1),
                        ratio(gw.p50_ms, bare.p50_ms), "", "—")
        self.report.add("joins", "p99 latency", fmt(gw.p99_ms, " ms", 1), fmt(bare.p99_ms, " ms", 1),
                        ratio(gw.p99_ms, bare.p99_ms), "< 50 ms", verdict(gw.p99_ms < 50))
        self.report.add("joins", "errors (socket + 4xx/5xx)", str(gw.errors), str(bare.errors),
                        "", "0", verdict(gw.errors == 0))
        if (not ok or self.args.profile) and self.web_pid:
            task = asyncio.create_task(self.wrk(self.url, 4, p.profile_seconds + 1))
            await self.profile("joins (web process under wrk)", self.web_pid, p.profile_seconds)
            await task

    async def scale_out(self) -> None:
        if self.stack is None or self.joins_one is None or self.bare_one is None:
            self.report.add("scale-out", "2 web processes vs 1", "n/a", "n/a", "", "≥ 1.70×",
                            "— (needs the managed stack)")
            return
        p = self.plan
        with self.timed("scale-out"):
            bare2 = start_bare(self.bare_port, "bare2", reuse_port=True)
            try:
                await self.wrk(self.bare_url, 5, p.warm)
                bare_two = await self.wrk(self.bare_url, 5, p.joins)
            finally:
                bare2.stop()
            web2 = await asyncio.to_thread(self.stack.add_web)
            try:
                await self.wrk(self.url, 6, p.warm)
                gw_two = await self.wrk(self.url, 7, p.joins)
            finally:
                await asyncio.to_thread(self.stack.remove_web, web2)
        g = gw_two.rps / self.joins_one.rps
        b = bare_two.rps / self.bare_one.rps
        if g < 1.7:
            self.missed.add("scale-out")
        self.report.add("scale-out", "joins/s, 2 processes", fmt(gw_two.rps), fmt(bare_two.rps),
                        f"{gw_two.rps / bare_two.rps:.2f}×", "", "—")
        self.report.add("scale-out", "2 processes ÷ 1 process", f"{g:.2f}×", f"{b:.2f}×",
                        f"{g / b:.2f}×", "gateway ≥ 1.70×", verdict(g >= 1.7))
        self.report.add("scale-out", "p99 latency, 2 processes", fmt(gw_two.p99_ms, " ms", 1),
                        fmt(bare_two.p99_ms, " ms", 1), ratio(gw_two.p99_ms, bare_two.p99_ms), "",
                        "—")

    async def bare_sockets(self) -> dict[str, float]:
        p = self.plan
        pid = self.bare.pid
        with self.timed("bare sockets"):
            rss0 = rss_bytes(pid)
            pool = ClientPool(self.bare_url, p.sockets, gateway=False, ip_base=10)
            try:
                ready = await pool.start()
                await asyncio.sleep(2)
                rss1 = rss_bytes(pid)
                s0, c0, t0 = await self.bare_stats(), cpu_seconds(pid), time.monotonic()
                await asyncio.sleep(p.window)
                s1, c1, t1 = await self.bare_stats(), cpu_seconds(pid), time.monotonic()
            finally:
                await pool.stop()
        frames = s1["frames_sent"] - s0["frames_sent"]
        busy = s1["busy_seconds"] - s0["busy_seconds"]
        return {"held": s1["sockets"], "connected": ready["connected"],
                "rss_per": (rss1 - rss0) / max(1, s1["sockets"]), "rss": rss1,
                "cpu": (c1 - c0) / (t1 - t0), "fps": frames / (t1 - t0),
                "capacity": frames / busy if busy else 0.0,
                "tick": busy / max(1, s1["ticks"] - s0["ticks"])}

    async def gateway_sockets_and_admission(self, bare: dict[str, float]) -> None:
        p, cid = self.plan, self.socket_concert
        pid = self.web_pid
        await self.configure(cid, admit_rate=0, max_active=10_000_000, paused=False)
        pool = ClientPool(self.url, p.sockets, gateway=True, concert_id=cid,
                          first_user=self.users(8), ip_base=30)
        published: dict[str, float] = {}
        listener: asyncio.Task[None] | None = None
        redis = Redis.from_url(self.redis_url) if self.redis_url else None
        try:
            with self.timed("gateway sockets"):
                rss0 = rss_bytes(pid) if pid else None
                ready = await pool.start()
                await asyncio.sleep(3)
                rss1 = rss_bytes(pid) if pid else None
                m0, c0, t0 = await self.metrics(), cpu_seconds(pid) if pid else 0, time.monotonic()
                idle_ticks = []
                for _ in range(int(p.window)):
                    await asyncio.sleep(1)
                    idle_ticks.append((await self.metrics())["waitingroom_position_tick_seconds"])
                m1, c1, t1 = await self.metrics(), cpu_seconds(pid) if pid else 0, time.monotonic()
            held = int(m1["waitingroom_sockets"])
            idle_cpu = (c1 - c0) / (t1 - t0) if pid else None
            with self.timed("fan-out + admission"):
                if redis is not None:
                    listener = asyncio.create_task(follow_admissions(redis, cid, published))
                await self.configure(cid, admit_rate=p.admit_rate)
                await asyncio.sleep(max(3.0, p.warm + 1))
                st0 = await self._admit_state(redis, cid)
                cl0, mj0 = sum(map(cpu_seconds, pool.pids)), machine_jiffies()
                m0, c0, t0 = await self.metrics(), cpu_seconds(pid) if pid else 0, time.monotonic()
                ticks = []
                for _ in range(int(p.admission)):
                    await asyncio.sleep(1)
                    ticks.append((await self.metrics())["waitingroom_position_tick_seconds"])
                m1, c1, t1 = await self.metrics(), cpu_seconds(pid) if pid else 0, time.monotonic()
                st1 = await self._admit_state(redis, cid)
                cl1, mj1 = sum(map(cpu_seconds, pool.pids)), machine_jiffies()
                fps = (m1["waitingroom_frames_sent"] - m0["waitingroom_frames_sent"]) / (t1 - t0)
                tick = statistics.median(ticks)
                capacity = fps / tick if tick else 0.0  # frames per second of tick time
                if capacity < 0.7 * bare["capacity"]:
                    self.missed.add("fan-out")
                # Always: the evidence for fan-out and for late admitted frames.
                await self.profile("fan-out (web process, 19,000-socket tick, queue moving)"
                                   if p.sockets >= SOCKET_TARGET else
                                   "fan-out (web process, queue moving)", pid, p.profile_seconds)
                await self.configure(cid, admit_rate=0)
                await asyncio.sleep(2)
        finally:
            done = await pool.stop()
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            if redis is not None:
                await redis.aclose()

        rep = self.report
        rss_per = (rss1 - rss0) / max(1, held) if rss0 is not None and rss1 is not None else None
        rep.add("sockets", "waiting sockets held by one process", fmt(held), fmt(bare["held"]),
                ratio(held, bare["held"]), f"{p.sockets:,} (target {SOCKET_TARGET:,})",
                ("met" if p.sockets >= SOCKET_TARGET else f"— (ran {p.sockets:,})")
                if held >= p.sockets else "**missed**")
        rep.add("sockets", "RSS per socket (delta)", fmt(rss_per and rss_per / 1024, " KB", 1),
                fmt(bare["rss_per"] / 1024, " KB", 1), ratio(rss_per, bare["rss_per"]),
                "≤ 20 KB", verdict(rss_per <= 20 * 1024) if rss_per is not None else "—")
        rep.add("sockets", "position tick, queue still (wall)",
                fmt(statistics.median(idle_ticks) * 1000, " ms", 1), "", "", "", "—")
        rep.add("sockets", "position tick, queue moving (wall)", fmt(tick * 1000, " ms", 1),
                fmt(bare["tick"] * 1000, " ms", 1), ratio(tick, bare["tick"]), "", "—")
        rep.add("sockets", "position tick, queue moving, slowest (wall)",
                fmt(max(ticks) * 1000, " ms", 1), "", "", "", "—")
        rep.add("sockets", "web CPU, queue still", fmt(idle_cpu and idle_cpu * 100, " %", 1),
                "", "", "", "—")
        rep.add("sockets", "web CPU, queue moving", fmt(pid and (c1 - c0) / (t1 - t0) * 100, " %", 1),
                fmt(bare["cpu"] * 100, " %", 1), ratio(pid and (c1 - c0) / (t1 - t0), bare["cpu"]),
                "", "—")
        rep.add("fan-out", "frames/s delivered (waiting sockets only)", fmt(fps), fmt(bare["fps"]),
                ratio(fps, bare["fps"]),
                "", "—")
        rep.add("fan-out", "send capacity (frames per second of tick time)", fmt(capacity),
                fmt(bare["capacity"]), ratio(capacity, bare["capacity"]), "≥ 0.70×",
                verdict(capacity >= 0.7 * bare["capacity"]))
        rep.facts["sockets opened"] = (f"gateway {ready['connected']:,} of {p.sockets:,} "
                                       f"(failed {ready['failed']}, {ready['seconds']:.1f} s to open, "
                                       f"errors {ready['errors'] or 'none'}); bare "
                                       f"{bare['connected']:,.0f}")
        rep.facts["frames received by the clients"] = json.dumps(done["frames"])
        rep.facts["CPU during fan-out + admission"] = (
            f"machine {100 * (mj1[0] - mj0[0]) / max(1, mj1[1] - mj0[1]):.0f} % busy of "
            f"{os.cpu_count()} cores; WebSocket client processes {100 * (cl1 - cl0) / (t1 - t0):.0f} "
            "% of one core in all")
        self._admission(st0, st1, t1 - t0, published, done["admitted"])

    async def _admit_state(self, redis: Redis | None, cid: int) -> tuple[int, float] | None:
        """(admitted_total, Redis time of the admission tick that made it), read atomically."""
        if redis is None:
            return None
        total, last_ms = await redis.hmget(ConcertKeys(cid).state, "admitted_total", "last_ms")
        return int(total or 0), float(last_ms or 0) / 1000

    def _admission(self, st0: tuple[int, float] | None, st1: tuple[int, float] | None,
                   seconds: float, published: dict[str, float], seen: dict[str, float]) -> None:
        p, rep = self.plan, self.report
        if st0 and st1 and st1[1] > st0[1]:
            rate = (st1[0] - st0[0]) / (st1[1] - st0[1])
            err = rate / p.admit_rate - 1
            rep.add("admission", f"admitted/s over {st1[1] - st0[1]:.0f} s (Redis clock)",
                    fmt(rate, "", 2), fmt(p.admit_rate, "", 2), f"{rate / p.admit_rate:.4f}×",
                    "within ±1 %", verdict(abs(err) <= 0.01))
            if abs(err) > 0.01:
                self.missed.add("admission")
        else:
            rep.add("admission", "admitted/s", "n/a", fmt(p.admit_rate), "", "within ±1 %",
                    "— (needs --redis-url)")
        delays = sorted((seen[t] - published[t]) * 1000 for t in published if t in seen)
        (REPORTS / f"{self.stamp}-admitted.json").write_text(json.dumps(
            [[t, published[t], seen.get(t)] for t in published]))
        if delays:
            p50 = delays[len(delays) // 2]
            p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
            rep.add("admission", "admitted event → frame at client, p50", fmt(p50, " ms", 1), "",
                    "", "", "—")
            rep.add("admission", "admitted event → frame at client, p99", fmt(p99, " ms", 1), "",
                    "", "< 100 ms", verdict(p99 < 100))
            over = sum(1 for d in delays if d >= 100) / len(delays)
            # Tokens of one event arrive late together when the web process's loop stalled.
            events: dict[float, list[float]] = {}
            for t in published:
                if t in seen:
                    events.setdefault(round(published[t], 3), []).append(seen[t] - published[t])
            late = sorted(min(v) * 1000 for v in events.values())
            sizes = sorted(len(v) for v in events.values())
            rep.facts["admitted events"] = (
                f"{len(events)} events of {sizes[0]}–{sizes[-1]} tokens (median "
                f"{sizes[len(sizes) // 2]}); {sum(1 for x in late if x >= 100)} delivered "
                f"≥ 100 ms late as a whole (earliest token of the event late), worst "
                f"{late[-1]:,.0f} ms")
            rep.add("admission", "… max; share ≥ 100 ms", f"{delays[-1]:,.1f} ms; {over:.1%}", "",
                    "", "", "—")
            rep.add("admission", "admitted frames matched / published", fmt(len(delays)),
                    fmt(len(published)), ratio(len(delays), len(published)), "1.00×",
                    verdict(len(delays) == len(published)))
            if p99 >= 100:
                self.missed.add("admission delay")
        else:
            rep.add("admission", "admitted frame delay", "n/a", "", "", "< 100 ms",
                    "— (needs --redis-url)")

    async def booking(self) -> None:
        """Holds and payments come from loadtest.booking_bench, written separately."""
        text: str
        if self.args.no_booking:
            text = "Skipped (--no-booking)."
        elif importlib.util.find_spec("loadtest.booking_bench") is None:
            text = ("Produced by `python -m loadtest.booking_bench` (not present in this tree). "
                    "When it exists, this bench runs it with REDIS_URL and DATABASE_URL in its "
                    "environment, and puts its Markdown output here.")
        else:
            env = dict(os.environ, BENCH_URL=self.url, ADMIN_TOKEN=self.admin_token or "")
            if self.stack:
                env.update(REDIS_URL=self.stack.redis_url, DATABASE_URL=self.stack.database_url)
            # It makes its own database on the same PostgreSQL server and its own web process.
            argv = [sys.executable, "-m", "loadtest.booking_bench"]
            argv += ["--seconds", "1.5"] if self.args.quick else []
            with self.timed("holds and payments"):
                try:
                    proc = await asyncio.create_subprocess_exec(
                        *argv, env=env, stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.PIPE)
                    out, err = await asyncio.wait_for(proc.communicate(), 240)
                    text = out.decode(errors="replace") or "(no output)"
                    if proc.returncode:
                        text += (f"\n\n`loadtest.booking_bench` exited {proc.returncode}:\n\n"
                                 f"```\n{err.decode(errors='replace')[-1500:]}\n```")
                except TimeoutError:
                    proc.kill()
                    text = "`loadtest.booking_bench` did not finish within 240 s."
        self.report.note("holds and payments", text)

    async def stadium(self) -> None:
        """Booking at stadium scale comes from loadtest.stadium_bench, run on servers of its own."""
        if self.args.no_stadium:
            self.report.note("stadium scale", "Skipped (--no-stadium).")
            return
        argv = [sys.executable, "-m", "loadtest.stadium_bench"] + (["--quick"] if self.args.quick
                                                                   else [])
        with self.timed("stadium scale"):
            proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE)
            try:
                out, err = await asyncio.wait_for(proc.communicate(), 900)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                self.report.note("stadium scale", "`loadtest.stadium_bench` did not finish "
                                                  "within 900 s.")
                return
        text = out.decode(errors="replace")
        # Its own heading gives way to the report's.
        if text.startswith("## "):
            text = text.partition("\n")[2]
        if proc.returncode:
            text += (f"\n\n`loadtest.stadium_bench` exited {proc.returncode}:\n\n"
                     f"```\n{err.decode(errors='replace')[-1500:]}\n```")
        self.report.note("stadium scale: 50,000-seat dates", text or "(no output)")

    # -- the whole run ----------------------------------------------------------------------
    async def run(self) -> Path:
        REPORTS.mkdir(exist_ok=True)
        conn = aiohttp.TCPConnector(limit=20, local_addr=("127.0.0.9", 0))
        async with aiohttp.ClientSession(connector=conn) as self.session:
            self.sampler = Sampler(self.session, self.url, self.admin_token,
                                   [self.join_concert, self.socket_concert], self.bare_url)
            sampling = asyncio.create_task(self.sampler.run())
            try:
                await self.configure(self.join_concert, admit_rate=0, paused=False)
                await self.joins()
                await self.scale_out()
                bare = await self.bare_sockets()
                await self.gateway_sockets_and_admission(bare)
                await self.booking()
                await self.stadium()
            finally:
                sampling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampling
        chart = REPORTS / f"{self.stamp}.png"
        draw(self.sampler.samples, self.sampler.phases, chart)
        self.report.chart = chart.name
        self.report.facts.update({
            "client": f"wrk, 1 thread, {self.plan.connections} connections, POST with distinct "
                      f"user ids (joins); WebSocket clients in {-(-self.plan.sockets // 5000)} "
                      "separate processes (sockets)",
            "admit rate during fan-out + admission": f"{self.plan.admit_rate:g}/s, tick 1 s",
            "re-run": "`" + " ".join(["python -m loadtest.bench", *sys.argv[1:]]) + "`",
        })
        from .notes import explain
        explain(self.report, self.missed)
        path = REPORTS / f"{self.stamp}.md"
        path.write_text(self.report.render())
        return path


def redis_server_pid(url: str | None) -> int | None:
    """The pid of the redis-server listening on this URL's port, when it runs on this machine."""
    if not url:
        return None
    import psutil

    port = str(urlsplit(url).port or 6379)
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "redis-server" in (proc.info["name"] or "") and (
                port in cmd or any(c.endswith(f":{port}") for c in cmd)):
            return int(proc.pid)
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short phases, 5,000 sockets (~1.5 min)")
    p.add_argument("--url", help="a running deployment on this machine (127.0.0.1)")
    p.add_argument("--admin-token", default=os.environ.get("ADMIN_TOKEN"))
    p.add_argument("--redis-url", help="the deployment's Redis, to time admissions (with --url)")
    p.add_argument("--database-url", help="use this PostgreSQL instead of a throwaway one")
    p.add_argument("--web-pid", type=int, help="pid of the web process, for RSS/CPU (with --url)")
    p.add_argument("--concerts", type=int, nargs=2, default=[1, 2], metavar=("JOINS", "SOCKETS"),
                   help="concert ids for the join load and for the sockets (default 1 2)")
    p.add_argument("--sockets", type=int, help=f"sockets to hold (default {SOCKET_TARGET:,})")
    p.add_argument("--connections", type=int, default=50, help="HTTP connections (default 50)")
    p.add_argument("--admit-rate", type=float, help="admissions per second (default 100)")
    p.add_argument("--profile", action="store_true", help="py-spy every phase, not only misses")
    p.add_argument("--no-booking", action="store_true", help="skip loadtest.booking_bench")
    p.add_argument("--no-stadium", action="store_true", help="skip loadtest.stadium_bench")
    args = p.parse_args(argv)
    if args.url and urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        p.error("--url must be on this machine (127.0.0.1)")
    if args.url and args.redis_url and urlsplit(args.redis_url).hostname not in (
            "127.0.0.1", "localhost", "::1"):
        p.error("--redis-url must be on this machine")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not wrk.available():
        print("loadtest.bench needs wrk, the HTTP load client: `apt-get install -y wrk`, "
              "or run scripts/bench, which installs it", file=sys.stderr)
        return 2
    fd_limit = raise_nofile()  # inherited by every process started from here
    plan = Plan.make(args, fd_limit)
    bare_port = free_port()
    bare = start_bare(bare_port, reuse_port=True)
    clock = time.monotonic()
    try:
        if args.url:
            bench = Bench(args, plan, args.url.rstrip("/"), args.admin_token, args.redis_url,
                          args.web_pid, None, bare, bare_port)
            path = uvloop.run(bench.run())
        else:
            with managed(None, args.database_url) as stack:
                bench = Bench(args, plan, stack.url, stack.admin_token, stack.redis_url,
                              stack.webs[0].pid, stack, bare, bare_port)
                path = uvloop.run(bench.run())
    finally:
        bare.stop()
    print(path.read_text())
    print(f"report: {path}\nchart:  {path.with_suffix('.png')}\n"
          f"took {time.monotonic() - clock:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
