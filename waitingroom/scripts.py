"""Lua scripts, read once from files and registered on a Redis client."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

_NAMES = ("join", "status", "leave", "attach", "detach", "reap", "admit", "lease")


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

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        """Register every script on this client (EVALSHA, loading on first use)."""
        prelude = _source("_lib")
        return cls(**{n: redis.register_script(prelude + "\n" + _source(n)) for n in _NAMES})


async def pipelined(redis: Redis, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any],
                    more: Callable[[Pipeline], object]) -> list[Any]:
    """A script and more commands in one round trip (redis-py's own pipelines would first ask
    SCRIPT EXISTS, a round trip more); the script is loaded once if Redis does not know it."""
    for _ in range(2):
        async with redis.pipeline(transaction=False) as pipe:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            more(pipe)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        if isinstance(results[0], NoScriptError):
            await redis.script_load(script.script)
            continue
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results
    raise RuntimeError("Redis forgot a script as soon as it was loaded")
