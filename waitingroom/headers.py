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


def secure(response: web.StreamResponse) -> None:
    """Put the headers on an answer before it is sent. The edge (edge.py) does so for every answer
    a handler returns, raises or fails with; a handler that sends its own answer (a WebSocket's
    upgrade) calls this before it prepares it. (Not an on_response_prepare signal: its dispatch
    costs every answer more than setting the headers does.)"""
    response.headers.update(HEADERS)
