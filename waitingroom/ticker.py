"""A steady tick: runs a coroutine at a fixed interval, on time, surviving its failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import ClusterDownError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError

from .logs import describe

log = logging.getLogger(__name__)


async def every(interval: float, step: Callable[[], Awaitable[object]], what: str) -> None:
    """Call step every interval seconds until cancelled; a failed step is logged, never fatal."""
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    next_at = loop.time()
    while True:
        # Python 3.11's wait_for (used inside redis-py) can swallow a cancellation that lands
        # as its inner call completes; the task still says it is being cancelled, so stop here.
        if me is not None and me.cancelling():
            raise asyncio.CancelledError()
        next_at += interval
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except (ConnectionError, OSError, RedisConnectionError, ClusterDownError,
                SlotNotCoveredError) as e:
            log.warning("%s failed: %s", what, describe(e))
        except Exception:
            log.exception("%s failed", what)
        # A step that overran does not make the next ones bunch up.
        if me is not None and me.cancelling():
            raise asyncio.CancelledError()
        next_at = max(next_at, loop.time())
        await asyncio.sleep(next_at - loop.time())
