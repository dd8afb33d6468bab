"""The Redis Cluster client: a failed reading of the slot map is a service unavailable."""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException


class HealingCluster(RedisCluster):
    """redis-py's RedisCluster, where no node answering while the slot map is read again (a
    primary failing over, the cluster restarting) is a connection error like any other Redis
    outage: a 503 with Retry-After to clients and a warning in a tick, never a 500 or a
    traceback; the next command reads the slot map again."""

    async def initialize(self, *args: Any, **kwargs: Any) -> RedisCluster:
        try:
            return await super().initialize(*args, **kwargs)
        except RedisClusterException as e:
            raise RedisConnectionError(f"the cluster's slot map could not be read: {e}") from e
