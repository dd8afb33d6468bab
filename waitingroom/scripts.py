"""Lua scripts, read once from files and registered on a Redis client."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Sequence
from importlib import resources
from typing import Any, cast

from redis.asyncio import Connection, ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import DataError, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

# Scripts on one concert's keys get the shared prelude (lua/_lib.lua); the others stand alone.
_CONCERT = ("join", "status", "leave", "attach", "detach", "reap", "admit", "stock", "snapshot",
            "draw", "etalog")
_PLAIN = ("lease", "limit")
# Pipelines an AutoPipeline has in flight at once (see AutoPipeline._schedule).
IN_FLIGHT = 2


# A single Redis or a Redis Cluster (REDIS_CLUSTER=true): the same calls work on both, as long as
# every script and MULTI touches one slot (keys.py) and pipelines need not be atomic.
Client = Redis | RedisCluster


def _source(name: str) -> str:
    return (resources.files("waitingroom") / "lua" / f"{name}.lua").read_text()


@dataclasses.dataclass(frozen=True, slots=True)
class Scripts:
    join: AsyncScript
    status: AsyncScript
    leave: AsyncScript
    attach: AsyncScript
    detach: AsyncScript
    reap: AsyncScript
    admit: AsyncScript
    lease: AsyncScript
    limit: AsyncScript
    stock: AsyncScript
    snapshot: AsyncScript
    draw: AsyncScript
    etalog: AsyncScript

    @classmethod
    def register(cls, redis: Client) -> Scripts:
        """Register every script on this client (EVALSHA, loading on first use)."""
        prelude = _source("_lib")
        scripts = {n: redis.register_script(prelude + "\n" + _source(n)) for n in _CONCERT}
        scripts.update({n: redis.register_script(_source(n)) for n in _PLAIN})
        return cls(**scripts)


# A command as its arguments, sent alongside a script call (AutoPipeline.run).
Command = tuple[EncodableT, ...]


def _bulk(arg: EncodableT) -> bytes:
    """One argument on the wire, encoded as redis-py encodes it (UTF-8 text, numbers by repr)."""
    if isinstance(arg, bytes):
        raw = arg
    elif isinstance(arg, str):
        raw = arg.encode()
    elif isinstance(arg, int | float) and not isinstance(arg, bool):
        raw = repr(arg).encode()
    else:
        raise DataError(f"A Redis argument must be bytes, text or a number, not {type(arg).__name__}")
    return b"$%d\r\n%b\r\n" % (len(raw), raw)


def _bulks(args: Sequence[EncodableT]) -> bytes:
    """Arguments on the wire one after another: text and integers (nearly all of them) without
    _bulk's checks, which cost more than the encoding."""
    out = []
    for arg in args:
        kind = type(arg)
        if kind is str:
            raw = cast(str, arg).encode()
        elif kind is int:
            raw = b"%d" % cast(int, arg)
        else:
            out.append(_bulk(arg))
            continue
        out.append(b"$%d\r\n%b\r\n" % (len(raw), raw))
    return b"".join(out)


def pack(command: Sequence[EncodableT]) -> bytes:
    """A command as Redis reads it (RESP): an array of bulk strings."""
    return b"*%d\r\n%b" % (len(command), _bulks(command))


@dataclasses.dataclass(slots=True)
class _Call:
    script: AsyncScript | None  # None: args is a plain command (AutoPipeline.command)
    keys: Sequence[EncodableT]
    args: Sequence[EncodableT]
    also: Sequence[Command]
    future: asyncio.Future[list[Any]]
    once: Command | None = None


class AutoPipeline:
    """Script calls (and plain commands) made in the same event-loop turn share one pipeline, one
    round trip.

    Under a flash crowd many joins arrive together; batching them costs Redis and this process
    one write and one read for the lot instead of one each. redis-py's own pipelines would first
    ask SCRIPT EXISTS (a round trip more): scripts are loaded only when Redis does not know them.
    On a single Redis the batch is packed here and written as it is on a connection this keeps:
    redis-py's pipeline spends more on its bookkeeping than Redis spends running the scripts.
    """

    def __init__(self, redis: Client) -> None:
        self.redis = redis
        # None on a cluster: its pipeline routes each command to its node.
        self._pool = None if isinstance(redis, RedisCluster) else redis.connection_pool
        # Connections taken from the pool and kept (at most IN_FLIGHT): asking the pool for
        # one costs a lock, a timer and a liveness check per batch. A kept connection that
        # Redis closed is found out by the batch's retry, which connects it again.
        self._idle: list[Connection] = []
        self._waiting: list[_Call] = []
        self._flushes: set[asyncio.Task[None]] = set()
        self._scheduled = False
        # The packed start of a script call up to its arguments (EVALSHA, sha, keys), by
        # script, key count, keys and argument count: the same for every join to a concert.
        self._heads: dict[tuple[Any, ...], bytes] = {}

    async def run(self, script: AsyncScript, keys: Sequence[EncodableT],
                  args: Sequence[EncodableT], also: Sequence[Command] = (),
                  once: Command | None = None) -> list[Any]:
        """The script's result followed by those of the commands `also` (sent right after it).

        `once` is a command that must run alongside but is the same for many callers (an
        idempotent one, such as SADD of a constant): the batch sends each distinct one a single
        time, after the scripts, and fails every caller that asked for it if it fails; its
        result is not returned."""
        return await self._enqueue(script, keys, args, also, once)

    async def command(self, *command: EncodableT) -> Any:
        """A plain command's result, sent in the same batch as the script calls around it (a
        read on the way to a hold or a payment shares their round trip, and skips the pool)."""
        return (await self._enqueue(None, (), command, (), None))[0]

    async def _enqueue(self, script: AsyncScript | None, keys: Sequence[EncodableT],
                       args: Sequence[EncodableT], also: Sequence[Command],
                       once: Command | None) -> list[Any]:
        loop = asyncio.get_running_loop()
        call = _Call(script, keys, args, also, loop.create_future(), once)
        self._waiting.append(call)
        self._schedule(loop)
        return await call.future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # At most IN_FLIGHT pipelines at once: calls made meanwhile wait for one to come back
        # and go together in the next, so under load a batch grows with the load (one write
        # and one read for many) instead of each turn of the loop paying its own round trip.
        if not self._scheduled and self._waiting and len(self._flushes) < IN_FLIGHT:
            self._scheduled = True
            loop.call_soon(self._start_flush)

    def _start_flush(self) -> None:
        self._scheduled = False
        if not self._waiting:
            return
        task = asyncio.get_running_loop().create_task(self._flush(self._waiting))
        self._waiting = []
        self._flushes.add(task)
        task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        self._schedule(task.get_loop())

    async def _flush(self, calls: list[_Call]) -> None:
        for _ in range(2):
            try:
                results, once_failed = await self._execute(calls)
            except Exception as e:  # the connection failed: every caller hears of it
                for call in calls:
                    if not call.future.done():
                        call.future.set_exception(e)
                return
            again: list[_Call] = []
            at = 0
            for call in calls:
                size = 1 + len(call.also)
                mine, at = results[at:at + size], at + size
                if isinstance(mine[0], NoScriptError):
                    again.append(call)
                elif not call.future.done():
                    error = None
                    for r in mine:
                        if isinstance(r, Exception):
                            error = r
                            break
                    else:
                        if call.once is not None:
                            error = once_failed.get(call.once)
                    if error is not None:
                        call.future.set_exception(error)
                    else:
                        call.future.set_result(mine)
            if not again:
                return
            for script in {id(c.script): c.script for c in again if c.script}.values():
                await self.redis.script_load(script.script)
            calls = again
        for call in calls:
            if not call.future.done():
                call.future.set_exception(RuntimeError("Redis forgot a script as soon as it was loaded"))

    @staticmethod
    def _commands(calls: list[_Call]) -> tuple[list[Command], list[Command]]:
        """Every command of the batch in order, and the `once` ones (sent last)."""
        out: list[Command] = []
        once: dict[Command, None] = {}
        for call in calls:
            if call.script is None:
                out.append(tuple(call.args))
            else:
                out.append(("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args))
            out.extend(call.also)
            if call.once is not None:
                once[call.once] = None
        return out, list(once)

    def _head(self, script: AsyncScript, call: _Call) -> bytes:
        key = (script.sha, len(call.args), *call.keys)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) > 10_000:
                self._heads.clear()
            keys = call.keys
            head = self._heads[key] = b"*%d\r\n%b" % (
                3 + len(keys) + len(call.args),
                _bulks(("EVALSHA", script.sha, len(keys), *keys)))
        return head

    def _wire(self, calls: list[_Call]) -> tuple[bytes, int, list[Command]]:
        """The batch as Redis reads it (the `once` commands last), how many replies it asks
        for, and the `once` commands."""
        parts: list[bytes] = []
        once: dict[Command, None] = {}
        for call in calls:
            if call.script is None:
                parts.append(pack(call.args))
            else:
                parts.append(self._head(call.script, call))
                parts.append(_bulks(call.args))
            parts.extend(map(pack, call.also))
            if call.once is not None:
                once[call.once] = None
        parts.extend(map(pack, once))
        return b"".join(parts), len(calls) + sum(len(c.also) for c in calls) + len(once), \
            list(once)

    async def _execute(self, calls: list[_Call]) -> tuple[list[Any], dict[Any, Exception]]:
        """Every call's results, and the `once` commands that failed with their error."""
        if self._pool is None:
            commands, once = self._commands(calls)
            results = await self._pipeline(commands + once)
        else:
            wire, replies, once = self._wire(calls)
            results = await self._write_read(self._pool, wire, replies)
        tail = results[len(results) - len(once):]
        failed = {cmd: r for cmd, r in zip(once, tail, strict=True) if isinstance(r, Exception)}
        return results, failed

    async def _pipeline(self, commands: list[Command]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for command in commands:
                # EVALSHA as a plain command: redis-py's cluster pipeline refuses pipe.evalsha
                # (it cannot know that a script's keys share a slot; ours do, and EVALSHA is
                # routed by them).
                pipe.execute_command(*command)
            results: list[Any] = await pipe.execute(raise_on_error=False)
            return results

    async def _write_read(self, pool: ConnectionPool, wire: bytes, replies: int) -> list[Any]:
        """The replies to a packed batch, as a redis-py pipeline reads them: error replies in
        place of their results, and on a connection lost the whole batch again on a new one (as
        many times as its retry says)."""
        if self._idle:
            conn = self._idle.pop()
        else:
            conn = await pool.get_connection()  # type: ignore[no-untyped-call]

        async def exchange() -> list[Any]:
            await conn.send_packed_command(wire)
            results: list[Any] = []
            try:
                # One deadline for all the batch's replies: a timer per reply (as redis-py
                # sets by default) costs more than reading the reply.
                async with asyncio.timeout(conn.socket_timeout):
                    for _ in range(replies):
                        try:
                            results.append(await conn.read_response(timeout=math.inf))
                        except ResponseError as e:
                            results.append(e)
            except TimeoutError:  # the read was cut off, and the connection closed with it
                raise RedisTimeoutError("Timeout reading a batch of replies") from None
            return results

        async def lost(error: Exception) -> None:
            await conn.disconnect()

        try:
            results: list[Any] = await conn.retry.call_with_retry(exchange, lost)
        except BaseException:
            await pool.release(conn)
            raise
        self._idle.append(conn)
        return results
