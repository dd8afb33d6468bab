"""Schemathesis against a real `waitingroom web` process: no 5xx, every answer as documented.

A web process and an admitter run on the test Redis and PostgreSQL. Booking calls carry a queue
token that is AVAILABLE for a concert with dates and seats (a new one whenever a call spent the
last), admin calls the admin key. After every call, the processes' output must hold no error
and no traceback.

FUZZ_EXAMPLES=300 FUZZ_RANDOM=1 scripts/test tests/test_fuzz.py -o timeout=0 explores further.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis import AuthContext, Case
from schemathesis.schemas import BaseSchema

ADMIN_KEY = "k"  # the spawn fixture's ADMIN_TOKEN
USER = 1
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    derandomize=not os.environ.get("FUZZ_RANDOM"),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
# What schemathesis puts where a queue token goes; swapped for a live one at call time.
STAND_IN = "live-queue-token"
CONFIG: dict[str, Any] = {
    "seed": 20261224,
    "operations": [
        # A plain GET of the WebSocket is not an upgrade: 400 is its right answer.
        {"include-path": "/ws/queue", "checks": {
            "positive_data_acceptance": {"expected-statuses": ["101", "400", "403"]}}},
        # The contract: a seat number the date does not have is 400 validation_error, and no
        # schema can say which numbers a date has.
        {"include-path": "/api/v1/reservations", "checks": {
            "positive_data_acceptance": {"expected-statuses": [
                "2xx", "400", "401", "403", "404", "409", "429", "5xx"]}}},
        # A valid payment may meet a low balance (402) or a key that paid for another (422).
        {"include-path": "/api/v1/payments", "checks": {
            "positive_data_acceptance": {"expected-statuses": [
                "2xx", "401", "402", "403", "404", "409", "422", "429", "5xx"]}}},
    ],
}
# Admission for everyone at once, whatever a fuzzed PATCH left behind (a scheduled opening too:
# null opens it now).
OPEN_QUEUE: dict[str, Any] = {"admit_rate": 1_000_000, "max_active": 100_000_000,
                              "paused": False, "admission_mode": "fixed", "opens_at": None}


@dataclasses.dataclass
class World:
    """The running gateway and what a fuzzed call needs to get past the gate."""

    url: str
    concert_id: int
    logs: list[Path]
    session: requests.Session = dataclasses.field(default_factory=requests.Session)
    token: str = ""
    calls: dict[str, int] = dataclasses.field(default_factory=dict)
    _read: dict[Path, int] = dataclasses.field(default_factory=dict)

    def live_token(self) -> str:
        """An AVAILABLE token for the concert: the current one, or a new one admitted now."""
        if self.token and self._state() == "AVAILABLE":
            return self.token
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        patched = self.session.patch(f"{self.url}/admin/concerts/{self.concert_id}/queue",
                                     json=OPEN_QUEUE, headers=admin)
        assert patched.status_code == 200, patched.text
        joined = self.session.post(f"{self.url}/api/v1/concerts/{self.concert_id}/queue",
                                   json={"user_id": USER})
        assert joined.status_code in (200, 201), joined.text
        self.token = joined.json()["token"]
        deadline = time.monotonic() + 10
        while self._state() != "AVAILABLE":
            assert time.monotonic() < deadline, "the token was not admitted"
            time.sleep(0.02)
        return self.token

    def _state(self) -> str:
        answer = self.session.get(f"{self.url}/api/v1/queue",
                                  headers={"Authorization": f"Bearer {self.token}"})
        return str(answer.json()["state"]) if answer.status_code == 200 else "GONE"

    def authorize(self, case: Case[Any]) -> None:
        """Put a live token where schemathesis put the stand-in for one."""
        if case.headers and case.headers.get("Authorization") == f"Bearer {STAND_IN}":
            case.headers["Authorization"] = f"Bearer {self.live_token()}"

    def called(self, case: Case[Any]) -> None:
        """Count the call; fail if a process logged an error or a traceback since the last."""
        self.calls[case.operation.label] = self.calls.get(case.operation.label, 0) + 1
        found = []
        for path in self.logs:
            with path.open("rb") as f:
                f.seek(self._read.get(path, 0))
                text = f.read()
                self._read[path] = f.tell()
            found += [line for line in text.decode(errors="replace").splitlines()
                      if "ERROR" in line or "Traceback" in line]
        assert found == [], f"{case.operation.label}: the server logged\n" + "\n".join(found)


async def _concert(pg: asyncpg.Pool, dates: int, seats: int) -> int:
    async with pg.acquire() as conn, conn.transaction():
        concert_id = int(await conn.fetchval(
            "INSERT INTO concerts (name, host) VALUES ('Fuzz', 'Test Hall') RETURNING id"))
        for n in range(dates):
            sid = await conn.fetchval(
                "INSERT INTO concert_schedules (concert_id, concert_date) VALUES ($1, $2)"
                " RETURNING id", concert_id, date(2030, 12, 24) + timedelta(days=n))
            await conn.execute(
                "INSERT INTO concert_seats (schedule_id, seat_number, price)"
                " SELECT $1, n, 10000 FROM generate_series(1, $2) n", sid, seats)
    return concert_id


@pytest.fixture
async def world(spawn: Callable[..., Any], pg: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[World]:
    concert_id = await _concert(pg, dates=2, seats=20)
    logs = [tmp_path / "web.log", tmp_path / "admitter.log"]
    # Short holds, so that seats come back on sale within the run; admin calls unlimited.
    env = {"RATE_LIMIT_ADMIN": "0", "HOLD_TTL": "2", "LOG_LEVEL": "INFO"}
    with logs[0].open("wb") as web_out, logs[1].open("wb") as admitter_out:
        web = await spawn("web", output=web_out, **env)
        await spawn("admitter", output=admitter_out, **env)
        w = World(url=web.url, concert_id=concert_id, logs=logs)
        charged = w.session.post(f"{w.url}/api/v1/balance/charges", json={"amount": 10_000_000},
                                 headers={"Authorization": f"Bearer {w.live_token()}"})
        assert charged.status_code == 201, charged.text
        yield w


@pytest.fixture
def web_schema(world: World) -> BaseSchema:
    schema = schemathesis.openapi.from_url(f"{world.url}/api/v1/openapi.json",
                                           config=schemathesis.Config.from_dict(CONFIG))

    # Cases are made ahead of their calls, and a call may spend the token (leaving, paying):
    # they carry a stand-in, which World.authorize swaps for a live token just before the call.
    @schema.auth(refresh_interval=None)
    class Credentials:
        def get(self, case: Case[Any], ctx: AuthContext) -> str | None:
            schemes = {name for req in ctx.operation.definition.raw.get("security", [])
                       for name in req}
            if "adminKey" in schemes:
                return ADMIN_KEY
            return STAND_IN if "queueToken" in schemes else None

        def set(self, case: Case[Any], data: str, ctx: AuthContext) -> None:
            case.headers["Authorization"] = f"Bearer {data}"

    return schema


schema = schemathesis.pytest.from_fixture("web_schema")


@pytest.mark.timeout(300)
@schema.parametrize()
@SETTINGS
def test_every_operation_answers_as_documented(case: Case[Any], world: World) -> None:
    world.authorize(case)
    case.call_and_validate(session=world.session)
    world.called(case)


@pytest.mark.timeout(300)
def test_calls_along_the_documents_links(web_schema: BaseSchema, world: World) -> None:
    """Sequences that follow the links: hold the seats a date lists, then read, release or pay."""
    base: Any = web_schema.as_state_machine()
    failures: list[Exception] = []

    class Links(base):  # type: ignore[misc]
        def before_call(self, case: Case[Any]) -> None:
            world.authorize(case)

        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"session": world.session}

        def after_call(self, response: Any, case: Case[Any]) -> None:
            try:
                world.called(case)
            except AssertionError as e:
                failures.append(e)
                raise

        def validate_response(self, response: Any, case: Case[Any], *args: Any, **kwargs: Any) -> None:
            try:
                super().validate_response(response, case, *args, **kwargs)
            except Exception as e:
                failures.append(e)
                raise

    try:
        Links.run(settings=settings(SETTINGS, stateful_step_count=10))
    except FlakyStrategyDefinition:
        # A real server's state moves on (seats taken, tokens spent), so a scenario that Hypothesis
        # tries again may find other links to follow; only a failure seen on the way counts.
        pass
    assert not failures, failures[0]
    assert {"POST /api/v1/reservations", "POST /api/v1/payments"} <= set(world.calls)
