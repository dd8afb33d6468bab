"""Configuration: one frozen object, built from the environment or directly in tests."""

from __future__ import annotations

import dataclasses
import functools
import os
import typing
from collections.abc import Mapping
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

from booking.context import BookingSettings

MIN_SECRET_BYTES = 32
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@functools.cache
def _networks(raw: str) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(ip_network(p.strip(), strict=False) for p in raw.split(",") if p.strip())


@functools.cache
def _origins(raw: str) -> frozenset[str]:
    return frozenset(o.strip().rstrip("/") for o in raw.split(",") if o.strip())


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    redis_url: str
    port: int = 8080
    admin_token: str | None = None
    admit_rate: float = 10.0
    max_active: int = 1000
    active_ttl: int = 600
    hold_ttl: int = 300
    wait_grace: int = 60
    max_seats_per_user: int = 4
    tick_interval: float = 1.0
    # How long an EXPIRED token still answers GET /api/v1/queue and identifies its user.
    token_retention: int = 86400
    # Seconds between full garbage collections of a web process (see cli.tune_gc).
    gc_full_interval: float = 600.0
    # Connections: per web process, and per admitter.
    pg_pool_size: int = 10
    redis_pool_size: int = 200
    admitter_pg_pool_size: int = 4
    admitter_redis_pool_size: int = 10
    # Request bodies are small JSON objects; anything larger is refused with 413.
    max_body: int = 64 * 1024
    # WebSockets: the server's ping interval, and the largest frame a client may send.
    ws_heartbeat: float = 30.0
    ws_max_message: int = 4096
    # A socket whose unsent output passes slow_client_bytes gets no updates until it drains, and
    # is closed once it has stayed behind for slow_client_ticks ticks.
    slow_client_bytes: int = 64 * 1024
    slow_client_ticks: int = 10
    # Waiters far back get position frames only as their figures drift (sockets.NEAR_ETA);
    # false: every waiter gets one every second, as the front does.
    adaptive_updates: bool = True
    # Frames a client may send a socket per second (a burst of twice that); a client that keeps
    # sending past it (ws_flood_limit frames refused) is cut off.
    ws_client_rate: float = 5.0
    ws_flood_limit: int = 50
    # Tokens admitted, timed out or dropped per concert per admitter tick.
    admit_batch: int = 10_000
    # Rows per booking sweep statement per admitter tick.
    sweep_batch: int = 1000
    # Seconds between full counts of the seats on sale against their counters (which the
    # triggers keep in step; this catches a restore or a hand edit).
    stock_check_interval: float = 60.0
    # Queue departures kept for web processes to catch up on; one that falls further behind
    # reads them all again.
    departure_log: int = 100_000
    # Signed identity (see identity.py): an HS256 secret, or the selling site's public key (PEM,
    # or a path to a PEM file). Without either, joins must be allowed unsigned explicitly.
    identity_secret: str | None = None
    identity_public_key: str | None = None
    allow_unsigned_joins: bool = False
    # Seconds of clock difference allowed when checking an identity's expiry.
    identity_leeway: int = 5
    # POST /dev/identity signs anyone in: only `waitingroom dev` turns it on.
    dev_sign_in: bool = False
    # Rate limits per minute (0: off): joins and sign-ins per client address, bearer calls per
    # token, admin calls per address. Shared by every web process through Redis.
    rate_limit_joins: int = 60
    rate_limit_calls: int = 600
    rate_limit_admin: int = 600
    # Comma-separated CIDRs of proxies whose X-Forwarded-For names the client.
    trusted_proxies: str | None = None
    # Comma-separated origins (https://shop.example) whose pages may open queue WebSockets;
    # unset: any. A request without Origin (not a browser) is let through.
    allowed_origins: str | None = None
    # REDIS_URL names any node of a Redis Cluster (every concert's keys share one slot).
    redis_cluster: bool = False
    # One line per request (tokens cut to a prefix) on the waitingroom.access logger.
    access_log: bool = False
    # Inventory-aware admission slows down while the booking API's p95 latency (across every web
    # process, over the last booking_latency_window seconds) is above this many milliseconds.
    booking_p95_bound: float = 500.0
    booking_latency_window: float = 10.0

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool]] = [
            ("PORT", 0 <= self.port <= 65535),
            ("ADMIT_RATE", 0 <= self.admit_rate <= 1_000_000),
            ("MAX_ACTIVE", 0 <= self.max_active <= 100_000_000),
            ("ACTIVE_TTL", 1 <= self.active_ttl <= 86400),
            ("HOLD_TTL", 1 <= self.hold_ttl <= 86400),
            ("WAIT_GRACE", 1 <= self.wait_grace <= 86400),
            ("MAX_SEATS_PER_USER", 1 <= self.max_seats_per_user <= 1000),
            ("TICK_INTERVAL", 0.01 <= self.tick_interval <= 60),
            ("TOKEN_RETENTION", 1 <= self.token_retention <= 30 * 86400),
            ("GC_FULL_INTERVAL", 1 <= self.gc_full_interval <= 86400),
            ("PG_POOL_SIZE", 1 <= self.pg_pool_size <= 1000),
            ("REDIS_POOL_SIZE", 1 <= self.redis_pool_size <= 100_000),
            ("ADMITTER_PG_POOL_SIZE", 1 <= self.admitter_pg_pool_size <= 1000),
            ("ADMITTER_REDIS_POOL_SIZE", 1 <= self.admitter_redis_pool_size <= 100_000),
            ("MAX_BODY", 1024 <= self.max_body <= 16 * 1024 * 1024),
            ("WS_HEARTBEAT", 1 <= self.ws_heartbeat <= 3600),
            ("WS_MAX_MESSAGE", 64 <= self.ws_max_message <= 1024 * 1024),
            ("SLOW_CLIENT_BYTES", 1024 <= self.slow_client_bytes <= 64 * 1024 * 1024),
            ("SLOW_CLIENT_TICKS", 1 <= self.slow_client_ticks <= 10_000),
            ("WS_CLIENT_RATE", 0.1 <= self.ws_client_rate <= 10_000),
            ("WS_FLOOD_LIMIT", 1 <= self.ws_flood_limit <= 1_000_000),
            ("ADMIT_BATCH", 1 <= self.admit_batch <= 1_000_000),
            ("SWEEP_BATCH", 1 <= self.sweep_batch <= 1_000_000),
            ("STOCK_CHECK_INTERVAL", 1 <= self.stock_check_interval <= 86400),
            ("DEPARTURE_LOG", 1000 <= self.departure_log <= 100_000_000),
            ("IDENTITY_SECRET", self.identity_secret is None
             or len(self.identity_secret.encode()) >= MIN_SECRET_BYTES),
            ("IDENTITY_LEEWAY", 0 <= self.identity_leeway <= 300),
            ("RATE_LIMIT_JOINS", 0 <= self.rate_limit_joins <= 60_000),
            ("RATE_LIMIT_CALLS", 0 <= self.rate_limit_calls <= 60_000),
            ("RATE_LIMIT_ADMIN", 0 <= self.rate_limit_admin <= 60_000),
            ("BOOKING_P95_BOUND", 1 <= self.booking_p95_bound <= 600_000),
            ("BOOKING_LATENCY_WINDOW", 1 <= self.booking_latency_window <= 3600),
        ]
        for name, ok in checks:
            if not ok:
                if name == "IDENTITY_SECRET":
                    raise ConfigError(f"IDENTITY_SECRET must be at least {MIN_SECRET_BYTES} bytes")
                raise ConfigError(f"{name} is out of range: {getattr(self, name.lower())!r}")
        try:
            _ = self.proxies
        except ValueError as e:
            raise ConfigError(f"TRUSTED_PROXIES is not a list of CIDRs: {e}") from None
        if self.identity_secret and self.identity_public_key:
            raise ConfigError("set one of IDENTITY_SECRET and IDENTITY_PUBLIC_KEY, not both")

    def check_web(self) -> None:
        """A web process must know how to check who joins, unless told to take ids on trust."""
        if not (self.identity_secret or self.identity_public_key or self.allow_unsigned_joins):
            raise ConfigError("IDENTITY_SECRET (or IDENTITY_PUBLIC_KEY) is not set: joins could "
                              "not be checked; set ALLOW_UNSIGNED_JOINS=true only for closed tests")

    @property
    def proxies(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """TRUSTED_PROXIES as networks (parsed once, though read on every join)."""
        return _networks(self.trusted_proxies or "")

    @property
    def origins(self) -> frozenset[str]:
        """ALLOWED_ORIGINS, without trailing slashes."""
        return _origins(self.allowed_origins or "")

    @property
    def booking(self) -> BookingSettings:
        return BookingSettings(hold_ttl=self.hold_ttl, max_seats_per_user=self.max_seats_per_user,
                               sweep_batch=self.sweep_batch)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the contract's environment variables; raise ConfigError naming a bad one."""
        env = os.environ if env is None else env
        types = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            name = field.name.upper()
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            kind = types[field.name]
            if kind is bool:
                if raw.lower() not in _BOOLS:
                    raise ConfigError(f"{name} must be true or false, got {raw!r}")
                values[field.name] = _BOOLS[raw.lower()]
                continue
            try:
                values[field.name] = kind(raw) if kind in (int, float) else raw
            except ValueError:
                raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        values.update(overrides)
        for required in ("database_url", "redis_url"):
            if required not in values:
                raise ConfigError(f"{required.upper()} is not set")
        try:
            return cls(**values)
        except TypeError as e:
            raise ConfigError(str(e)) from None
