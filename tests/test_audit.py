"""GET /admin/audit: the shop's invariants, as the end of a load test checks them."""

from __future__ import annotations

import asyncpg

from tests.conftest import AppClient, admin_headers
from waitingroom.settings import Settings


async def test_audit_of_an_empty_shop_is_ok(client: AppClient, settings: Settings) -> None:
    resp = await client.get("/admin/audit", headers=admin_headers(settings))
    body = await resp.json()
    assert resp.status == 200 and body["ok"] is True
    assert body["seats_sold"] == body["charged"] == body["paid"] == 0


async def test_audit_catches_a_balance_that_is_not_its_ledger(client: AppClient, settings: Settings,
                                                              pg: asyncpg.Pool) -> None:
    await pg.execute("INSERT INTO users (id) VALUES (7)")
    await pg.execute("INSERT INTO balances (user_id, balance) VALUES (7, 500)")
    await pg.execute("INSERT INTO balance_ledger (user_id, kind, amount, balance_after) "
                     "VALUES (7, 'CHARGE', 400, 400)")
    body = await (await client.get("/admin/audit", headers=admin_headers(settings))).json()
    assert body["ok"] is False
    assert (body["balances_off_ledger"], body["charged"], body["balances"]) == (1, 400, 500)


async def test_audit_needs_the_admin_key(client: AppClient) -> None:
    resp = await client.get("/admin/audit")
    assert resp.status == 401 and (await resp.json())["code"] == "admin_unauthorized"
