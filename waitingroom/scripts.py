"""Lua scripts, read once from files and registered on a Redis client."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

# Scripts on one concert's keys get the shared prelude (lua/_lib.lua); the others stand alone.
_CONCERT = ("join", "status", "leave", "attach", "detach", "reap", "admit", "stock", "snapshot",
            "draw", "etalog")
_PLAIN = ("lease", "limit")
# Pipelines an AutoPipeline has in flight at once (see AutoPipeline._schedule).
IN_FLIGHT = 2


# A single Redis or a Redis Cluster (REDIS_CLUSTER=true): the same calls work on both, as long as
# every script and MULTI touches one slot (keys.py) and pipelines need not be atomic.
Client = Redis | RedisCluster
AnyPipeline = Pipeline | ClusterPipeline


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


@dataclasses.dataclass(slots=True)
class _Call:
    script: AsyncScript
    keys: Sequence[Any]
    args: Sequence[Any]
    more: Callable[[AnyPipeline], object]
    future: asyncio.Future[list[Any]]
    once: tuple[Any, ...] | None = None
    size: int = 0


def _nothing(pipe: AnyPipeline) -> None:
    pass


class AutoPipeline:
    """Script calls made in the same event-loop turn share one pipeline, one round trip.

    Under a flash crowd many joins arrive together; batching them costs Redis and this process
    one write and one read for the lot instead of one each. redis-py's own pipelines would first
    ask SCRIPT EXISTS (a round trip more): scripts are loaded only when Redis does not know them.
    """

    def __init__(self, redis: Client) -> None:
        self.redis = redis
        self._waiting: list[_Call] = []
        self._flushes: set[asyncio.Task[None]] = set()
        self._scheduled = False

    async def run(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any],
                  more: Callable[[AnyPipeline], object] = _nothing,
                  once: tuple[Any, ...] | None = None) -> list[Any]:
        """The script's result followed by those of the commands `more` adds to the pipeline.

        `once` is a command (its arguments) that must run alongside but is the same for many
        callers (an idempotent one, such as SADD of a constant): the batch sends each distinct
        one a single time, after the scripts, and fails every caller that asked for it if it
        fails; its result is not returned."""
        loop = asyncio.get_running_loop()
        call = _Call(script, keys, args, more, loop.create_future(), once)
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
                mine, at = results[at:at + call.size], at + call.size
                if isinstance(mine[0], NoScriptError):
                    again.append(call)
                elif not call.future.done():
                    error = next((r for r in mine if isinstance(r, Exception)),
                                 once_failed.get(call.once) if call.once else None)
                    if error is not None:
                        call.future.set_exception(error)
                    else:
                        call.future.set_result(mine)
            if not again:
                return
            for script in {id(c.script): c.script for c in again}.values():
                await self.redis.script_load(script.script)
            calls = again
        for call in calls:
            if not call.future.done():
                call.future.set_exception(RuntimeError("Redis forgot a script as soon as it was loaded"))

    async def _execute(self, calls: list[_Call]) -> tuple[list[Any], dict[Any, Exception]]:
        """Every call's results, and the `once` commands that failed with their error."""
        once: dict[tuple[Any, ...], None] = {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for call in calls:
                before = len(pipe)
                # As pipe.evalsha, which redis-py's cluster pipeline refuses (it cannot know
                # that a script's keys share a slot; ours do, and EVALSHA is routed by them).
                pipe.execute_command("EVALSHA", call.script.sha, len(call.keys), *call.keys,
                                     *call.args)
                call.more(pipe)
                call.size = len(pipe) - before
                if call.once is not None:
                    once[call.once] = None
            for cmd in once:
                pipe.execute_command(*cmd)
            results: list[Any] = await pipe.execute(raise_on_error=False)
            tail = results[len(results) - len(once):]
            failed = {cmd: r for cmd, r in zip(once, tail, strict=True) if isinstance(r, Exception)}
            return results, failed
