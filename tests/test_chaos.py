"""The locust scenario under fire: Redis, PostgreSQL, a web process and the admitter restarted
during a short run, and still no answer outside the contract and a clean audit."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from loadtest import chaos
from waitingroom.app import pg_pool
from waitingroom.problems import unavailable


async def test_a_postgres_whose_socket_is_gone_is_unavailable_not_a_bug(tmp_path: Path) -> None:
    # A stopped PostgreSQL reached over a Unix socket: the socket file is gone, and connecting
    # raised FileNotFoundError, which answered 500 instead of 503.
    with pytest.raises(asyncpg.PostgresConnectionError) as caught:
        await pg_pool(f"postgresql://postgres@/postgres?host={tmp_path}", 1)
    assert unavailable(caught.value)


@pytest.mark.timeout(120)
def test_a_chaos_run_sees_only_contract_answers_and_a_clean_audit(tmp_path: Path) -> None:
    result = chaos.run(users=6, seconds=16, down=1, summary=tmp_path / "summary.json")
    assert [event["fault"] for event in result["timeline"]] == ["redis", "postgres", "web",
                                                                "admitter"]
    assert all(event["ready_after_s"] is not None for event in result["timeline"])
    assert result["requests"] > 0
    assert result["failures"] == {} and result["exceptions"] == 0
    assert result["errors_logged"] == []  # no 500 was answered, nothing unexpected logged
    assert result["audit"]["ok"] is True
    assert result["locust_exit_code"] == 0
