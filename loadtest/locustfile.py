"""Locust scenarios for the waiting room: people who queue, wait, give up, come back, book and pay.

Headless against `scripts/dev` (see loadtest/README.md for more):

    .venv/bin/locust -f loadtest/locustfile.py --headless -H http://127.0.0.1:8080 \
        -u 300 -r 50 -t 1m

Environment: WR_ADMIN_TOKEN (the admin key, for the end-of-run audit; default `dev-admin`),
WR_CONCERTS (comma-separated concert ids; default: every concert listed by the API),
WR_SHAPE (`flash` or `steady`; unset: plain -u/-r/-t), WR_USERS, WR_RAMP, WR_DURATION,
WR_IDENTITY_SECRET (sign identities here, as the selling site would; unset: each person signs in
through the gateway's demo sign-in, POST /dev/identity, which `waitingroom dev` offers).
WR_CHAOS=1 (what `python -m loadtest.chaos` sets while it restarts Redis, PostgreSQL and a web
process under the run): a dropped connection or socket is retried as a browser would, not
counted as a failure; the host must be on 127.0.0.1.
In every mode a person answers the contract as a careful client does: a `503` or `429` with
`Retry-After` is waited out and tried again (for up to WR_RETRY_FOR seconds, default 30), a
socket closed with 1001, 1011 or 1013 is opened again with the same token, and it must show the
same place or a better one. Counted as failures: any 5xx but such a 503, any error answer that is
not problem+json, a live token that the gateway no longer knows, a place that went up.
Each person sends its own made-up X-Forwarded-For address: run the gateway with
TRUSTED_PROXIES=127.0.0.1/32 for the per-address join limit to see many people, not one.
Only gevent-friendly blocking code here: locust patches sockets, so websocket-client cooperates.
"""

from __future__ import annotations

import json
import os
import random
import struct
import time
import uuid
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

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
CHAOS = os.environ.get("WR_CHAOS") == "1"
RETRY_FOR = float(os.environ.get("WR_RETRY_FOR", "30"))  # longest a person retries a 503
SUMMARY = os.environ.get("WR_SUMMARY")  # where to write the run's summary as JSON
# Close codes after which the same token is used again (contract: the place is kept).
RECONNECT_CODES = {1001, 1011, 1013}

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


def broken(response: Any) -> str | None:
    """Why an answer is outside the contract, or None."""
    status = response.status_code
    if status == 0:
        return None if CHAOS else f"no answer: {response.error}"
    if status < 400:
        return None
    if not response.headers.get("Content-Type", "").startswith("application/problem+json"):
        return f"{status} without a problem+json body"
    if status >= 500 and not (status == 503 and response.headers.get("Retry-After")):
        return f"{status} {_code(response)}"
    return None


def retry_after(response: Any) -> float | None:
    """How long to wait before asking again, when the answer says to (or the connection broke
    while servers restart); None when it is an answer to act on."""
    if response.status_code == 0:
        return 1.0
    if response.status_code in (429, 503) and response.headers.get("Retry-After"):
        return float(response.headers["Retry-After"])
    return None


class Person(FastHttpUser):
    """Shared steps: join, wait, book, pay."""

    abstract = True
    wait_time = between(0.5, 2)

    def on_start(self) -> None:
        self.address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
        if not concerts:
            r = self.call("GET", "/api/v1/concerts", "/api/v1/concerts")
            wanted = os.environ.get("WR_CONCERTS")
            ids = [c["id"] for c in r.json()] if r is not None else []
            concerts.extend(int(c) for c in wanted.split(",")) if wanted else concerts.extend(ids)

    def call(self, method: str, path: str, name: str, ok: tuple[str, ...] = (),
             **kwargs: Any) -> Any | None:
        """The answer as a careful client gets it: `Retry-After` waited out and asked again.
        None (and a failure) when the answer breaks the contract or is an error not in `ok`
        (problem codes the caller expects, such as `seat_unavailable`)."""
        deadline = time.time() + RETRY_FOR
        kwargs["headers"] = {"X-Forwarded-For": self.address, **kwargs.get("headers", {})}
        while True:
            with self.client.request(method, path, name=name, catch_response=True, **kwargs) as r:
                why, wait = broken(r), retry_after(r)
                if why is not None:
                    r.failure(why)
                    return None
                if wait is not None:
                    kind = "no answer" if r.status_code == 0 else f"{r.status_code} {_code(r)}"
                    if time.time() + wait > deadline:
                        r.failure(f"still {kind} after {RETRY_FOR:.0f} s")
                        return None
                    r.success()
                    seen[f"retried: {kind}"] += 1
                    metric(f"retried: {kind}")
                elif r.status_code < 400 or _code(r) in ok:
                    r.success()
                    return r
                else:
                    r.failure(f"{name} answered {r.status_code} {_code(r)}")
                    return None
            gevent.sleep(wait)

    def identity(self, user_id: int) -> str | None:
        """A signed identity for this user: minted here, or from the demo sign-in."""
        if IDENTITY_SECRET:
            return jwt.encode({"sub": str(user_id), "exp": int(time.time()) + 3600},
                              IDENTITY_SECRET, algorithm="HS256")
        r = self.call("POST", "/dev/identity", "/dev/identity", json={"user_id": user_id})
        return None if r is None else str(r.json()["identity"])

    def join(self, user_id: int, concert: int) -> dict[str, Any]:
        identity = self.identity(user_id)
        if identity is None:
            return {}
        r = self.call("POST", f"/api/v1/concerts/{concert}/queue", "/api/v1/concerts/[id]/queue",
                      json={"identity": identity})
        return {} if r is None else r.json()

    def ws_url(self, token: str) -> str:
        # FastHttpUser refuses to start without a host, so there is one by now.
        assert self.host is not None
        return self.host.replace("http", "ws", 1).rstrip("/") + f"/ws/queue?token={token}"

    def wait_on_socket(self, token: str, until: float) -> dict[str, Any] | None:
        """Hold the WebSocket until admitted (the admitted frame) or until the deadline; open it
        again with the same token when the server asks (1001, 1011, 1013) or, in chaos mode,
        when the connection drops, and check that the place it shows is no worse."""
        place: int | None = None
        while time.time() < until:
            try:
                ws = websocket.create_connection(self.ws_url(token), timeout=5)
            except (OSError, websocket.WebSocketException) as e:
                if not CHAOS:
                    metric("ws connect", error=e)
                    return None
                seen["ws reconnect: no answer"] += 1
                gevent.sleep(1)
                continue
            try:
                outcome, place = self._read_socket(ws, until, place)
            finally:
                ws.close()
            if outcome != "again":
                return outcome if isinstance(outcome, dict) else None
            gevent.sleep(random.uniform(0.5, 1.5))  # backoff, as the pages do
        return None

    def _read_socket(self, ws: websocket.WebSocket, until: float, place: int | None
                     ) -> tuple[dict[str, Any] | str | None, int | None]:
        """Frames until admitted ({frame}), done (None) or to be opened again ("again")."""
        while time.time() < until:
            try:
                opcode, frame = ws.recv_data_frame(True)
            except websocket.WebSocketTimeoutException:
                continue
            except (OSError, websocket.WebSocketException) as e:
                if CHAOS:
                    seen["ws reconnect: dropped"] += 1
                    return "again", place
                metric("ws dropped", error=e)
                return None, place
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = struct.unpack("!H", frame.data[:2])[0] if len(frame.data) >= 2 else 1005
                if code in RECONNECT_CODES:
                    seen[f"ws reconnect: {code}"] += 1
                    metric(f"ws closed {code}")
                    return "again", place
                if code != 4410:  # 4410 follows an expired frame, counted there
                    metric(f"ws closed {code}", error=AssertionError(f"socket closed with {code}"))
                return None, place
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue
            raw = frame.data.decode()
            message = json.loads(raw)
            metric(f"ws frame: {message['type']}", length=len(raw))
            if message["type"] == "position":
                if place is not None and message["position"] > place:
                    metric("place kept", error=AssertionError(
                        f"position went up from {place} to {message['position']}"))
                place = message["position"]
            if message["type"] == "admitted":
                return message, place
            if message["type"] == "expired":
                seen[f"expired: {message['reason']}"] += 1
                return None, place
        return None, place

    def poll_until_admitted(self, token: str, until: float) -> dict[str, Any] | None:
        while time.time() < until:
            r = self.call("GET", "/api/v1/queue", "/api/v1/queue", headers=bearer(token))
            if r is None:
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
        r = self.call("GET", f"/api/v1/concerts/{concert}/schedules",
                      "/api/v1/concerts/[id]/schedules", headers=bearer(token))
        dates = [d for d in r.json() if d["available_seats"] > 0] if r is not None else []
        if not dates:
            seen["sold out"] += 1
            metric("sold out")
            return None
        date = random.choice(dates)
        for _ in range(3):
            if random.random() < 0.5:
                r = self.call("GET", f"/api/v1/schedules/{date['id']}/seats",
                              "/api/v1/schedules/[id]/seats", headers=bearer(token))
                seats = r.json() if r is not None else []
                free = [s["seat_number"] for s in seats if s["status"] == "AVAILABLE"]
                if not free:
                    break
                pick = random.sample(free, min(len(free), random.choice((1, 2))))
                body: dict[str, Any] = {"schedule_id": date["id"], "seat_numbers": pick}
            else:
                body = {"schedule_id": date["id"], "quantity": random.choice((1, 2))}
            r = self.call("POST", "/api/v1/reservations", "/api/v1/reservations",
                          ok=("seat_unavailable", "seat_limit"), json=body, headers=bearer(token))
            if r is None:
                return None
            if r.status_code == 201:
                return r.json()  # type: ignore[no-any-return]
            code = _code(r)  # an expected conflict, counted here
            seen[f"conflict: {code}"] += 1
            metric(f"conflict: {code}")
        seen["sold out"] += 1
        metric("sold out")
        return None

    def pay(self, token: str, reservation: dict[str, Any]) -> bool:
        total = reservation["total_price"]
        r = self.call("GET", "/api/v1/balance", "/api/v1/balance", headers=bearer(token))
        balance = r.json()["balance"] if r is not None else 0
        if balance < total:
            r = self.call("POST", "/api/v1/balance/charges", "/api/v1/balance/charges",
                          json={"amount": total - balance}, headers=bearer(token))
            if r is not None:
                seen["charged"] += total - balance
        # One key for the payment, kept across retries: a payment whose answer was lost to a
        # restart is asked about again, never made twice.
        headers = {**bearer(token), "Idempotency-Key": uuid.uuid4().hex}
        r = self.call("POST", "/api/v1/payments", "/api/v1/payments",
                      ok=("hold_expired", "token_expired", "idempotency_in_progress"),
                      json={"reservation_id": reservation["id"]}, headers=headers)
        for _ in range(10):
            if r is None or _code(r) != "idempotency_in_progress":
                break
            gevent.sleep(1)
            r = self.call("POST", "/api/v1/payments", "/api/v1/payments",
                          ok=("hold_expired", "token_expired", "idempotency_in_progress"),
                          json={"reservation_id": reservation["id"]}, headers=headers)
        if r is None:
            return False
        if r.status_code == 201:
            seen["paid"] += r.json()["amount"]
            seen["seats bought"] += len(reservation["seats"])
            return True
        seen[f"conflict: {_code(r)}"] += 1
        return False

    def book(self, token: str, concert: int, admitted_at: float, cycles: int = 1) -> None:
        """Hold (sometimes release and hold again), then pay."""
        reservation = None
        for _ in range(cycles):
            reservation = self.hold(token, concert)
            if reservation is None:
                return
            if random.random() < RELEASE:
                if self.call("DELETE", f"/api/v1/reservations/{reservation['id']}",
                             "/api/v1/reservations/[id]", headers=bearer(token)) is not None:
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
            left = self.call("DELETE", "/api/v1/queue", "/api/v1/queue", headers=bearer(token))
            if left is not None:
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


@events.test_start.add_listener  # type: ignore[untyped-decorator]  # unannotated in locust
def loopback_only(environment: Environment, **_: Any) -> None:
    """Chaos runs send traffic to this machine's own servers, nowhere else."""
    if CHAOS and urlsplit(environment.host or "").hostname != "127.0.0.1":
        raise SystemExit(f"WR_CHAOS=1 runs only against 127.0.0.1, not {environment.host}")


@events.test_stop.add_listener  # type: ignore[untyped-decorator]  # unannotated in locust
def audit(environment: Environment, **_: Any) -> None:
    """The end of a run: what this run saw, and the server's own invariant check."""
    print("\nwhat this run saw:", dict(seen))
    report = _server_audit(environment)
    if report is not None and not report.get("ok"):
        print("AUDIT FAILED: an invariant is broken")
        environment.process_exit_code = 3
    if SUMMARY:
        total = environment.stats.total
        failures = {f"{e.method} {e.name}: {e.error}": e.occurrences
                    for e in environment.stats.errors.values()}
        with open(SUMMARY, "w") as f:
            crashes = len(environment.runner.exceptions) if environment.runner else 0
            json.dump({"seen": dict(seen), "requests": total.num_requests,
                       "failures": failures, "exceptions": crashes, "audit": report}, f, indent=2)


def _server_audit(environment: Environment) -> dict[str, Any] | None:
    if environment.host is None:
        return None
    import urllib.error
    import urllib.request

    request = urllib.request.Request(environment.host.rstrip("/") + "/admin/audit",
                                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            report: dict[str, Any] = json.load(r)
    except (urllib.error.URLError, OSError, ValueError) as e:
        print(f"audit unavailable: {e}")
        environment.process_exit_code = 2
        return None
    print("server audit:", json.dumps(report, indent=2))
    return report
