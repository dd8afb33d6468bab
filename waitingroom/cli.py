"""The `waitingroom` command: dev, web, admitter, migrate, seed, identity, verify-draw."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

import uvloop

from .settings import ConfigError, Settings

log = logging.getLogger("waitingroom")


async def _until_signalled(start: Callable[[], Awaitable[Callable[[], Awaitable[None]]]]) -> None:
    """Start something, wait for SIGINT or SIGTERM, then stop it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    shutdown = await start()
    await stop.wait()
    await shutdown()


async def tune_gc(interval: float) -> None:
    """Full collections only every `interval` seconds, never on CPython's own schedule.

    With 19,000 sockets a process holds millions of long-lived objects, and each automatic
    full collection (every ~25 s under load) stopped the event loop for about a second, so
    admissions reached their sockets late. Young generations are still collected as usual;
    cyclic garbage among old objects waits for the next scheduled pass.
    """
    gc.freeze()  # what start-up made lives as long as the process
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 2**31 - 1)
    while True:
        await asyncio.sleep(interval)
        started = time.perf_counter()
        gc.collect()
        log.info("scheduled full garbage collection took %.0f ms",
                 (time.perf_counter() - started) * 1000)


async def serve_web(settings: Settings, host: str, port: int, reuse_port: bool) -> None:
    from aiohttp import web

    from .accesslog import AccessLogger
    from .app import create_app
    from .server import ProblemAppRunner

    async def start() -> Callable[[], Awaitable[None]]:
        if settings.access_log:
            runner = ProblemAppRunner(create_app(settings), shutdown_timeout=5,
                                      access_log=logging.getLogger("waitingroom.access"),
                                      access_log_class=AccessLogger)
        else:
            runner = ProblemAppRunner(create_app(settings), access_log=None, shutdown_timeout=5)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port, backlog=4096)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        print(f"waitingroom web listening on http://{host}:{port}/", flush=True)
        gc_task = asyncio.create_task(tune_gc(settings.gc_full_interval))

        async def stop() -> None:
            gc_task.cancel()
            await runner.cleanup()

        return stop

    await _until_signalled(start)


async def serve_admitter(settings: Settings) -> None:

    from . import admission
    from .app import pg_pool, redis_client
    from .queue import Queues

    async def start() -> Callable[[], Awaitable[None]]:
        redis = redis_client(settings.redis_url, settings.admitter_redis_pool_size,
                             settings.redis_cluster)
        pool = await pg_pool(settings.database_url, settings.admitter_pg_pool_size)
        task = asyncio.create_task(admission.run(Queues(redis, settings), pool))
        print("waitingroom admitter running", flush=True)

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await pool.close()
            await redis.aclose()

        return stop

    await _until_signalled(start)


async def migrate(settings: Settings) -> None:
    from db.migrate import migrate_url

    applied = await migrate_url(settings.database_url)
    print("applied: " + (", ".join(applied) if applied else "nothing pending"), flush=True)


async def seed(settings: Settings, args: argparse.Namespace) -> None:
    from .seed import seed as run_seed

    print(await run_seed(settings.database_url, concerts=args.concerts, dates=args.dates,
                         seats=args.seats, price=args.price), flush=True)


def print_identity(secret: str | None, user_id: int, ttl: int) -> int:
    """Print an HS256 identity for user_id (what the selling site would mint)."""
    from .identity import sign
    from .settings import MIN_SECRET_BYTES

    if not secret or len(secret.encode()) < MIN_SECRET_BYTES:
        print(f"waitingroom identity: set IDENTITY_SECRET (at least {MIN_SECRET_BYTES} bytes)",
              file=sys.stderr)
        return 2
    print(sign(secret, user_id, ttl), flush=True)
    return 0


def port_free(port: int) -> bool:
    """Whether a web process could listen on this port of the loopback address."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def dev(args: argparse.Namespace) -> int:
    """Everything on one machine, with throwaway servers when none are configured."""
    from .servers import MissingServer, services

    port = args.port or int(os.environ.get("PORT", "8080"))
    if not port_free(port):
        print(f"waitingroom dev: port {port} is taken: another program is listening on it.\n"
              f"Choose another: scripts/dev --port {port + 1}  (or PORT={port + 1} scripts/dev)",
              file=sys.stderr)
        return 2
    try:
        with services() as (redis_url, database_url):
            return _run_dev(port, redis_url, database_url)
    except MissingServer as e:
        print(f"waitingroom dev: {e}", file=sys.stderr)
        return 2


def _run_dev(port: int, redis_url: str, database_url: str) -> int:
    """Migrate, seed the demo, then run web and admitter until Ctrl-C."""
    from honcho.manager import Manager

    env = dict(os.environ, REDIS_URL=redis_url, DATABASE_URL=database_url, DEV_SIGN_IN="true")
    env.setdefault("ADMIN_TOKEN", "dev-admin")
    if not env.get("IDENTITY_SECRET") and not env.get("IDENTITY_PUBLIC_KEY"):
        # A fresh secret each run: the pages sign in through POST /dev/identity.
        env["IDENTITY_SECRET"] = secrets.token_urlsafe(32)
    settings = Settings.from_env(env)
    uvloop.run(migrate(settings))
    seed_args = argparse.Namespace(concerts=3, dates=3, seats=50, price=100_000)
    uvloop.run(seed(settings, seed_args))
    print(f"\n  waiting room: http://127.0.0.1:{port}/\n  admin key:    {env['ADMIN_TOKEN']}\n"
          f"  REDIS_URL={redis_url}\n  DATABASE_URL={database_url}\n", flush=True)
    manager = Manager()
    exe = [sys.executable, "-m", "waitingroom"]
    manager.add_process("web", " ".join([*exe, "web", "--host", "127.0.0.1", "--port",
                                         str(port)]), env=env)
    manager.add_process("admitter", " ".join([*exe, "admitter"]), env=env)
    manager.loop()
    return manager.returncode or 0


def _within(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from low to high, else a clear usage error."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="waitingroom", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("dev", help="run everything on this machine")
    p.add_argument("--port", type=int)
    p = sub.add_parser("web", help="run one web process")
    p.add_argument("--port", type=int)
    p.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))
    p.add_argument("--reuse-port", action="store_true",
                   help="share the port with other web processes (SO_REUSEPORT)")
    sub.add_parser("admitter", help="run the admission loop and sweepers")
    sub.add_parser("migrate", help="apply pending database migrations")
    p = sub.add_parser("identity", help="print a JWT for a user, signed with IDENTITY_SECRET")
    p.add_argument("user_id", type=_within(1, 2**63 - 1))
    p.add_argument("--ttl", type=_within(1, 86400 * 30), default=600,
                   help="seconds until it expires (default 600)")
    p = sub.add_parser("verify-draw", help="check a published draw and print your rank in it")
    p.add_argument("tokens", nargs="+", metavar="token", help="your queue token (or several)")
    p.add_argument("source", help="the draw's URL (…/api/v1/concerts/ID/draw) or a saved copy")
    p = sub.add_parser("seed", help="add demo concerts, dates and seats (idempotent)")
    p.add_argument("--concerts", type=_within(0, 1000), default=3)
    p.add_argument("--dates", type=_within(0, 365), default=3)
    p.add_argument("--seats", type=_within(0, 100_000), default=50)
    p.add_argument("--price", type=_within(1, 10_000_000_000), default=100_000)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "verify-draw":  # before the logging setup: it starts in a blink
        from .verify import main as verify_draw

        return verify_draw(args.tokens, args.source)
    from . import logs

    logs.configure(os.environ.get("LOG_LEVEL", "INFO"), os.environ.get("LOG_FORMAT", "text"))
    if args.command == "dev":
        return dev(args)
    if args.command == "identity":
        return print_identity(os.environ.get("IDENTITY_SECRET"), args.user_id, args.ttl)
    try:
        settings = Settings.from_env()
    except ConfigError as e:
        print(f"waitingroom: configuration error: {e}", file=sys.stderr)
        return 2
    if args.command == "web":
        try:
            settings.check_web()
        except ConfigError as e:
            print(f"waitingroom: configuration error: {e}", file=sys.stderr)
            return 2
        port = args.port if args.port is not None else settings.port
        uvloop.run(serve_web(settings, args.host, port, args.reuse_port))
    elif args.command == "admitter":
        uvloop.run(serve_admitter(settings))
    elif args.command == "migrate":
        uvloop.run(migrate(settings))
    elif args.command == "seed":
        uvloop.run(seed(settings, args))
    return 0
