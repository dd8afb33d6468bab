"""Rate limits at the door: joins and sign-ins per client address, bearer calls per token,
admin calls per address; counted in Redis (GCRA), so every web process shares them."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from aiohttp import web

from booking.errors import DomainError
from booking.wire import bearer

from .appkeys import QUEUES, SETTINGS

Network = IPv4Network | IPv6Network


class RateLimited(DomainError):
    status, code, title = 429, "rate_limited", "Too many requests; try again in a moment"

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(f"Try again in {seconds} s")
        self.headers = {"Retry-After": str(seconds)}


def _address(raw: str | None) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address((raw or "").strip())
    except ValueError:
        return None


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client: the peer, or behind trusted proxies the last X-Forwarded-For address that is
    not one of them."""
    address = _address(peer)
    if address is None or not forwarded_for or not any(address in n for n in trusted):
        return str(address or peer or "unknown")
    for hop in reversed(forwarded_for.split(",")):
        candidate = _address(hop)
        if candidate is None:
            break  # a hop we cannot read: trust nothing further left of it
        address = candidate
        if not any(candidate in n for n in trusted):
            break
    return str(address)


# Reading addresses costs a join 6–12 µs (ipaddress parses and prints them); the same peers
# and proxy chains come back all sale long. Chains longer than this are worked out each time,
# so that made-up headers cannot fill the cache with large keys.
_CACHED_CHAIN = 256
_client_cached = functools.lru_cache(maxsize=8192)(client_address)


def _client_of(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    forwarded = request.headers.get("X-Forwarded-For")
    address = _client_cached if forwarded is None or len(forwarded) <= _CACHED_CHAIN \
        else client_address
    return address(peer[0] if peer else None, forwarded, request.app[SETTINGS].proxies)


def bucket_of(request: web.Request) -> tuple[str, str, int] | None:
    """(kind, subject, per minute) of this request, or None if it is not limited."""
    settings = request.app[SETTINGS]
    path = request.path
    # A kind whose limit is off (0) is told without working out the client or the token.
    if request.method == "POST" and ((path.startswith("/api/v1/concerts/") and path.endswith("/queue"))
                                     or path == "/dev/identity"):
        per = settings.rate_limit_joins
        return ("j", _client_of(request), per) if per > 0 else None
    if path.startswith("/admin/"):
        per = settings.rate_limit_admin
        return ("a", _client_of(request), per) if per > 0 else None
    if path.startswith("/api/") and "Authorization" in request.headers:
        if settings.rate_limit_calls <= 0:
            return None
        try:
            return "t", bearer(request), settings.rate_limit_calls
        except DomainError:
            return None  # refused anyway, without reaching Redis
    return None


async def take(request: web.Request, bucket: tuple[str, str, int]) -> None:
    """Counts the request in its bucket; RateLimited when the bucket is full."""
    wait = await request.app[QUEUES].take(*bucket)
    if wait > 0:
        raise RateLimited(wait)
