"""Redis and PostgreSQL servers of our own that a chaos run or a fault benchmark may stop and
start again: a redis-server (with or without AOF) on a fixed loopback port, and a PostgreSQL
cluster (the `pgserver` wheel's binaries) in a temporary folder, reached over its own socket.

Never the machine's shared servers: each is started here, in its own folder, and stopped by its
own pid (Redis) or its own data directory (PostgreSQL's `pg_ctl`).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from waitingroom.servers import free_port, postgres_reachable, redis_binary, redis_reachable


class OwnRedis:
    """A redis-server in its own folder, on one port for its whole life, so clients find it
    again after a restart. With `appendonly` its data survives a restart; without, it comes back
    empty."""

    def __init__(self, folder: Path, appendonly: bool = True) -> None:
        self.folder, self.appendonly, self.port = folder, appendonly, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
             "--dir", str(self.folder), "--maxclients", "10000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not redis_reachable(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (Redis writes its AOF out and exits) or SIGKILL (a crash)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class OwnPostgres:
    """A PostgreSQL cluster in a temporary folder (the pgserver wheel), listening only on a
    socket in that folder. `stop("immediate")` is a crash: transactions in flight are cut off."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import pgserver
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        self.folder = Path(tempfile.mkdtemp(prefix="wr-chaos-pg-"))
        self.server = pgserver.get_server(self.folder, cleanup_mode="delete")  # type: ignore[attr-defined]
        self.url: str = self.server.get_uri()

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # made at import

        pg_ctl(["-w", *args], pgdata=self.folder, user=self.server.system_user, timeout=30)

    def stop(self, mode: str = "fast") -> None:
        """`fast`: sessions are ended and the server shuts down cleanly; `immediate`: a crash."""
        self._pg_ctl("-m", mode, "stop")

    def start(self, timeout: float = 30.0) -> None:
        # `restart` of a stopped server starts it with the options it last ran with.
        self._pg_ctl("-m", "fast", "restart")
        deadline = time.monotonic() + timeout
        while not postgres_reachable(self.url):
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not come back")
            time.sleep(0.05)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("fast")
        # pgserver would stop the server again (by the pid it first started, gone after a
        # restart) and log that it could not: nothing is left to stop by now.
        logging.getLogger("pgserver").setLevel(logging.CRITICAL)
        self.server.cleanup()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def own_servers(appendonly: bool = True) -> Iterator[tuple[OwnRedis, OwnPostgres]]:
    """A Redis and a PostgreSQL of our own, both deleted on exit."""
    with tempfile.TemporaryDirectory(prefix="wr-chaos-redis-") as folder:
        redis = OwnRedis(Path(folder), appendonly)
        redis.start()
        try:
            postgres = OwnPostgres()
            try:
                yield redis, postgres
            finally:
                postgres.close()
        finally:
            redis.stop()
