"""Lua scripts, read once from files and registered on a Redis client."""

from __future__ import annotations

import dataclasses
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

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
