"""The Redis Cluster client: the cluster being unreachable is a service unavailable."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

_REDIS = str(Path(redis.__file__).parent)


def _inside_redis(e: BaseException) -> bool:
    """Whether the failure was raised by redis-py's own code (its innermost frame is there)."""
    frames = traceback.extract_tb(e.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(_REDIS)


class HealingCluster(RedisCluster):
    """redis-py's RedisCluster, where the cluster not answering is a connection error like any
    other Redis outage: a 503 with Retry-After to clients and a warning in a tick, never a 500
    or a traceback; the next command reads the slot map again.

    Two such failures are not ConnectionErrors in redis-py 8.1: no node answering while the
    slot map is read again (RedisClusterException), and, while a primary fails over, a
    connection that another task's reaction to the failure closed under a command still
    using it (AttributeError on its writer, raised inside redis-py)."""

    async def initialize(self, *args: Any, **kwargs: Any) -> RedisCluster:
        try:
            return await super().initialize(*args, **kwargs)
        except RedisClusterException as e:
            raise RedisConnectionError(f"the cluster's slot map could not be read: {e}") from e

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except AttributeError as e:
            if not _inside_redis(e):
                raise
            self._initialize = True  # read the slot map again before the next command
            raise RedisConnectionError(f"a connection closed while in use: {e}") from e
