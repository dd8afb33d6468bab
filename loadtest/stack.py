"""The system under test, started by the bench: Redis, PostgreSQL, migrations, demo data, the
`waitingroom web` and `waitingroom admitter` processes, and the bare ceiling process.

Every process is started here and stopped here by its own pid; nothing else is touched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

from waitingroom.servers import free_port, services

LOGS = Path(tempfile.gettempdir()) / "wr-bench-logs"


class Proc:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str]) -> None:
        LOGS.mkdir(exist_ok=True)
        self.name = name
        self.log = LOGS / f"{name}-{os.getpid()}-{int(time.time())}.log"
        self._out = open(self.log, "wb")
        self.popen = subprocess.Popen(list(argv), env=env, stdout=self._out,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = self.popen.pid

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._out.close()

    def tail(self, n: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def wait_http(url: str, proc: Proc | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return
        except OSError:
            pass
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout} s")
        time.sleep(0.1)


def start_bare(port: int, name: str = "bare", reuse_port: bool = False) -> Proc:
    argv = [sys.executable, "-m", "loadtest.bare", "--port", str(port)]
    proc = Proc(name, argv + (["--reuse-port"] if reuse_port else []), dict(os.environ))
    wait_http(f"http://127.0.0.1:{port}/stats", proc)
    return proc


class Stack:
    """A whole deployment on this machine: web processes share one port with SO_REUSEPORT."""

    def __init__(self, redis_url: str, database_url: str) -> None:
        self.redis_url = redis_url
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_hex(16)
        self.env = dict(os.environ, REDIS_URL=redis_url, DATABASE_URL=database_url,
                        ADMIN_TOKEN=self.admin_token,
                        # wrk's join script names users by id: see loadtest/README.md.
                        ALLOW_UNSIGNED_JOINS="true", RATE_LIMIT_JOINS="0", RATE_LIMIT_CALLS="0",
                        ADMIT_RATE="0", MAX_ACTIVE="1000000",
                        TICK_INTERVAL="1.0", WAIT_GRACE="3600", PORT=str(self.port),
                        LOG_LEVEL="WARNING")
        self.webs: list[Proc] = []
        self.admitter: Proc | None = None

    def _cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "waitingroom", *args]

    def prepare(self, seed: Sequence[str] = ("--concerts", "3", "--dates", "1", "--seats", "10")
                ) -> None:
        for args in (("migrate",), ("seed", *seed)):
            done = subprocess.run(self._cli(*args), env=self.env, capture_output=True, timeout=120)
            if done.returncode:
                raise RuntimeError(f"waitingroom {args[0]} failed:\n{done.stdout.decode()}"
                                   f"{done.stderr.decode()}")

    def add_web(self) -> Proc:
        proc = Proc(f"web{len(self.webs) + 1}",
                    self._cli("web", "--host", "127.0.0.1", "--port", str(self.port), "--reuse-port"),
                    self.env)
        self.webs.append(proc)
        # With two processes on the port a probe may reach either: wait on the log line instead.
        deadline = time.monotonic() + 30
        while b"listening on" not in proc.log.read_bytes():
            if proc.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} did not start:\n{proc.tail()}")
            time.sleep(0.1)
        wait_http(f"{self.url}/readyz", proc)
        return proc

    def remove_web(self, proc: Proc) -> None:
        proc.stop()
        self.webs.remove(proc)

    def start_admitter(self) -> Proc:
        self.admitter = Proc("admitter", self._cli("admitter"), self.env)
        return self.admitter

    def start(self) -> None:
        self.prepare()
        self.add_web()
        self.start_admitter()

    def stop(self) -> None:
        procs = [*self.webs, *([self.admitter] if self.admitter else [])]
        for proc in procs:  # all told at once, so they drain side by side
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.stop()
        self.webs.clear()


@contextlib.contextmanager
def managed(redis_url: str | None, database_url: str | None) -> Iterator[Stack]:
    """Configured servers when given and answering, else throwaway ones; the stack on top."""
    with services(redis_url or "", database_url or "") as (r_url, pg_url):
        stack = Stack(r_url, pg_url)
        try:
            stack.start()
            yield stack
        finally:
            stack.stop()
