"""The HTTP API of the waiting room: answers, errors as problems, admin, operations."""

from __future__ import annotations

from typing import Any

import aiohttp
import asyncpg
import pytest
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from tests.conftest import AddConcert, AppClient, MakeSettings, admin_headers, bearer
from waitingroom.queue import Queues
from waitingroom.settings import Settings

PROBLEM = "application/problem+json"
UNKNOWN = "8e0b7a2c-6a5d-4c1e-9d0f-3f1b2a4c5d6e"


async def queue_keys(redis: Redis) -> list[bytes | str]:
    """Every key a join writes (the web processes' leases aside)."""
    return [k for k in await redis.keys("*") if k != b"wr:procs"]


async def assert_problem(resp: aiohttp.ClientResponse, status: int, code: str,
                         field: str | None = None) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == PROBLEM
    body: dict[str, Any] = await resp.json()
    assert body["status"] == status and body["code"] == code
    assert body["title"] and body["detail"] and body["type"].endswith(code)
    if field is not None:
        assert body.get("field") == field
    return body


async def test_concerts_list_with_queue_figures(client: AppClient, add_concert: AddConcert,
                                                queues: Queues) -> None:
    cid = await add_concert("Aurora", "Arena")
    await queues.configure(cid, admit_rate=3.5, paused=True)
    await client.post(f"/api/v1/concerts/{cid}/queue", json={"user_id": 5})
    resp = await client.get("/api/v1/concerts")
    assert resp.status == 200
    assert await resp.json() == [{"id": cid, "name": "Aurora", "host": "Arena", "queue": {
        "waiting": 1, "active": 0, "admit_rate": 3.5, "paused": True, "sold_out": False}}]


async def test_join_answers_and_rejoin(client: AppClient, add_concert: AddConcert) -> None:
    cid = await add_concert()
    resp = await client.post(f"/api/v1/concerts/{cid}/queue", json={"user_id": 42})
    assert resp.status == 201
    body = await resp.json()
    assert body["state"] == "WAITING" and body["position"] == 1 and body["expires_at"] is None
    assert body["eta_seconds"] == 1  # default rate 10/s
    assert body["ws_url"].endswith(f"/ws/queue?token={body['token']}")
    again = await client.post(f"/api/v1/concerts/{cid}/queue", json={"user_id": 42})
    assert again.status == 200 and (await again.json())["token"] == body["token"]


async def test_poll_and_leave(client: AppClient, add_concert: AddConcert) -> None:
    cid = await add_concert()
    token = (await (await client.post(f"/api/v1/concerts/{cid}/queue", json={"user_id": 1})).json())["token"]
    resp = await client.get("/api/v1/queue", headers=bearer(token))
    assert await resp.json() == {"state": "WAITING", "position": 1, "eta_seconds": 1,
                                 "expires_at": None, "concert_id": cid, "reason": None,
                                 "sold_out": False, "eta_range": [0, 1]}
    assert (await client.delete("/api/v1/queue", headers=bearer(token))).status == 204
    assert (await client.delete("/api/v1/queue", headers=bearer(token))).status == 204
    resp = await client.get("/api/v1/queue", headers=bearer(token))
    assert resp.status == 200
    body = await resp.json()
    assert (body["state"], body["reason"], body["position"]) == ("EXPIRED", "left", None)


@pytest.mark.parametrize("body, field", [
    (b'{"user_id": "7"}', "user_id"),
    (b'{"user_id": 7.5}', "user_id"),
    (b'{"user_id": 0}', "user_id"),
    (b'{"user_id": -3}', "user_id"),
    (b'{"user_id": 9223372036854775808}', "user_id"),
    (b'{"user_id": 123456789012345678901234567890}', "user_id"),
    (b'{"user_id": true}', "user_id"),
    (b'{"user_id": null}', "user_id"),
    (b'{"identity": ""}', "identity"),
    (b'{"identity": 5}', "identity"),
    (b'{"user_id": 1, "admin": true}', "admin"),
    (b'{"user_id": 1', None),
    (b'', None),
    (b'[1]', None),
    (b'"hi"', None),
    (b'\xff\xfe', None),
])
async def test_join_bad_bodies_are_400_and_write_nothing(client: AppClient, add_concert: AddConcert,
                                                         redis: Redis, body: bytes,
                                                         field: str | None) -> None:
    cid = await add_concert()
    resp = await client.post(f"/api/v1/concerts/{cid}/queue", data=body,
                             headers={"Content-Type": "application/json"})
    await assert_problem(resp, 400, "validation_error", field)
    assert await queue_keys(redis) == []


async def test_join_other_media_types_and_sizes(client: AppClient, add_concert: AddConcert,
                                                redis: Redis) -> None:
    cid = await add_concert()
    resp = await client.post(f"/api/v1/concerts/{cid}/queue", data=b'{"user_id": 1}',
                             headers={"Content-Type": "text/plain"})
    await assert_problem(resp, 415, "unsupported_media_type")
    resp = await client.post(f"/api/v1/concerts/{cid}/queue", data=b"user_id=1")
    await assert_problem(resp, 415, "unsupported_media_type")
    huge = b'{"user_id": 1, "x": "' + b"a" * 200_000 + b'"}'
    resp = await client.post(f"/api/v1/concerts/{cid}/queue", data=huge,
                             headers={"Content-Type": "application/json"})
    await assert_problem(resp, 413, "payload_too_large")
    assert await queue_keys(redis) == []


@pytest.mark.parametrize("concert", ["0", "-1", "abc", "1.5", "9223372036854775808", "١"])
async def test_join_bad_concert_ids(client: AppClient, concert: str, redis: Redis) -> None:
    resp = await client.post(f"/api/v1/concerts/{concert}/queue", json={"user_id": 1})
    await assert_problem(resp, 400, "validation_error", "concert_id")
    assert await queue_keys(redis) == []


async def test_join_unknown_concert_is_404(client: AppClient, redis: Redis) -> None:
    resp = await client.post("/api/v1/concerts/999/queue", json={"user_id": 1})
    await assert_problem(resp, 404, "not_found")
    assert await queue_keys(redis) == []


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("headers, code", [
    ({}, "token_missing"),
    ({"Authorization": "Bearer"}, "token_invalid"),
    ({"Authorization": "Basic abc"}, "token_invalid"),
    ({"Authorization": "Bearer not-a-uuid"}, "token_invalid"),
    ({"Authorization": "Bearer " + "x" * 5000}, "token_invalid"),
    ({"Authorization": f"Bearer {UNKNOWN}"}, "token_invalid"),
])
async def test_token_errors(client: AppClient, method: str, headers: dict[str, str], code: str) -> None:
    resp = await client.request(method, "/api/v1/queue", headers=headers)
    await assert_problem(resp, 401, code)


async def test_framework_errors_are_problems(client: AppClient) -> None:
    await assert_problem(await client.get("/nope"), 404, "not_found")
    resp = await client.put("/api/v1/concerts")
    await assert_problem(resp, 405, "method_not_allowed")
    assert "GET" in resp.headers["Allow"]


async def test_admin_figures_and_patch(client: AppClient, settings: Settings, add_concert: AddConcert,
                                       queues: Queues) -> None:
    cid = await add_concert()
    for u in (1, 2, 3):
        await queues.join(cid, u)
    resp = await client.get(f"/admin/concerts/{cid}/queue", headers=admin_headers(settings))
    assert await resp.json() == {"concert_id": cid, "waiting": 3, "active": 0, "admitted_total": 0,
                                 "dropped_total": 0, "admit_rate": 10.0, "max_active": 1000,
                                 "paused": False, "admission_mode": "fixed", "chosen_rate": 10.0,
                                 "rate_reason": "configured", "rate_detail": "10/s as configured",
                                 "opens_at": None,
                                 "eta_error": {"median": None, "p90": None, "samples": 0}}
    resp = await client.patch(f"/admin/concerts/{cid}/queue", headers=admin_headers(settings),
                              json={"admit_rate": 2.5, "max_active": 7, "paused": True})
    body = await resp.json()
    assert (body["admit_rate"], body["max_active"], body["paused"]) == (2.5, 7, True)
    resp = await client.patch(f"/admin/concerts/{cid}/queue", headers=admin_headers(settings),
                              json={"paused": False})
    body = await resp.json()
    assert (body["admit_rate"], body["max_active"], body["paused"]) == (2.5, 7, False)


@pytest.mark.parametrize("body, field", [
    ({"admit_rate": -1}, "admit_rate"),
    ({"admit_rate": "fast"}, "admit_rate"),
    ({"admit_rate": 1e9}, "admit_rate"),
    ({"max_active": 1.5}, "max_active"),
    ({"max_active": -1}, "max_active"),
    ({"paused": 1}, "paused"),
    ({"paused": "yes"}, "paused"),
    ({"rate": 3}, "rate"),
])
async def test_admin_patch_bad_input_changes_nothing(client: AppClient, settings: Settings,
                                                     add_concert: AddConcert, queues: Queues,
                                                     body: dict[str, object], field: str | None) -> None:
    cid = await add_concert()
    resp = await client.patch(f"/admin/concerts/{cid}/queue", headers=admin_headers(settings), json=body)
    await assert_problem(resp, 400, "validation_error", field)
    assert await queues.redis.hgetall(f"wr:{{c:{cid}}}:cfg") == {}


async def test_admin_needs_the_key(client: AppClient, add_concert: AddConcert) -> None:
    cid = await add_concert()
    await assert_problem(await client.get(f"/admin/concerts/{cid}/queue"), 401, "admin_unauthorized")
    resp = await client.patch(f"/admin/concerts/{cid}/queue", json={"paused": True},
                              headers={"Authorization": "Bearer wrong"})
    await assert_problem(resp, 401, "admin_unauthorized")
    resp = await client.get("/admin/concerts/999/queue", headers={"Authorization": "Bearer test-admin"})
    await assert_problem(resp, 404, "not_found")


async def test_admin_off_without_a_key(aiohttp_client: AiohttpClient, make_settings: MakeSettings,
                                       add_concert: AddConcert) -> None:
    from waitingroom.app import create_app

    client = await aiohttp_client(create_app(make_settings(admin_token=None)))
    cid = await add_concert()
    resp = await client.get(f"/admin/concerts/{cid}/queue", headers={"Authorization": "Bearer x"})
    await assert_problem(resp, 404, "not_found")


async def test_operations_endpoints(client: AppClient, add_concert: AddConcert) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    cid = await add_concert()
    await client.post(f"/api/v1/concerts/{cid}/queue", json={"user_id": 1})
    for user in (2, 3):  # two who leave
        joined = await (await client.post(f"/api/v1/concerts/{cid}/queue",
                                          json={"user_id": user})).json()
        assert (await client.delete("/api/v1/queue", headers=bearer(joined["token"]))).status == 204
    await client.get("/api/v1/queue")  # a problem: token_missing
    text = await (await client.get("/metrics")).text()
    assert 'waitingroom_joins_total{result="new"} 3.0' in text
    assert f'waitingroom_queue_ended_total{{concert_id="{cid}",reason="left"}} 2.0' in text
    assert f'waitingroom_queue_ended_total{{concert_id="{cid}",reason="timeout"}} 0.0' in text
    assert 'waitingroom_store_connections_opened_total{store="redis"}' in text
    assert 'waitingroom_store_errors_total{store="postgres"}' in text
    assert "waitingroom_sockets 0.0" in text
    assert f'waitingroom_queue_waiting{{concert_id="{cid}"}} 1.0' in text
    assert f'waitingroom_queue_sold_out{{concert_id="{cid}"}} 0.0' in text
    assert 'waitingroom_problems_total{code="token_missing"} 1.0' in text
    assert ('waitingroom_http_request_duration_seconds_count{method="POST",'
            'route="/api/v1/concerts/{concert_id}/queue",status="201"} 3.0') in text
    assert ('waitingroom_http_request_duration_seconds_bucket{le="+Inf",method="POST",'
            'route="/api/v1/concerts/{concert_id}/queue",status="201"} 3.0') in text
    assert 'waitingroom_pg_connections{state="in_use"}' in text


async def test_a_redirect_carries_the_safety_headers(aiohttp_client: AiohttpClient,
                                                     make_settings: MakeSettings) -> None:
    """A handler may answer by raising a redirect: it passes the edge like any answer."""
    from aiohttp import web

    from waitingroom.app import create_app

    app = create_app(make_settings())

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/")

    app.router.add_get("/moved", moved)
    client = await aiohttp_client(app)
    resp = await client.get("/moved", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/"
    assert resp.headers["X-Frame-Options"] == "DENY" and resp.headers["Server"] == "waitingroom"
    assert len(resp.headers["X-Request-Id"]) == 16


async def test_request_durations_are_a_bounded_histogram(client: AppClient) -> None:
    """Buckets count up to the total; the methods a route never takes (HTTP has dozens) are
    one label, "other"."""
    for method in ("GET", "PROPFIND", "MKCOL", "GET"):
        await client.request(method, "/healthz")
    lines = (await (await client.get("/metrics")).text()).splitlines()
    name = "waitingroom_http_request_duration_seconds"

    def values(kind: str, method: str, status: int, route: str = "/healthz") -> list[float]:
        labels = f'method="{method}",route="{route}",status="{status}"'
        return [float(line.rpartition(" ")[2]) for line in lines
                if line.startswith(f"{name}_{kind}{{") and labels in line]

    buckets = values("bucket", "GET", 200)
    assert len(buckets) == 12 and buckets == sorted(buckets) and buckets[-1] == 2.0
    assert values("count", "GET", 200) == [2.0] and 0 < values("sum", "GET", 200)[0] < 5
    assert values("count", "other", 405, "unmatched") == [2.0]  # refused before any route
    assert not [line for line in lines if "PROPFIND" in line or "MKCOL" in line]


async def test_redis_down_is_503_not_500(aiohttp_client: AiohttpClient, make_settings: MakeSettings,
                                         add_concert: AddConcert) -> None:
    from waitingroom.app import create_app
    from waitingroom.servers import free_port

    client = await aiohttp_client(create_app(make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")))
    cid = await add_concert()
    resp = await client.post(f"/api/v1/concerts/{cid}/queue", json={"user_id": 1})
    await assert_problem(resp, 503, "service_unavailable")
    resp = await client.get("/api/v1/queue", headers=bearer(UNKNOWN))
    await assert_problem(resp, 503, "service_unavailable")
    await assert_problem(await client.get("/readyz"), 503, "service_unavailable")
    assert (await client.get("/healthz")).status == 200


async def test_join_without_a_name_needs_an_identity(client: AppClient, add_concert: AddConcert,
                                                    redis: Redis) -> None:
    cid = await add_concert()
    resp = await client.post(f"/api/v1/concerts/{cid}/queue", json={})
    await assert_problem(resp, 401, "identity_required")
    assert await queue_keys(redis) == []


async def test_limits_come_from_the_settings(aiohttp_client: AiohttpClient, make_settings: MakeSettings,
                                             pg: asyncpg.Pool, redis: Redis) -> None:
    from waitingroom.app import create_app

    client = await aiohttp_client(create_app(make_settings(active_ttl=420, wait_grace=45,
                                                          max_seats_per_user=6, hold_ttl=90)))
    resp = await client.get("/api/v1/limits")
    assert resp.status == 200
    assert await resp.json() == {"charge_min": 1, "charge_max": 10_000_000, "max_seats_per_user": 6,
                                 "hold_ttl_seconds": 90, "active_ttl_seconds": 420,
                                 "wait_grace_seconds": 45}


def test_the_dashboard_asks_only_for_metrics_that_exist() -> None:
    import json
    import re
    from pathlib import Path

    from waitingroom.metrics import Metrics

    dashboard = json.loads((Path(__file__).parent.parent / "deploy" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"waitingroom_[a-z_]+", e)}
    known = {m.name for m in Metrics().registry.collect()}
    suffixes = ("_total", "_bucket", "_count", "_sum")
    missing = {u for u in used if u not in known and not any(
        u.endswith(s) and u.removesuffix(s) in known for s in suffixes)}
    assert missing == set() and len(dashboard["panels"]) >= 10
