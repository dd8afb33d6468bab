"""The access log: one line per request, with queue tokens cut to their last characters (they
travel in WebSocket URLs, and a full token in a log would let its reader take the place)."""

from __future__ import annotations

import re

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

# What of a token a log may keep: enough to tell tokens apart, far too little to use one. Its
# end, which is random: a token's first characters name its concert (queue.new_token), the
# same for every token of it.
TOKEN_KEPT = 8
_TOKEN = re.compile(r"(token=)([^&\s]*)", re.IGNORECASE)


def redact(text: str) -> str:
    """Cut every token=… in a path or query to its last characters."""
    return _TOKEN.sub(lambda m: m[1] + ("…" + m[2][-TOKEN_KEPT:] if m[2] else ""), text)


class AccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info('%s "%s %s" %s %s %.1fms', request.remote, request.method,
                         redact(request.path_qs), response.status, response.body_length,
                         time * 1000)
