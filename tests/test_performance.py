"""The query analyzer and GET /api/health/performance: slow patterns, plan advice, access."""
from __future__ import annotations

import asyncio
import logging

import msgspec
import pytest
from conftest import bearer, error_of

from server.keys import POOL, QUERY_LOG

PERFORMANCE = "/api/health/performance"


async def reported(client) -> None:
    await asyncio.sleep(0)  # asyncpg reports each statement on the next loop turn
    await asyncio.sleep(0)


async def test_a_slow_statement_is_recorded_with_its_pattern(client, tokens, caplog):
    caplog.set_level(logging.WARNING, logger="serveline.sql")
    await client.app[POOL].fetchval("SELECT pg_sleep(0.12)")
    await reported(client)
    pattern = client.app[QUERY_LOG].pattern("SELECT pg_sleep(?)")
    assert pattern is not None and pattern.calls == 1
    assert pattern.slow == 1 and pattern.critical == 0 and pattern.max_ms >= 120
    warned = [r for r in caplog.records if r.name == "serveline.sql"]
    assert [r.levelname for r in warned] == ["WARNING"] and "SELECT pg_sleep(?)" in warned[0].getMessage()

    report = await (await client.get(PERFORMANCE, headers=bearer(await tokens("manager")))).json()
    slow = [p for p in report["queries"]["patterns"] if p["pattern"] == "SELECT pg_sleep(?)"]
    assert slow and slow[0]["slow"] == 1 and slow[0]["p95_ms"] >= 120
    assert report["queries"]["slow"] >= 1 and report["queries"]["slow_ms"] == 100


async def test_a_critical_statement_is_logged_as_an_error(make_client, config, caplog):
    client = await make_client(msgspec.structs.replace(config, critical_query_ms=110))
    caplog.set_level(logging.WARNING, logger="serveline.sql")
    await client.app[POOL].fetchval("SELECT pg_sleep(0.12)")
    await reported(client)
    assert client.app[QUERY_LOG].pattern("SELECT pg_sleep(?)").critical == 1
    assert [r.levelname for r in caplog.records if r.name == "serveline.sql"] == ["ERROR"]


async def test_a_slow_request_names_its_request_id(make_client, config, rid, caplog):
    client = await make_client(msgspec.structs.replace(config, slow_query_ms=0))
    caplog.set_level(logging.WARNING, logger="serveline.sql")
    login = await client.post("/api/v1/auth/login",
                              json={"email": "manager@demo.test", "password": "correct horse battery"})
    token = (await login.json())["token"]
    response = await client.get(f"/api/v1/restaurants/{rid}/orders?status=open",
                                headers={**bearer(token), "X-Request-Id": "slow-orders-1"})
    assert response.status == 200
    await reported(client)
    mine = [r for r in caplog.records if getattr(r, "request_id", None) == "slow-orders-1"]
    assert len(mine) == client.app[QUERY_LOG].statements_of("slow-orders-1") >= 2
    assert all("[slow-orders-1]" in r.getMessage() for r in mine)
    patterns = client.app[QUERY_LOG].top(50)
    assert any(p.last_slow_request_id == "slow-orders-1" for p in patterns)


async def test_the_report_has_every_part(client, rid, tokens, open_socket):
    manager = await tokens("manager")
    await client.get(f"/api/v1/restaurants/{rid}/menu", headers=bearer(manager))
    sock = await open_socket(rid, manager)
    await sock.send(type="subscribe", channels=["menu"])  # a socket joins its room on subscribing
    await sock.until("subscribed")
    response = await client.get(PERFORMANCE, headers=bearer(manager))
    assert response.status == 200
    report = await response.json()
    assert set(report) == {"routes", "queries", "pool", "cache", "websockets", "event_lag", "process"}
    menu = [r for r in report["routes"] if r["route"] == "/api/v1/restaurants/{rid}/menu"]
    assert menu and menu[0]["calls"] == 1 and 0 < menu[0]["p50_ms"] <= menu[0]["p99_ms"]
    assert report["queries"]["patterns"] and report["queries"]["critical_ms"] == 500
    assert report["pool"]["size"] >= 1 and report["pool"]["waiters"] == 0
    assert set(report["cache"]) == {"hits", "misses", "hit_ratio"}
    assert report["websockets"]["connections"] == 1
    assert {"restaurant_id": rid, "connections": 1} in report["websockets"]["restaurants"]
    assert set(report["event_lag"]) == {"samples", "p50_ms", "p95_ms", "max_ms"}
    assert report["process"]["rss_bytes"] > 10_000_000 and report["process"]["cpu_user_seconds"] > 0
    statements = report["queries"]["pg_stat_statements"]
    assert statements["available"] or statements["note"]
    await sock.close()


async def test_pg_stat_statements_installed_but_not_loaded_is_explained(client, db, tokens):
    await db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    report = await (await client.get(PERFORMANCE, headers=bearer(await tokens("owner")))).json()
    statements = report["queries"]["pg_stat_statements"]
    if not statements["available"]:  # the usual test cluster: not in shared_preload_libraries
        assert "shared_preload_libraries" in statements["note"] and statements["statements"] == []
    else:
        assert statements["statements"] and statements["note"] is None


async def test_a_sequential_scan_of_a_large_table_is_suggested(make_client, config, db, tokens):
    await db.execute("CREATE TABLE guest_notes (id bigint, restaurant_id bigint, note text)")
    await db.execute("INSERT INTO guest_notes SELECT g, g % 50, 'note ' || g "
                     "FROM generate_series(1, 20000) g")
    await db.execute("ANALYZE guest_notes")
    client = await make_client(msgspec.structs.replace(config, slow_query_ms=0))
    for _ in range(10):
        await client.app[POOL].fetchval("SELECT count(*) FROM guest_notes WHERE note = $1", "note 7")
    await reported(client)
    manager = bearer((await (await client.post("/api/v1/auth/login", json={
        "email": "manager@demo.test", "password": "correct horse battery"})).json())["token"])
    report = await (await client.get(PERFORMANCE, headers=manager)).json()
    scans = [s for s in report["queries"]["suggestions"] if s["table"] == "guest_notes"]
    assert scans
    assert scans[0]["rows"] >= 20_000 and "note" in scans[0]["filter"]
    assert scans[0]["pattern"] == "SELECT count(*) FROM guest_notes WHERE note = $1"
    assert scans[0]["advice"].startswith("Seq Scan on guest_notes")
    own = [p["pattern"] for p in report["queries"]["patterns"]
           if p["pattern"].startswith(("EXPLAIN", "PREPARE", "DEALLOCATE", "SET LOCAL"))]
    assert own == []  # the analyzer's own statements are not recorded


@pytest.mark.parametrize("role", ["host", "server", "kitchen"])
async def test_the_report_is_forbidden_to_staff_below_manager(client, tokens, role):
    response = await client.get(PERFORMANCE, headers=bearer(await tokens(role)))
    assert response.status == 403
    assert (await error_of(response))["code"] == "forbidden"


@pytest.mark.parametrize("role", ["manager", "owner"])
async def test_the_report_is_for_managers(client, tokens, role):
    assert (await client.get(PERFORMANCE, headers=bearer(await tokens(role)))).status == 200


async def test_the_report_needs_a_sign_in_and_refuses_api_keys(client, rid, tokens):
    assert (await client.get(PERFORMANCE)).status == 401
    key = await (await client.post(f"/api/v1/restaurants/{rid}/api-keys",
                                   headers=bearer(await tokens("owner")),
                                   json={"name": "Books", "scopes": ["read"]})).json()
    assert (await client.get(PERFORMANCE, headers=bearer(key["key"]))).status == 403
