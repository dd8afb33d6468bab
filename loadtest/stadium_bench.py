"""Booking at stadium scale: holds, payments, seat maps and the dates list on 50,000-seat dates,
each figure beside a ceiling measured in the same run (pgbench running the plain statement, or a
bare aiohttp + asyncpg handler running it: loadtest/plain.py, loadtest/bare_booking.py).

    python -m loadtest.stadium_bench [--quick] [--seconds 2] [--clients 1000]

Starts its own PostgreSQL and Redis (throwaway servers), one `waitingroom web` and the bare
process, and stops them by pid. Writes loadtest/reports/<stamp>-stadium.md and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import uvloop

from waitingroom.servers import free_port, scratch_database, throwaway_postgres, throwaway_redis
from waitingroom.settings import Settings

from . import pgbench, profile, wrk
from . import stadium_data as data
from .booking_bench import admitted_tokens
from .procstat import parent_pid, raise_nofile, tree_cpu_seconds
from .report import REPORTS, Table, say, verdict
from .stack import Proc, wait_http
from .stadium_evidence import attribution, evidence
from .stadium_holds import holds_by_fill, throughput
from .stadium_maps import seat_maps


@dataclasses.dataclass
class Plan:
    seconds: float  # one measurement
    clients: int  # refreshing the seat map
    period: float  # each refreshes this often
    window: float  # the refresh measurement
    payers: int
    holders: int  # buyers of the holds/s turns: each holds about once, as in a sale
    sections: tuple[str, ...] = ()  # of SECTIONS, in their order


class Run:
    def __init__(self, plan: Plan, dsn: str, redis_url: str, folder: Path) -> None:
        self.plan, self.dsn, self.redis_url, self.folder = plan, dsn, redis_url, folder
        self.tables: list[Table] = []
        self.notes: list[str] = []
        self.missed: list[str] = []
        self.profiles: list[tuple[str, profile.Profile]] = []
        self.postmaster = 0
        self.web: Proc | None = None
        self.bare: Proc | None = None
        self.url = self.bare_url = ""
        self.hold_pg_ms = 0.0  # PostgreSQL CPU per hold over HTTP, once measured
        self.stamp = time.strftime("%Y%m%d-%H%M%S")

    # -- helpers ----------------------------------------------------------------------------
    def pg_cpu(self) -> float:
        return tree_cpu_seconds(self.postmaster)

    def check(self, ok: bool, what: str) -> str:
        if not ok:
            self.missed.append(what)
        return verdict(ok)

    def script(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(text)
        return path

    async def pgbench(self, text: str, clients: int) -> tuple[pgbench.Result, float]:
        """pgbench on a script: its result and PostgreSQL CPU seconds while it ran."""
        c0 = self.pg_cpu()
        result = await asyncio.to_thread(pgbench.run, self.dsn, self.script("s.sql", text), clients,
                                         self.plan.seconds)
        await asyncio.sleep(0.2)  # its backends reaped
        return result, self.pg_cpu() - c0

    async def load(self, url: str, requests: list[wrk.Request], connections: int,
                  seconds: float | None = None) -> tuple[wrk.HttpResult, float]:
        c0 = self.pg_cpu()
        result = await wrk.run_list(url, requests, seconds=seconds or self.plan.seconds,
                                    connections=connections)
        return result, self.pg_cpu() - c0

    async def count(self, sql: str, *args: object) -> int:
        conn = await asyncpg.connect(self.dsn)
        try:
            return int(await conn.fetchval(sql, *args))
        finally:
            await conn.close()

    # -- setup ------------------------------------------------------------------------------
    async def start(self) -> None:
        p = self.plan
        say("data: five 50,000-seat dates of ours, plain tables of the ceilings' own")
        self.venue = v = await data.prepare(self.dsn, p.payers, int(data.SEATS * data.FILL))
        conn = await asyncpg.connect(self.dsn)
        try:
            self.postmaster = parent_pid(await conn.fetchval("SELECT pg_backend_pid()"))
            # A throwaway server of our own: no autovacuum worker waking in a measurement and
            # counting as the CPU of the holds in it. The bench vacuums between phases instead.
            await conn.execute("ALTER SYSTEM SET autovacuum = off")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, DATABASE_URL=self.dsn, REDIS_URL=self.redis_url, PORT=str(port),
                   ADMIT_RATE="1000000", MAX_ACTIVE="10000000", ACTIVE_TTL="3600",
                   MAX_SEATS_PER_USER="1000", LOG_LEVEL="WARNING", ALLOW_UNSIGNED_JOINS="true",
                   RATE_LIMIT_JOINS="0", RATE_LIMIT_CALLS="0")
        self.web = Proc("stadium-web", [sys.executable, "-m", "waitingroom", "web", "--host",
                                        "127.0.0.1", "--port", str(port)], env)
        wait_http(f"{self.url}/readyz", self.web)
        say("tokens: joining and admitting the buyers")
        settings = Settings(database_url=self.dsn, redis_url=self.redis_url, admit_rate=1_000_000,
                            max_active=10_000_000, active_ttl=3600, admit_batch=100_000)
        self.hold_tokens = await admitted_tokens(self.url, settings, v.concert,
                                                 range(data.HOLD_USERS, data.HOLD_USERS + p.holders))
        self.map_tokens = await admitted_tokens(self.url, settings, v.concert,
                                                range(data.MAP_USERS, data.MAP_USERS + p.clients))
        self.pay_tokens = await admitted_tokens(self.url, settings, v.concert,
                                                range(data.PAY_BASE + 1, data.PAY_BASE + p.payers + 1))
        # The seat map as the gateway sends it: the bare process answers with the same bytes.
        self.map_path = f"/api/v1/schedules/{v.seat_map}/seats"
        auth = {"Authorization": f"Bearer {self.hold_tokens[0]}"}
        async with aiohttp.ClientSession(auto_decompress=False) as http:
            async with http.get(self.url + self.map_path,
                                headers={**auth, "Accept-Encoding": "gzip"}) as r:
                self.map_gz, self.map_etag = await r.read(), r.headers["ETag"]
                assert r.headers.get("Content-Encoding") == "gzip", r.headers
            async with http.get(self.url + self.map_path,
                                headers={**auth, "Accept-Encoding": "identity"}) as r:
                self.map_plain = await r.read()
        body = self.folder / "seats.json.gz"
        body.write_bytes(self.map_gz)
        bare_port = free_port()
        self.bare_url = f"http://127.0.0.1:{bare_port}"
        self.bare = Proc("stadium-bare", [
            sys.executable, "-m", "loadtest.bare_booking", "--port", str(bare_port), "--dsn",
            self.dsn, "--body", str(body), "--etag", self.map_etag, "--encoding", "gzip"],
            dict(os.environ))
        wait_http(f"{self.bare_url}/stats", self.bare)

    def stop(self) -> None:
        for proc in (self.bare, self.web):
            if proc is not None:
                proc.stop()

    # -- the whole run ----------------------------------------------------------------------
    async def run(self) -> str:
        REPORTS.mkdir(exist_ok=True)
        clock = time.monotonic()
        try:
            await self.start()
            for name, section in SECTIONS.items():
                if name in self.plan.sections:
                    await section(self)
        finally:
            self.stop()
        return self.render(time.monotonic() - clock)

    def render(self, took: float) -> str:
        p, load = self.plan, os.getloadavg()
        out = ["## Stadium scale: 50,000-seat dates", "",
               f"{os.cpu_count()} cores, load average at the end {load[0]:.2f}; one "
               "`waitingroom web` process, throwaway PostgreSQL and Redis; "
               f"{p.seconds:g} s per measurement; took {took:.0f} s. Every ceiling was measured "
               "in this run: pgbench running the plain statement, or a bare aiohttp + asyncpg "
               "process running it (`loadtest/plain.py`, `loadtest/bare_booking.py`), with the "
               "same HTTP client (wrk, one thread) as the gateway.", ""]
        out.append("Targets missed: " + (", ".join(self.missed) if self.missed else "none") + ".")
        for table in self.tables:
            out += ["", table.render()]
        out += ["", "### Notes", ""] + [f"- {n}" for n in self.notes]
        for what, prof in self.profiles:
            out += ["", f"### Profile: {what}", ""]
            if prof.error:
                out.append(f"py-spy failed: `{prof.error.strip()[:300]}`")
                continue
            out += [f"{prof.samples} samples (py-spy, 200 Hz). Hottest leaf functions:", "",
                    "| share | function |", "| ---: | --- |"]
            out += [f"| {s:.1%} | `{f}` |" for f, s in prof.self_top]
            out += ["", "On the stack (inclusive):", "", "| share | function |", "| ---: | --- |"]
            out += [f"| {s:.1%} | `{f}` |" for f, s in prof.incl_top
                    if not any(x in f for x in ("<module>", "_run_", "run_forever", "run (",
                                                "run_app", "serve_web", "main ("))][:14]
        out.append("\nRe-run: `" + " ".join(["python -m loadtest.stadium_bench", *sys.argv[1:]])
                   + "`")
        return "\n".join(out) + "\n"


SECTIONS: dict[str, Callable[[Run], Awaitable[None]]] = {
    "fill": holds_by_fill, "throughput": throughput, "evidence": evidence, "maps": seat_maps,
    "attribution": attribution}


@contextlib.contextmanager
def servers() -> Iterator[tuple[str, str]]:
    """(database URL, Redis URL) on throwaway servers of this run's own."""
    with throwaway_postgres() as server, scratch_database("wr_stadium", server) as dsn, \
            throwaway_redis() as redis_url:
        yield dsn, redis_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.stadium_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 s measurements, 10 s window")
    parser.add_argument("--seconds", type=float, help="one measurement (default 2, quick 1)")
    parser.add_argument("--clients", type=int, default=1000, help="seat-map refreshers")
    parser.add_argument("--period", type=float, default=2.0, help="seconds between refreshes")
    parser.add_argument("--only", action="append", choices=list(SECTIONS),
                        help="run only this section (repeatable): fill (holds vs fill), "
                             "throughput (holds/s and payments/s), evidence (EXPLAIN, one "
                             "hold at a time), maps (seat maps), attribution (2b)")
    args = parser.parse_args(argv)
    if not wrk.available():
        print("needs wrk: apt-get install -y wrk (scripts/bench installs it)", file=sys.stderr)
        return 2
    raise_nofile()
    plan = Plan(seconds=args.seconds or (1.0 if args.quick else 2.0), clients=args.clients,
                period=args.period, window=10.0 if args.quick else 20.0,
                payers=12000 if args.quick else 25000, holders=6000 if args.quick else 12000,
                sections=tuple(args.only or SECTIONS))
    with servers() as (dsn, redis_url), tempfile.TemporaryDirectory(prefix="wr-stadium-") as tmp:
        run = Run(plan, dsn, redis_url, Path(tmp))
        text = uvloop.run(run.run())
    # Named like the run's other files (py-spy's stacks): by the time it started.
    path = REPORTS / f"{run.stamp}-stadium.md"
    path.write_text(text)
    print(text)
    print(f"report: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
