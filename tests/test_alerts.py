"""Alerts: raised and cleared once, as events on `manager`, and listed by GET alerts."""
from __future__ import annotations

import asyncio

import msgspec
import pytest
from conftest import bearer, error_of

from server.alerts import INSTANCE, check, no_figures
from server.metrics import alert_figures

FAST = {"alert_check_seconds": 0.2, "presence_check_seconds": 0.2,  # data rules only:
        "alert_p95_ms": 60_000.0, "alert_event_lag_ms": 60_000.0, "alert_pool_waiters": 1000}


@pytest.fixture
async def fast(make_client, config):
    """A server checking its alert rules five times a second."""
    return await make_client(msgspec.structs.replace(config, **FAST))


async def alerts_of(client, rid, manager, state="open"):
    response = await client.get(f"/api/v1/restaurants/{rid}/alerts", headers=manager,
                                params={"state": state})
    assert response.status == 200, await response.text()
    return (await response.json())["items"]


async def until(predicate, seconds=10.0):
    for _ in range(int(seconds / 0.1)):
        if result := await predicate():
            return result
        await asyncio.sleep(0.1)
    raise AssertionError("the condition never held")


async def late_ticket(client, db, rid, tokens, minutes=20):
    server = bearer(await tokens("server"))
    menu = await (await client.get(f"/api/v1/restaurants/{rid}/menu", headers=server)).json()
    burger = next(i for c in menu["categories"] for i in c["items"] if i["name"] == "Burger")
    order = await client.post(f"/api/v1/restaurants/{rid}/orders", headers=server,
                              json={"items": [{"menu_item_id": burger["id"], "qty": 1}]})
    assert order.status == 201
    ticket = await db.fetchval("SELECT id FROM tickets WHERE order_id = $1", (await order.json())["id"])
    # Half a minute more: the alert check's clock (its transaction's start) may be a moment
    # older than this update's, and the message counts whole minutes.
    await db.execute("UPDATE tickets SET fired_at = now() - make_interval(mins => $2, secs => 30) "
                     "WHERE id = $1",
                     ticket, minutes)
    return ticket


async def test_a_late_ticket_raises_an_alert_and_bumping_it_clears_it(fast, db, rid, tokens,
                                                                     open_socket):
    manager = bearer(await tokens("manager"))
    sock = await open_socket(rid, await tokens("manager"))  # on another instance: same stream
    await sock.send(type="subscribe", channels=["manager"])
    await sock.until("subscribed")
    ticket = await late_ticket(fast, db, rid, tokens)

    raised = await until(lambda: alerts_of(fast, rid, manager))
    assert [(a["rule"], a["subject"]) for a in raised] == [("late_ticket", str(ticket))]
    assert "grill: open 20 min (late at 15)" in raised[0]["message"]
    assert raised[0]["cleared_at"] is None
    event = await sock.until("event", name="alert.raised")
    assert event["channel"] == "manager" and event["data"]["alert"]["id"] == raised[0]["id"]

    bumped = await fast.post(f"/api/v1/restaurants/{rid}/kitchen/tickets/{ticket}/bump",
                             headers=bearer(await tokens("kitchen")))
    assert bumped.status == 200
    cleared = await sock.until("event", name="alert.cleared")
    assert cleared["data"]["alert"]["cleared_at"] is not None
    assert await alerts_of(fast, rid, manager) == []
    history = await alerts_of(fast, rid, manager, "all")
    assert [a["id"] for a in history] == [raised[0]["id"]] and history[0]["cleared_at"]


async def test_two_instances_raise_each_alert_once(make_client, config, db, rid, tokens):
    first = await make_client(config)
    second = await make_client(config)
    ticket = await late_ticket(first, db, rid, tokens)
    sent = await asyncio.gather(check(first.app, no_figures), check(second.app, no_figures))
    assert sorted(sent) == [[], ["alert.raised"]]
    assert await db.fetchval("SELECT count(*) FROM events WHERE name = 'alert.raised'") == 1
    assert await db.fetchval("SELECT subject FROM alerts") == str(ticket)
    assert await check(first.app, no_figures) == []  # still holds: nothing new to say


async def test_a_dark_expected_screen_is_an_alert(fast, db, rid, tokens):
    manager = bearer(await tokens("manager"))
    device = await fast.post(f"/api/v1/restaurants/{rid}/devices", headers=manager,
                             json={"name": "Pass screen", "kind": "screen", "role": "kitchen"})
    device_id = (await device.json())["device"]["id"]
    # Expected all day long, and never seen: dark.
    await fast.patch(f"/api/v1/restaurants/{rid}", headers=manager, json={"settings": {
        "service_start": "00:00", "service_end": "23:59"}})
    await fast.patch(f"/api/v1/restaurants/{rid}/devices/{device_id}", headers=manager,
                     json={"expected": True})
    raised = await until(lambda: alerts_of(fast, rid, manager))
    assert [(a["rule"], a["subject"], a["message"]) for a in raised] == [
        ("device_dark", str(device_id), "Pass screen is dark")]


async def test_an_instance_that_died_does_not_leave_its_alerts_open(client, db, rid):
    await db.execute("INSERT INTO alerts (restaurant_id, rule, subject, message, seen_at) VALUES "
                     "($1, 'slow_requests', 'gone-host:1', 'Requests are slow', now() - interval '1 day')",
                     rid)
    await db.execute("INSERT INTO alerts (restaurant_id, rule, subject, message) VALUES "
                     "($1, 'slow_requests', 'live-host:2', 'Requests are slow')", rid)
    assert await check(client.app, no_figures) == ["alert.cleared"]
    open_ones = await db.fetch("SELECT subject FROM alerts WHERE cleared_at IS NULL")
    assert [r["subject"] for r in open_ones] == ["live-host:2"]  # alive, and not ours to clear
    assert INSTANCE not in ("gone-host:1", "live-host:2")


async def test_alerts_refuse_a_bad_state(client, rid, tokens):
    response = await client.get(f"/api/v1/restaurants/{rid}/alerts", params={"state": "loud"},
                                headers=bearer(await tokens("manager")))
    assert response.status == 400
    error = await error_of(response)
    assert error["code"] == "invalid_query" and error["details"][0]["path"] == "query.state"


async def test_a_slow_instance_raises_an_alert_for_each_restaurant_it_serves(make_client, config, db,
                                                                            rid, restaurant_ids):
    # A threshold no request can stay under: the instance's own p95 of real requests is "slow".
    slow = await make_client(msgspec.structs.replace(config, alert_p95_ms=0.0))
    for _ in range(5):
        assert (await slow.get("/api/health")).status == 200
    assert await check(slow.app, alert_figures) == ["alert.raised", "alert.raised"]
    rows = await db.fetch("SELECT restaurant_id, rule, subject, message FROM alerts ORDER BY restaurant_id")
    assert [(r["restaurant_id"], r["rule"], r["subject"]) for r in rows] == [
        (restaurant_ids["demo"], "slow_requests", INSTANCE), (restaurant_ids["other"], "slow_requests", INSTANCE)]
    assert "Requests are slow: p95" in rows[0]["message"]
    assert await check(slow.app, alert_figures) == []  # still slow: kept alive, not raised again
    assert await db.fetchval("SELECT count(*) FROM alerts WHERE seen_at > raised_at") == 2
