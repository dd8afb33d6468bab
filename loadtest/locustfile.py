"""Locust scenarios for the waiting room: people who queue, wait, give up, come back, book and pay.

Headless against `scripts/dev` (see loadtest/README.md for more):

    .venv/bin/locust -f loadtest/locustfile.py --headless -H http://127.0.0.1:8080 \
        -u 300 -r 50 -t 1m

Environment: WR_ADMIN_TOKEN (the admin key, for the end-of-run audit; default `dev-admin`),
WR_CONCERTS (comma-separated concert ids; default: every concert listed by the API),
WR_SHAPE (`flash` or `steady`; unset: plain -u/-r/-t), WR_USERS, WR_RAMP, WR_DURATION,
WR_IDENTITY_SECRET (sign identities here, as the selling site would; unset: each person signs in
through the gateway's demo sign-in, POST /dev/identity, which `waitingroom dev` offers).
Each person sends its own made-up X-Forwarded-For address: run the gateway with
TRUSTED_PROXIES=127.0.0.1/32 for the per-address join limit to see many people, not one.
Only gevent-friendly blocking code here: locust patches sockets, so websocket-client cooperates.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter
from typing import Any

import gevent
import jwt
import websocket
from locust import FastHttpUser, LoadTestShape, between, events, task
from locust.env import Environment

ADMIN_TOKEN = os.environ.get("WR_ADMIN_TOKEN", "dev-admin")
IDENTITY_SECRET = os.environ.get("WR_IDENTITY_SECRET")
GIVE_UP = float(os.environ.get("WR_GIVE_UP", "0.1"))  # share of waiters who give up
COME_BACK = float(os.environ.get("WR_COME_BACK", "0.15"))  # share who close the tab and return
RELEASE = float(os.environ.get("WR_RELEASE", "0.1"))  # share of holds released before paying
MAX_WAIT = float(os.environ.get("WR_MAX_WAIT", "120"))  # longest a person waits to be admitted

# What this run saw, for the end-of-run summary. Each locust worker keeps its own.
seen: Counter[str] = Counter()
concerts: list[int] = []


def metric(name: str, millis: float = 0.0, length: int = 0, error: Exception | None = None) -> None:
    """A custom figure in locust's table (request type WR)."""
    events.request.fire(  # type: ignore[no-untyped-call]  # locust's EventHook is unannotated
        request_type="WR", name=name, response_time=millis, response_length=length, exception=error,
        context={})


def new_user_id() -> int:
    return random.getrandbits(62) + 1


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Person(FastHttpUser):
    """Shared steps: join, wait, book, pay."""

    abstract = True
    wait_time = between(0.5, 2)

    def on_start(self) -> None:
        self.address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
        self.client.headers["X-Forwarded-For"] = self.address  # type: ignore[attr-defined]
        if not concerts:
            with self.client.get("/api/v1/concerts", name="/api/v1/concerts") as r:
                wanted = os.environ.get("WR_CONCERTS")
                ids = [c["id"] for c in r.json()]
                concerts.extend(int(c) for c in wanted.split(",")) if wanted else concerts.extend(ids)

    def identity(self, user_id: int) -> str | None:
        """A signed identity for this user: minted here, or from the demo sign-in."""
        if IDENTITY_SECRET:
            return jwt.encode({"sub": str(user_id), "exp": int(time.time()) + 3600},
                              IDENTITY_SECRET, algorithm="HS256")
        with self.client.post("/dev/identity", json={"user_id": user_id}, name="/dev/identity",
                              catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"sign-in answered {r.status_code}: set WR_IDENTITY_SECRET")
                return None
            return str(r.json()["identity"])

    def join(self, user_id: int, concert: int) -> dict[str, Any]:
        identity = self.identity(user_id)
        if identity is None:
            return {}
        with self.client.post(f"/api/v1/concerts/{concert}/queue", json={"identity": identity},
                              name="/api/v1/concerts/[id]/queue", catch_response=True) as r:
            if r.status_code not in (200, 201):
                r.failure(f"join answered {r.status_code}: {r.text[:200]}")
                return {}
            return r.json()  # type: ignore[no-any-return]

    def ws_url(self, token: str) -> str:
        # FastHttpUser refuses to start without a host, so there is one by now.
        assert self.host is not None
        return self.host.replace("http", "ws", 1).rstrip("/") + f"/ws/queue?token={token}"

    def wait_on_socket(self, token: str, until: float) -> dict[str, Any] | None:
        """Hold the WebSocket until admitted (the admitted frame) or until the deadline."""
        ws = websocket.create_connection(self.ws_url(token), timeout=10)
        try:
            while time.time() < until:
                try:
                    raw = ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                except websocket.WebSocketConnectionClosedException:
                    return None
                if not raw:
                    return None
                frame = json.loads(raw)
                metric(f"ws frame: {frame['type']}", length=len(raw))
                if frame["type"] == "admitted":
                    return frame  # type: ignore[no-any-return]
                if frame["type"] == "expired":
                    seen[f"expired: {frame['reason']}"] += 1
                    return None
            return None
        finally:
            ws.close()

    def poll_until_admitted(self, token: str, until: float) -> dict[str, Any] | None:
        while time.time() < until:
            with self.client.get("/api/v1/queue", headers=bearer(token), name="/api/v1/queue",
                                 catch_response=True) as r:
                if r.status_code != 200:
                    r.failure(f"poll answered {r.status_code}")
                    return None
                body = r.json()
            if body["state"] == "AVAILABLE":
                return body  # type: ignore[no-any-return]
            if body["state"] == "EXPIRED":
                seen[f"expired: {body['reason']}"] += 1
                return None
            gevent.sleep(2)
        return None

    def hold(self, token: str, concert: int) -> dict[str, Any] | None:
        """Hold one or two seats on a date with seats left; None when sold out."""
        with self.client.get(f"/api/v1/concerts/{concert}/schedules", headers=bearer(token),
                             name="/api/v1/concerts/[id]/schedules") as r:
            dates = [d for d in r.json() if d["available_seats"] > 0] if r.status_code == 200 else []
        if not dates:
            seen["sold out"] += 1
            metric("sold out")
            return None
        date = random.choice(dates)
        for _ in range(3):
            if random.random() < 0.5:
                with self.client.get(f"/api/v1/schedules/{date['id']}/seats", headers=bearer(token),
                                     name="/api/v1/schedules/[id]/seats") as r:
                    free = [s["seat_number"] for s in r.json() if s["status"] == "AVAILABLE"]
                if not free:
                    break
                pick = random.sample(free, min(len(free), random.choice((1, 2))))
                body: dict[str, Any] = {"schedule_id": date["id"], "seat_numbers": pick}
            else:
                body = {"schedule_id": date["id"], "quantity": random.choice((1, 2))}
            with self.client.post("/api/v1/reservations", json=body, headers=bearer(token),
                                  name="/api/v1/reservations", catch_response=True) as r:
                if r.status_code == 201:
                    return r.json()  # type: ignore[no-any-return]
                code = _code(r)
                if code in ("seat_unavailable", "seat_limit"):
                    r.success()  # an expected conflict, counted below
                    seen[f"conflict: {code}"] += 1
                    metric(f"conflict: {code}")
                    continue
                r.failure(f"hold answered {r.status_code} {code}")
                return None
        seen["sold out"] += 1
        metric("sold out")
        return None

    def pay(self, token: str, reservation: dict[str, Any]) -> bool:
        total = reservation["total_price"]
        with self.client.get("/api/v1/balance", headers=bearer(token), name="/api/v1/balance") as r:
            balance = r.json()["balance"] if r.status_code == 200 else 0
        if balance < total:
            with self.client.post("/api/v1/balance/charges", json={"amount": total - balance},
                                  headers=bearer(token), name="/api/v1/balance/charges") as r:
                if r.status_code == 201:
                    seen["charged"] += total - balance
        headers = {**bearer(token), "Idempotency-Key": uuid.uuid4().hex}
        with self.client.post("/api/v1/payments", json={"reservation_id": reservation["id"]},
                              headers=headers, name="/api/v1/payments", catch_response=True) as r:
            if r.status_code == 201:
                seen["paid"] += r.json()["amount"]
                seen["seats bought"] += len(reservation["seats"])
                return True
            code = _code(r)
            if code in ("hold_expired", "token_expired"):
                r.success()
                seen[f"conflict: {code}"] += 1
                return False
            r.failure(f"payment answered {r.status_code} {code}")
            return False

    def book(self, token: str, concert: int, admitted_at: float, cycles: int = 1) -> None:
        """Hold (sometimes release and hold again), then pay."""
        reservation = None
        for _ in range(cycles):
            reservation = self.hold(token, concert)
            if reservation is None:
                return
            if random.random() < RELEASE:
                self.client.delete(f"/api/v1/reservations/{reservation['id']}", headers=bearer(token),
                                   name="/api/v1/reservations/[id]")
                seen["released"] += 1
                reservation = None
        if reservation is None:
            reservation = self.hold(token, concert)
        if reservation is not None and self.pay(token, reservation):
            metric("admission to payment", (time.time() - admitted_at) * 1000)


    def poll_then_book(self, cycles: int) -> None:
        """Join, wait by polling, then book (holding `cycles` times) and pay."""
        concert = random.choice(concerts)
        joined = self.join(new_user_id(), concert)
        if not joined:
            return
        start = time.time()
        if self.poll_until_admitted(joined["token"], start + MAX_WAIT) is None:
            return
        metric("time to admission", (time.time() - start) * 1000)
        self.book(joined["token"], concert, time.time(), cycles=cycles)


def _code(response: Any) -> str:
    try:
        return str(response.json().get("code"))
    except (ValueError, AttributeError):
        return f"http {response.status_code}"


class Waiter(Person):
    """Joins, holds the WebSocket until admitted, then books and pays. Some give up, some close
    the tab and come back with the same user id (and so the same token and place)."""

    weight = 6

    @task
    def queue_and_buy(self) -> None:
        concert, user_id = random.choice(concerts), new_user_id()
        joined = self.join(user_id, concert)
        if not joined:
            return
        start, token = time.time(), joined["token"]
        roll = random.random()
        if roll < GIVE_UP:
            self.wait_on_socket(token, time.time() + random.uniform(1, 5))
            left = self.client.delete("/api/v1/queue", headers=bearer(token), name="/api/v1/queue")
            if left.status_code == 204:
                seen["gave up"] += 1
            return
        if roll < GIVE_UP + COME_BACK:
            admitted = self.wait_on_socket(token, time.time() + random.uniform(1, 3))
            if admitted is None:
                gevent.sleep(random.uniform(1, 4))  # the tab is closed
                again = self.join(user_id, concert)
                if again.get("token") != token:
                    metric("came back", error=AssertionError("came back to a different token"))
                    return
                seen["came back"] += 1
        admitted = self.wait_on_socket(token, start + MAX_WAIT)
        if admitted is None:
            return
        metric("time to admission", (time.time() - start) * 1000)
        self.book(token, concert, time.time())


class PollingWaiter(Person):
    """Waits by polling GET /api/v1/queue: the fallback when WebSockets are blocked."""

    weight = 2

    @task
    def poll_and_buy(self) -> None:
        self.poll_then_book(cycles=1)


class BookingClient(Person):
    """Gets an admitted token, then holds, releases and holds again before paying."""

    weight = 2

    @task
    def book_hard(self) -> None:
        self.poll_then_book(cycles=random.randint(1, 3))


class SaleShape(LoadTestShape):
    """WR_SHAPE=flash: WR_USERS people arrive within WR_RAMP seconds and stay until WR_DURATION.
    WR_SHAPE=steady: a steady stream, one new person every 1/WR_RATE seconds up to WR_USERS.
    Unset: the command line's -u, -r and -t as usual."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        kind = os.environ.get("WR_SHAPE", "")
        opts = self.runner.environment.parsed_options if self.runner else None
        users = int(os.environ.get("WR_USERS", getattr(opts, "num_users", None) or 100))
        duration = float(os.environ.get("WR_DURATION", getattr(opts, "run_time", None) or 60))
        run = self.get_run_time()  # type: ignore[no-untyped-call]  # unannotated in locust
        if run > duration:
            return None
        if kind == "flash":
            ramp = float(os.environ.get("WR_RAMP", "10"))
            return users, users / ramp
        if kind == "steady":
            rate = float(os.environ.get("WR_RATE", "5"))
            return min(users, int(run * rate) + 1), rate
        return users, float(getattr(opts, "spawn_rate", None) or users)


@events.test_stop.add_listener  # type: ignore[untyped-decorator]  # unannotated in locust
def audit(environment: Environment, **_: Any) -> None:
    """The end of a run: what this run saw, and the server's own invariant check."""
    print("\nwhat this run saw:", dict(seen))
    if environment.host is None:
        return
    import urllib.error
    import urllib.request

    request = urllib.request.Request(environment.host.rstrip("/") + "/admin/audit",
                                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            report = json.load(r)
    except (urllib.error.URLError, OSError, ValueError) as e:
        print(f"audit unavailable: {e}")
        environment.process_exit_code = 2
        return
    print("server audit:", json.dumps(report, indent=2))
    if not report.get("ok"):
        print("AUDIT FAILED: an invariant is broken")
        environment.process_exit_code = 3
