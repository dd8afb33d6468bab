import pytest

from waitingroom.settings import ConfigError, Settings

BASE = {"DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://x"}


def test_defaults_follow_the_contract() -> None:
    s = Settings.from_env(BASE)
    assert (s.port, s.admin_token, s.admit_rate, s.max_active, s.active_ttl, s.hold_ttl,
            s.wait_grace, s.max_seats_per_user, s.tick_interval) == (
        8080, None, 10.0, 1000, 600, 300, 60, 4, 1.0)


def test_values_are_read_and_typed() -> None:
    s = Settings.from_env({**BASE, "ADMIT_RATE": "2.5", "MAX_ACTIVE": "7", "ADMIN_TOKEN": "k"})
    assert (s.admit_rate, s.max_active, s.admin_token) == (2.5, 7, "k")


@pytest.mark.parametrize("env, word", [
    ({"PORT": "http"}, "PORT"),
    ({"ADMIT_RATE": "-1"}, "ADMIT_RATE"),
    ({"MAX_ACTIVE": "1.5"}, "MAX_ACTIVE"),
    ({"TICK_INTERVAL": "0"}, "TICK_INTERVAL"),
    ({"WAIT_GRACE": "0"}, "WAIT_GRACE"),
    ({"ALLOW_UNSIGNED_JOINS": "maybe"}, "ALLOW_UNSIGNED_JOINS"),
    ({"TRUSTED_PROXIES": "10.0.0.0/8, not-a-network"}, "TRUSTED_PROXIES"),
    ({"IDENTITY_SECRET": "too-short"}, "IDENTITY_SECRET"),
    ({"RATE_LIMIT_JOINS": "-1"}, "RATE_LIMIT_JOINS"),
    ({"WS_CLIENT_RATE": "0"}, "WS_CLIENT_RATE"),
    ({"IDENTITY_SECRET": "x" * 32, "IDENTITY_PUBLIC_KEY": "k.pem"}, "not both"),
])
def test_bad_values_name_the_variable(env: dict[str, str], word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        Settings.from_env({**BASE, **env})


@pytest.mark.parametrize("missing", ["DATABASE_URL", "REDIS_URL"])
def test_urls_are_required(missing: str) -> None:
    env = dict(BASE)
    del env[missing]
    with pytest.raises(ConfigError, match=missing):
        Settings.from_env(env)


def test_redis_cluster_is_a_bool_off_by_default() -> None:
    assert Settings.from_env(BASE).redis_cluster is False
    assert Settings.from_env({**BASE, "REDIS_CLUSTER": "true"}).redis_cluster is True
    with pytest.raises(ConfigError, match="REDIS_CLUSTER"):
        Settings.from_env({**BASE, "REDIS_CLUSTER": "maybe"})


def test_lists_are_read_once_and_tidied() -> None:
    s = Settings.from_env({**BASE, "TRUSTED_PROXIES": " 10.0.0.0/8 ,192.168.1.7",
                           "ALLOWED_ORIGINS": "https://shop.example/, https://m.shop.example"})
    assert [str(n) for n in s.proxies] == ["10.0.0.0/8", "192.168.1.7/32"]
    assert s.origins == {"https://shop.example", "https://m.shop.example"}
    assert s.proxies is s.proxies  # parsed once, not per request
