"""Signed identity: the selling site vouches for its users with a short-lived JWT.

HS256 with a shared secret, or ES256 / EdDSA / RS256 with the site's public key, so that the
gateway never holds a key that could sign. The algorithm is pinned by the key: a token signed
any other way (`none` included) is refused, as is one whose `sub` is not a user id.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from booking.wire import MAX_ID

from .errors import IdentityInvalid, IdentityRequired
from .settings import ConfigError, Settings

_USER_ID = re.compile(r"[1-9][0-9]{0,18}")
# A JWT the gateway reads is small; anything longer is refused before it is parsed.
MAX_JWT_LENGTH = 4096


def _public_key(text: str) -> tuple[Any, str]:
    """The key and the one algorithm it may verify."""
    pem = text if text.lstrip().startswith("-----BEGIN") else Path(text).read_text()
    key = load_pem_public_key(pem.replace("\\n", "\n").encode())
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key, "ES256"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key, "EdDSA"
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return key, "RS256"
    raise ValueError("use a P-256 (ES256), Ed25519 (EdDSA) or RSA of 2048+ bits (RS256) key")


@dataclasses.dataclass(frozen=True, slots=True)
class Identities:
    """Checks the identity a join carries; knows whether unsigned joins are allowed."""

    key: Any
    algorithm: str | None
    allow_unsigned: bool
    leeway: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Identities:
        settings.check_web()
        if settings.identity_secret:
            return cls(settings.identity_secret, "HS256", settings.allow_unsigned_joins,
                       settings.identity_leeway)
        if settings.identity_public_key:
            try:
                key, algorithm = _public_key(settings.identity_public_key)
            except (OSError, ValueError) as e:
                raise ConfigError(f"IDENTITY_PUBLIC_KEY is not a usable public key: {e}") from None
            return cls(key, algorithm, settings.allow_unsigned_joins, settings.identity_leeway)
        return cls(None, None, True, settings.identity_leeway)

    def user_of(self, identity: str | None, user_id: int | None) -> int:
        """The user a join is for, or IdentityRequired / IdentityInvalid."""
        if identity is None:
            if self.allow_unsigned and user_id is not None:
                return user_id
            raise IdentityRequired("Send \"identity\": a JWT from the site that sells the tickets")
        if self.algorithm is None:
            raise IdentityInvalid("This gateway has no key to check identities with")
        if len(identity) > MAX_JWT_LENGTH:
            raise IdentityInvalid("The identity is too long")
        try:
            claims = jwt.decode(identity, self.key, algorithms=[self.algorithm],
                                options={"require": ["exp", "sub"]}, leeway=self.leeway)
        except jwt.PyJWTError as e:
            raise IdentityInvalid(f"The identity is not valid: {e}") from None
        sub = claims["sub"]
        if not isinstance(sub, str) or not _USER_ID.fullmatch(sub) or int(sub) > MAX_ID:
            raise IdentityInvalid("The identity's sub is not a user id")
        if user_id is not None and user_id != int(sub):
            raise IdentityInvalid("user_id differs from the identity's sub")
        return int(sub)


def sign(secret: str, user_id: int, ttl: int) -> str:
    """An HS256 identity for this user, valid for ttl seconds (for operators, tests, demos)."""
    now = int(time.time())
    return jwt.encode({"sub": str(user_id), "iat": now, "exp": now + ttl}, secret, algorithm="HS256")
