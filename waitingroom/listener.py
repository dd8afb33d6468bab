"""Admissions and expiries published by admitters and other processes, handed to this process's
sockets; the subscription comes back by itself after a Redis outage."""

from __future__ import annotations

import asyncio
import logging

from .logs import describe
from .metrics import store_failed
from .queue import Queues
from .sockets import Sockets

log = logging.getLogger(__name__)

FIRST_BACKOFF = 0.1
MAX_BACKOFF = 5.0


def _malformed(data: bytes) -> None:
    log.warning("ignored a malformed event %r", data[:100])


async def listen(queues: Queues, sockets: Sockets) -> None:
    """Follow every concert's channel until cancelled."""
    loop = asyncio.get_running_loop()
    backoff = FIRST_BACKOFF
    me = asyncio.current_task()
    while True:
        if me is not None and me.cancelling():  # see ticker.every
            raise asyncio.CancelledError()
        started = loop.time()
        try:
            await queues.follow(sockets.dispatch, _malformed)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a lost connection: keep listening once Redis is back
            store_failed(e)
            log.warning("pub/sub listener: %s; reconnecting", describe(e))
        if loop.time() - started > MAX_BACKOFF:
            backoff = FIRST_BACKOFF  # it had been working: this is a new outage
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)
