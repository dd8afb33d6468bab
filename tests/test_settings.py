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
