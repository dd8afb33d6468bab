"""Signed identity: nobody joins as someone else without the selling site's signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from redis.asyncio import Redis

from tests.conftest import TEST_SECRET
from waitingroom.app import create_app
from waitingroom.appkeys import QUEUES
from waitingroom.settings import ConfigError, Settings

MakeClient = Callable[..., Awaitable[Any]]


@pytest.fixture
def signed_client(aiohttp_client: Any, make_settings: Callable[..., Settings], pg: Any,
                  redis: Redis) -> MakeClient:
    async def make(**overrides: Any) -> Any:
        values: dict[str, Any] = {"allow_unsigned_joins": False}
        values.update(overrides)
        return await aiohttp_client(create_app(make_settings(**values)))

    return make


def token_for(user: int | str, key: Any = TEST_SECRET, algorithm: str = "HS256", ttl: int = 60,
              **claims: Any) -> str:
    payload = {"sub": str(user), "exp": int(time.time()) + ttl, **claims}
    return jwt.encode(payload, key, algorithm=algorithm)


async def join(client: Any, concert: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    resp = await client.post(f"/api/v1/concerts/{concert}/queue", json=body)
    return resp.status, await resp.json()


async def test_a_signed_join_binds_the_place_to_the_user(signed_client: MakeClient, add_concert: Any,
                                                         redis: Redis) -> None:
    client = await signed_client()
    cid = await add_concert()
    status, first = await join(client, cid, {"identity": token_for(42)})
    assert status == 201
    status, again = await join(client, cid, {"identity": token_for(42), "user_id": 42})
    assert status == 200 and again["token"] == first["token"]
    _, record = await client.app[QUEUES].lookup(first["token"])
    assert record.user_id == 42


async def test_another_users_id_without_a_signature_gets_nothing(signed_client: MakeClient,
                                                                 add_concert: Any, redis: Redis) -> None:
    client = await signed_client()
    cid = await add_concert()
    _, mine = await join(client, cid, {"identity": token_for(42)})
    before = sorted(await redis.keys("*"))
    status, body = await join(client, cid, {"user_id": 42})
    assert (status, body["code"]) == (401, "identity_required")
    assert "token" not in body and mine["token"] not in json.dumps(body)
    # Someone else's signature does not name user 42 either.
    status, body = await join(client, cid, {"identity": token_for(7), "user_id": 42})
    assert (status, body["code"]) == (401, "identity_invalid")
    assert sorted(await redis.keys("*")) == before


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _forge_none(user: int) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'sub': str(user), 'exp': 2**40})}."


@pytest.mark.parametrize("make_identity", [
    lambda: token_for(5, ttl=-60),                                   # expired, past the leeway
    lambda: token_for(5)[:-3] + ("AAA" if not token_for(5).endswith("AAA") else "BBB"),  # tampered
    lambda: token_for(5, key="another-secret-that-is-long-enough-too"),  # wrong key
    lambda: token_for(5, algorithm="HS512"),                         # another algorithm
    lambda: _forge_none(5),                                          # alg none
    lambda: token_for("0"), lambda: token_for("abc"), lambda: token_for(2**63),  # not a user id
    lambda: jwt.encode({"sub": "5"}, TEST_SECRET, algorithm="HS256"),  # no exp
    lambda: "not.a.jwt",
], ids=["expired", "tampered", "wrong-key", "hs512", "alg-none", "zero", "letters", "too-big",
        "no-exp", "garbage"])
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_bad_identities_are_refused(signed_client: MakeClient, add_concert: Any, redis: Redis,
                                          make_identity: Callable[[], str]) -> None:
    client = await signed_client()
    cid = await add_concert()
    status, body = await join(client, cid, {"identity": make_identity()})
    assert (status, body["code"]) == (401, "identity_invalid"), body
    assert await redis.keys("wr:{c:*") == []


async def test_clock_skew_of_a_few_seconds_is_allowed(signed_client: MakeClient, add_concert: Any) -> None:
    client = await signed_client()
    cid = await add_concert()
    status, _ = await join(client, cid, {"identity": token_for(9, ttl=-2)})
    assert status == 201


def _pem(private: Any) -> str:
    pem: bytes = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode()


@pytest.mark.parametrize("algorithm, private", [
    ("ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
    ("EdDSA", lambda: ed25519.Ed25519PrivateKey.generate()),
    ("RS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)),
])
async def test_public_keys_verify_and_never_sign(signed_client: MakeClient, add_concert: Any,
                                                 algorithm: str, private: Callable[[], Any]) -> None:
    key = private()
    pem = _pem(key)
    client = await signed_client(identity_secret=None, identity_public_key=pem)
    cid = await add_concert()
    status, _ = await join(client, cid, {"identity": token_for(11, key=key, algorithm=algorithm)})
    assert status == 201
    # HS/RS confusion: an HMAC made with the public key's text as the secret is refused.
    signing_input = (f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}."
                     f"{_b64({'sub': '12', 'exp': int(time.time()) + 60})}")
    mac = hmac.new(pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    forged = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    status, body = await join(client, cid, {"identity": forged})
    assert (status, body["code"]) == (401, "identity_invalid")


def test_web_refuses_to_start_without_a_key(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(identity_secret=None, allow_unsigned_joins=False)
    with pytest.raises(ConfigError, match="IDENTITY_SECRET"):
        create_app(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDENTITY_", "ALLOW_UNSIGNED"))}
    done = subprocess.run([sys.executable, "-m", "waitingroom", "web", "--port", "1"],
                          capture_output=True, text=True, timeout=60,
                          env={**env, "DATABASE_URL": settings.database_url,
                               "REDIS_URL": settings.redis_url})
    assert done.returncode == 2 and "IDENTITY_SECRET" in done.stderr
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        make_settings(identity_secret="short")


def test_the_identity_command_signs_for_the_secret() -> None:
    done = subprocess.run([sys.executable, "-m", "waitingroom", "identity", "42", "--ttl", "90"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "IDENTITY_SECRET": TEST_SECRET})
    assert done.returncode == 0, done.stderr
    claims = jwt.decode(done.stdout.strip(), TEST_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "42" and 80 <= claims["exp"] - time.time() <= 91


async def test_dev_sign_in_exists_only_under_dev(signed_client: MakeClient, add_concert: Any) -> None:
    plain = await signed_client()
    assert (await plain.post("/dev/identity", json={"user_id": 3})).status == 404
    dev = await signed_client(dev_sign_in=True)
    for bad in ({}, {"user_id": 0}, {"user_id": "3"}, {"user_id": 3, "admin": True}):
        refused = await dev.post("/dev/identity", json=bad)
        assert refused.status == 400 and (await refused.json())["code"] == "validation_error"
    resp = await dev.post("/dev/identity", json={"user_id": 3})
    assert resp.status == 200
    identity = (await resp.json())["identity"]
    cid = await add_concert()
    status, _ = await join(dev, cid, {"identity": identity})
    assert status == 201
