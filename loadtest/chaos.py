"""The locust scenario under fire: `python -m loadtest.chaos`.

Starts a whole gateway of its own (a Redis with AOF and a PostgreSQL cluster of its own, two
`waitingroom web` processes on one port, one admitter), runs `loadtest/locustfile.py` headless
against it with WR_CHAOS=1, and meanwhile restarts Redis, then PostgreSQL (stopped as in a crash,
so holds and payments in flight are cut off), then one web process (SIGTERM, and a new one in its
place), then kills the admitter (SIGKILL, and a new one). Each part stays down `--down` seconds.
The run passes when locust saw no answer outside the contract and the end-of-run audit is clean.

Only servers and processes it started itself are touched, by pid or by their own data folder,
and traffic goes only to 127.0.0.1. Bounded: at most `MAX_SECONDS` of load, four faults.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadtest.restartable import OwnPostgres, OwnRedis, own_servers
from loadtest.stack import LOGS, Proc, Stack

MAX_SECONDS = 600
MAX_USERS = 500
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
# When each fault starts, as a share of the run.
SCHEDULE = (("redis", 0.2), ("postgres", 0.4), ("web", 0.6), ("admitter", 0.75))


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Chaos:
    """The faults, each on a server or process this run started."""

    def __init__(self, stack: Stack, redis: OwnRedis, postgres: OwnPostgres, down: float) -> None:
        self.stack, self.redis, self.postgres, self.down = stack, redis, postgres, down
        self.began = time.monotonic()
        self.timeline: list[dict[str, Any]] = []

    def _record(self, fault: str, started: float, back: float, **extra: Any) -> None:
        ok = wait_until(lambda: ready(self.stack.url), 30)
        now = time.monotonic()
        self.timeline.append({"fault": fault, "at_s": round(started - self.began, 1),
                              "down_s": round(back - started, 1),
                              "ready_after_s": round(now - back, 2) if ok else None, **extra})
        print(f"chaos: {fault} at {started - self.began:.1f} s, down {back - started:.1f} s, "
              f"/readyz 200 {'%.2f s after' % (now - back) if ok else 'NOT within 30 s'}",
              flush=True)

    def inject(self, fault: str) -> None:
        started, extra = time.monotonic(), {}
        if fault == "redis":
            self.redis.stop()
            time.sleep(self.down)
            self.redis.start()
        elif fault == "postgres":
            self.postgres.stop("immediate")
            time.sleep(self.down)
            self.postgres.start()
        elif fault == "web":
            web = self.stack.webs[0]
            self.stack.remove_web(web)  # SIGTERM: it drains and exits
            extra = {"exit_code": web.popen.returncode,
                     "exited_in_s": round(time.monotonic() - started, 2)}
            time.sleep(self.down)
            self.stack.add_web()
        elif fault == "admitter":
            assert self.stack.admitter is not None
            self.stack.admitter.popen.kill()
            self.stack.admitter.stop()  # reaps it and closes its log
            time.sleep(self.down)
            self.stack.start_admitter()
        self._record(fault, started, time.monotonic(), **extra)


def run(users: int, seconds: float, down: float, summary: Path) -> dict[str, Any]:
    """One chaos run; the locust summary with the faults' timeline and the exit code."""
    users, seconds = min(users, MAX_USERS), min(seconds, MAX_SECONDS)
    secret = secrets.token_hex(32)
    with own_servers(appendonly=True) as (redis, postgres):
        stack = Stack(redis.url, postgres.url)
        stack.env.update(IDENTITY_SECRET=secret, ADMIT_RATE="5", MAX_ACTIVE="40", WAIT_GRACE="60",
                         HOLD_TTL="20", TICK_INTERVAL="0.5", LOG_LEVEL="WARNING")
        try:
            stack.prepare(("--concerts", "2", "--dates", "2", "--seats", "60"))
            stack.start_admitter()  # starts while the web processes do
            stack.add_web()
            stack.add_web()
            env = dict(os.environ, WR_CHAOS="1", WR_ADMIN_TOKEN=stack.admin_token,
                       WR_IDENTITY_SECRET=secret, WR_SUMMARY=str(summary),
                       WR_MAX_WAIT=str(seconds), WR_RETRY_FOR="30")
            locust = Proc("locust", [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE),
                                     "--headless", "-H", stack.url, "-u", str(users),
                                     "-r", str(max(1, users // 2)), "-t", f"{int(seconds)}s",
                                     "--only-summary", "--stop-timeout", "2"], env)
            chaos = Chaos(stack, redis, postgres, down)
            for fault, share in SCHEDULE:
                time.sleep(max(0.0, chaos.began + share * seconds - time.monotonic()))
                chaos.inject(fault)
            code = locust.popen.wait(seconds + 120)
            locust.stop()
            result: dict[str, Any] = json.loads(summary.read_text()) if summary.exists() else {}
            logs = sorted(LOGS.glob(f"*-{os.getpid()}-*.log"))
            errors = [line for log in logs if log != locust.log
                      for line in log.read_text(errors="replace").splitlines() if " ERROR " in line]
            result.update(timeline=chaos.timeline, locust_exit_code=code,
                          errors_logged=errors[:20], locust_log=str(locust.log))
            return result
        finally:
            stack.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--users", type=int, default=40, help=f"locust users (at most {MAX_USERS})")
    p.add_argument("--seconds", type=float, default=90,
                   help=f"length of the run (at most {MAX_SECONDS})")
    p.add_argument("--down", type=float, default=3, help="seconds each part stays down")
    p.add_argument("--summary", type=Path, help="write the run's summary here as JSON")
    args = p.parse_args(argv)
    summary = args.summary or Path(tempfile.mkstemp(prefix="wr-chaos-", suffix=".json",
                                                    dir=LOGS if LOGS.exists() else None)[1])
    summary.unlink(missing_ok=True)
    result = run(args.users, args.seconds, args.down, summary)
    summary.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    clean = (result.get("locust_exit_code") == 0 and not result.get("failures")
             and not result.get("exceptions") and result.get("requests", 0) > 0
             and bool((result.get("audit") or {}).get("ok")))
    print("chaos run:", "clean" if clean else "FAILED", f"(summary in {summary})")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
