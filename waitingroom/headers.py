"""Headers on every answer: no sniffing, no referrer (tokens travel in URLs), no framing, no
script or style from anywhere but this origin, and a Server header that names no versions."""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    "connect-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'",
    "frame-ancestors 'none'",
])
# Read-only, and already in the form an answer's headers keep: updating those from a plain dict
# converts every name and value again on every answer.
HEADERS = CIMultiDictProxy(CIMultiDict({
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Server": "waitingroom",
}))


async def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: runs for every answer, pages, files, API and WebSocket upgrades."""
    response.headers.update(HEADERS)
