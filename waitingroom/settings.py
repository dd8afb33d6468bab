"""Configuration: one frozen object, built from the environment or directly in tests."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping


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
            ("GC_FULL_INTERVAL", 1 <= self.gc_full_interval <= 86400),
        ]
        for name, ok in checks:
            if not ok:
                raise ConfigError(f"{name} is out of range: {getattr(self, name.lower())!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read the contract's environment variables; raise ConfigError naming a bad one."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            name = field.name.upper()
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            kind = field.type
            try:
                if kind == "int":
                    values[field.name] = int(raw)
                elif kind == "float":
                    values[field.name] = float(raw)
                else:
                    values[field.name] = raw
            except ValueError:
                raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        values.update(overrides)
        for required in ("database_url", "redis_url"):
            if required not in values:
                raise ConfigError(f"{required.upper()} is not set")
        return cls(**values)  # type: ignore[arg-type]
