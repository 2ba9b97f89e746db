"""The ops figures over a real server and database: sockets, delivery, LISTEN, pool, outbox, devices,
route and SQL timings, the process and the cache."""
from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from conftest import PASSWORD, bearer, error_of

from server.keys import HUB, POOL
from server.metrics import pool_report


async def ops_of(client, base: str, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(base + "/ops", headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def eventually(read: Callable[[], Awaitable[dict]], holds: Callable[[dict], bool],
                     seconds: float = 8.0) -> dict:
    """Read until `holds` is true of the answer (background work lands within seconds)."""
    async with asyncio.timeout(seconds):
        while not holds(answer := await read()):
            await asyncio.sleep(0.1)
    return answer


async def subscribed(open_socket, rid: int, token: str, channels: list[str]):
    sock = await open_socket(rid, token)
    await sock.send(type="subscribe", channels=channels)
    await sock.until("subscribed")
    return sock


async def test_a_subscribed_socket_is_counted_and_everything_is_healthy(client, tokens, rid, base,
                                                                      open_socket):
    manager = bearer(await tokens("manager"))
    before = await ops_of(client, base, manager)
    assert before["connections"] == {"restaurant": 0, "process": 0, "devices": 0, "by_role": {}}
    assert before["delivery"]["delivered"] is None and before["delivery"]["behind"] == 0

    sock = await subscribed(open_socket, rid, await tokens("manager"), ["manager", "orders"])
    ops = await ops_of(client, base, manager)
    assert ops["restaurant_id"] == rid
    assert ops["connections"] == {"restaurant": 1, "process": 1, "devices": 0, "by_role": {"manager": 1}}
    assert ops["delivery"] == {"seq": ops["delivery"]["seq"], "delivered": ops["delivery"]["seq"],
                               "behind": 0, "waiting_seconds": None, "delay_p95_ms": None}
    assert ops["listener"] == {"up": True, "reconnects": 0}
    pool = ops["pool"]
    assert pool["max"] == 10 and pool["min"] == 1 and pool["waiters"] == 0
    assert pool["in_use"] + pool["idle"] == pool["size"] <= pool["max"]
    assert ops["concerns"] == []
    assert ops["process"]["pid"] == os.getpid() and ops["process"]["uptime_seconds"] > 0
    await sock.close()
    gone = await eventually(lambda: ops_of(client, base, manager),
                            lambda o: o["connections"]["restaurant"] == 0)
    assert gone["connections"]["by_role"] == {}


async def test_the_outbox_counts_the_events_kept_and_dates_the_oldest(client, tokens, base, db, rid):
    owner = bearer(await tokens("owner"))
    for name in ("Pass", "Bar"):
        response = await client.post(base + "/devices", headers=owner,
                                     json={"name": name, "kind": "screen", "role": "kitchen"})
        assert response.status == 201
    outbox = (await ops_of(client, base, owner))["outbox"]
    kept = await db.fetchrow("SELECT count(*) AS n, min(seq) AS seq, min(at) AS at FROM events"
                             " WHERE restaurant_id = $1", rid)
    assert outbox["events_kept"] == kept["n"] >= 2
    assert outbox["oldest_seq"] == kept["seq"]
    assert outbox["oldest_at"].startswith(kept["at"].isoformat()[:19])
    assert outbox["retention_hours"] == 24.0


async def test_a_device_is_behind_until_its_receipts_are_written(client, tokens, rid, base, open_socket):
    manager = bearer(await tokens("manager"))
    registered = await (await client.post(base + "/devices", headers=manager, json={
        "name": "Grill screen", "kind": "screen", "role": "kitchen"})).json()
    ops = await ops_of(client, base, manager)
    assert ops["devices_behind"] == [{"id": registered["device"]["id"], "name": "Grill screen",
                                      "role": "kitchen", "online": False, "alert": None,
                                      "lag": ops["delivery"]["seq"]}]  # it has acknowledged nothing

    await subscribed(open_socket, rid, registered["token"], ["kitchen"])
    caught_up = await eventually(lambda: ops_of(client, base, manager),
                                 lambda o: o["devices_behind"] == [])  # receipts flush every 2 s
    assert caught_up["connections"]["devices"] == 1
    assert caught_up["connections"]["by_role"] == {"kitchen": 1}


async def test_events_left_undelivered_are_flagged_until_the_room_catches_up(client, tokens, rid, base,
                                                                           db, open_socket):
    manager = bearer(await tokens("manager"))
    sock = await subscribed(open_socket, rid, await tokens("manager"), ["manager"])
    # An event committed without its notification (a lost NOTIFY), written 10 s ago.
    await db.execute("""
        WITH counter AS (UPDATE restaurants SET seq = seq + 1 WHERE id = $1 RETURNING seq, epoch)
        INSERT INTO events (restaurant_id, seq, epoch, channel, name, data, at)
        SELECT $1, seq, epoch, 'manager', 'test.lost', '{}', now() - interval '10 seconds' FROM counter""", rid)
    ops = await ops_of(client, base, manager)
    assert ops["delivery"]["behind"] == 1 and ops["delivery"]["waiting_seconds"] >= 10
    assert ops["concerns"] == ["delivery_behind"]

    # The next notified write wakes the room, which reads everything after what it delivered.
    await client.post(base + "/devices", headers=manager, json={"name": "Bar", "kind": "ipad",
                                                                "role": "server"})
    assert (await sock.until("event", "test.lost"))["seq"] == ops["delivery"]["seq"]
    healthy = await eventually(lambda: ops_of(client, base, manager),
                               lambda o: o["delivery"]["behind"] == 0)
    assert healthy["concerns"] == [] and healthy["delivery"]["delay_p95_ms"] > 0


async def test_a_lost_listen_connection_is_flagged_until_it_is_back(client, tokens, base, db):
    manager = bearer(await tokens("manager"))
    hub = client.app[HUB]
    dsn, hub.dsn = hub.dsn, "postgresql://serveline@127.0.0.1:1/nowhere"  # reconnects fail for now
    await db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE application_name = 'serveline-listen' AND datname = current_database()")
    down = await eventually(lambda: ops_of(client, base, manager), lambda o: not o["listener"]["up"])
    assert down["concerns"] == ["listen_down"]
    hub.dsn = dsn
    back = await eventually(lambda: ops_of(client, base, manager), lambda o: o["listener"]["up"])
    assert back["listener"]["reconnects"] == 1 and back["concerns"] == []


async def test_requests_waiting_for_a_pool_connection_are_counted(client):
    pool = client.app[POOL]
    held = [await pool.acquire() for _ in range(pool.get_max_size())]

    async def wait_for_one():
        return await pool.acquire()
    waiters = [asyncio.create_task(wait_for_one()) for _ in range(3)]
    try:
        await asyncio.sleep(0.05)
        usage = pool_report(pool)
        assert (usage.in_use, usage.idle) == (pool.get_max_size(), 0)
        assert usage.waiters >= 3  # ours, and any background task that wanted one meanwhile
    finally:
        for conn in held:
            await pool.release(conn)
        for conn in await asyncio.gather(*waiters):
            await pool.release(conn)
    assert pool_report(pool).waiters == 0


async def test_only_managers_of_this_restaurant_see_the_figures(client, tokens, base):
    for role in ("kitchen", "host", "server"):
        response = await client.get(base + "/ops", headers=bearer(await tokens(role)))
        assert response.status == 403, role
        assert (await error_of(response))["code"] == "forbidden"
    for role in ("owner", "manager"):
        assert (await client.get(base + "/ops", headers=bearer(await tokens(role)))).status == 200
    elsewhere = await client.get(base + "/ops", headers=bearer(await tokens("manager", "other")))
    assert elsewhere.status == 404 and (await error_of(elsewhere))["code"] == "not_found"


async def sign_in_form(client, email: str) -> None:
    page = await (await client.get("/login")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', page)[1]
    response = await client.post("/login", allow_redirects=False, data={
        "csrf": token, "email": email, "password": PASSWORD, "next": "/r/demo/ops"})
    assert response.status == 303


async def test_the_ops_page_is_for_managers_of_this_restaurant(client):
    assert (await client.get("/r/demo/ops", allow_redirects=False)).headers["Location"] == \
        "/login?next=/r/demo/ops"
    for role in ("kitchen", "host", "server"):
        await sign_in_form(client, f"{role}@demo.test")
        assert (await client.get("/r/demo/ops", allow_redirects=False)).status == 403, role
    await sign_in_form(client, "manager@other.test")
    assert (await client.get("/r/demo/ops", allow_redirects=False)).status == 404
    await sign_in_form(client, "manager@demo.test")
    page = await client.get("/r/demo/ops")
    assert page.status == 200
    html = await page.text()
    assert "Live connections" in html and "All clear" in html and "Every device is caught up." in html
    assert re.search(r'data-key="listener.up"[^>]*>Up<', html)


async def test_the_answer_times_the_slowest_routes_the_sql_and_the_process(client, tokens, base):
    manager = bearer(await tokens("manager"))
    for _ in range(5):
        assert (await client.get(base + "/menu", headers=manager)).status == 200
    await client.get(base + "/orders?status=open", headers=manager)
    await client.app[POOL].fetchval("SELECT pg_sleep(0.12)")
    ops = await ops_of(client, base, manager)

    routes = ops["requests"]["routes"]
    assert 1 <= len(routes) <= 10
    assert [r["p99_ms"] for r in routes] == sorted((r["p99_ms"] for r in routes), reverse=True)
    menu = [r for r in routes if (r["method"], r["route"]) == ("GET", "/api/v1/restaurants/{rid}/menu")]
    assert menu and menu[0]["calls"] == 5 and 0 < menu[0]["p50_ms"] <= menu[0]["p95_ms"] <= menu[0]["p99_ms"]
    assert ops["requests"]["p95_ms"] > 0

    queries = ops["queries"]
    assert queries["slow_ms"] == 100 and queries["statements"] > 0 and queries["slow"] >= 1
    assert 1 <= len(queries["patterns"]) <= 8
    assert [p["total_ms"] for p in queries["patterns"]] == sorted(
        (p["total_ms"] for p in queries["patterns"]), reverse=True)
    slept = [p for p in queries["patterns"] if p["pattern"] == "SELECT pg_sleep(?)"]
    assert slept and slept[0]["slow"] == 1 and slept[0]["p95_ms"] >= 120 and slept[0]["max_ms"] >= 120
    assert set(slept[0]) == {"pattern", "calls", "total_ms", "p50_ms", "p95_ms", "max_ms", "slow"}
    assert queries["suggestions"] == [] and queries["notes"] == []

    process = ops["process"]
    assert process["rss_bytes"] > 10_000_000 and process["cpu_seconds"] > 0 and process["cpu_percent"] >= 0
    assert set(ops["event_lag"]) == {"samples", "p50_ms", "p95_ms", "max_ms"}


async def test_plan_advice_for_a_slow_sequential_scan_reaches_the_answer(make_client, config, db):
    await db.execute("CREATE TABLE guest_notes (id bigint, restaurant_id bigint, note text)")
    await db.execute("INSERT INTO guest_notes SELECT g, g % 50, 'note ' || g FROM generate_series(1, 20000) g")
    await db.execute("ANALYZE guest_notes")
    client = await make_client(msgspec.structs.replace(config, slow_query_ms=0))
    for _ in range(30):
        await client.app[POOL].fetchval("SELECT count(*) FROM guest_notes WHERE note = $1", "note 7")
    token = (await (await client.post("/api/v1/auth/login", json={
        "email": "manager@demo.test", "password": PASSWORD})).json())["token"]
    rid = await db.fetchval("SELECT id FROM restaurants WHERE slug = 'demo'")
    ops = await ops_of(client, f"/api/v1/restaurants/{rid}", bearer(token))
    assert ops["queries"]["slow_ms"] == 0
    scans = [s for s in ops["queries"]["suggestions"] if s["table"] == "guest_notes"]
    assert scans and scans[0]["advice"].startswith("Seq Scan on guest_notes (~20,000 rows)")
    assert scans[0]["pattern"] == "SELECT count(*) FROM guest_notes WHERE note = $1"


async def test_the_cache_figures_are_this_restaurants_alone(client, tokens, base, restaurant_ids):
    elsewhere = bearer(await tokens("manager", "other"))
    for _ in range(3):
        await client.get(f"/api/v1/restaurants/{restaurant_ids['other']}/menu", headers=elsewhere)
    manager = bearer(await tokens("manager"))
    assert (await ops_of(client, base, manager))["cache"] == {"hits": 0, "misses": 0, "hit_ratio": None}
    for _ in range(2):
        await client.get(base + "/menu", headers=manager)
    cache = (await ops_of(client, base, manager))["cache"]
    assert cache["hits"] + cache["misses"] == 2 and cache["hits"] >= 1  # ours only, not the other's 3
    assert cache["hit_ratio"] == round(cache["hits"] / 2, 4)
