"""The kitchen's recently bumped list and its recall window; per-station colour settings."""
from __future__ import annotations

import asyncio

import msgspec
import pytest
from conftest import bearer, error_of, table_counts
from test_alerts import FAST, alerts_of, late_ticket, until
from test_kitchen import events_after, ok, open_tickets, place, seq_of, step


async def bump_all(client, base, cook, station):
    tickets = await open_tickets(client, base, cook, station)
    for ticket in tickets:
        await ok(await step(client, base, cook, ticket["id"], "bump"))
    return [t["id"] for t in tickets]


async def recent(client, base, headers, query=""):
    return await ok(await client.get(base + "/kitchen/tickets/recent" + query, headers=headers))


async def bumped_minutes_ago(db, ticket_id, minutes):
    await db.execute("UPDATE tickets SET bumped_at = now() - make_interval(mins => $2) WHERE id = $1",
                     ticket_id, minutes)


async def test_recent_lists_the_tickets_bumped_within_the_window_newest_first(
        client, db, base, server, cook, menu):
    await place(client, base, server, menu, "Burger")
    await place(client, base, server, menu, "Ribeye", "Fries")
    await place(client, base, server, menu, "Salmon")  # stays open: not in the list
    first, second, _ = [t["id"] for t in await open_tickets(client, base, cook, "grill")]
    for ticket_id in (first, second):
        await ok(await step(client, base, cook, ticket_id, "bump"))
    [fries] = await bump_all(client, base, cook, "fry")
    await bumped_minutes_ago(db, first, 3)
    await bumped_minutes_ago(db, second, 1)
    await bumped_minutes_ago(db, fries, 2)
    page = await recent(client, base, cook)
    assert [t["id"] for t in page["items"]] == [second, fries, first]
    assert all(t["status"] == "bumped" and t["bumped_at"] for t in page["items"])
    assert [t["id"] for t in (await recent(client, base, cook, "?station=grill"))["items"]] == [second, first]
    await bumped_minutes_ago(db, first, 11)  # past the default 10 minutes
    assert [t["id"] for t in (await recent(client, base, cook, "?station=grill"))["items"]] == [second]


async def test_recent_pages_with_a_cursor(client, base, server, cook, menu):
    for _ in range(3):
        await place(client, base, server, menu, "Burger")
    bumped = await bump_all(client, base, cook, "grill")
    first = await recent(client, base, cook, "?limit=2")
    assert [t["id"] for t in first["items"]] == bumped[::-1][:2]
    rest = await recent(client, base, cook, f"?limit=2&cursor={first['next']}")
    assert [t["id"] for t in rest["items"]] == bumped[:1] and rest["next"] is None


async def test_a_ticket_whose_lines_were_all_voided_is_not_recallable_from_the_list(
        client, base, server, cook, menu):
    order = await place(client, base, server, menu, "Burger")
    item = order["items"][0]["id"]
    await ok(await client.post(base + f"/orders/{order['id']}/items/{item}/void", headers=server,
                               json={"reason": "guest left"}))
    assert (await recent(client, base, cook))["items"] == []


async def test_recent_refuses_a_bad_station_or_cursor(client, base, cook):
    response = await client.get(base + "/kitchen/tickets/recent?station=Grill!", headers=cook)
    assert response.status == 400 and (await error_of(response))["code"] == "invalid_query"
    response = await client.get(base + "/kitchen/tickets/recent?cursor=nonsense", headers=cook)
    assert response.status == 400 and (await error_of(response))["code"] == "invalid_cursor"


async def test_any_ticket_bumped_within_the_window_can_be_recalled_not_only_the_last(
        client, db, rid, base, server, cook, menu):
    await place(client, base, server, menu, "Burger")
    await place(client, base, server, menu, "Ribeye")
    older, newer = await bump_all(client, base, cook, "grill")
    await bumped_minutes_ago(db, older, 9)
    start = await seq_of(db, rid)
    recalled = await ok(await step(client, base, cook, older, "recall"))
    assert recalled["id"] == older and recalled["status"] == "started"
    assert [(c, n) for c, n, _ in await events_after(db, rid, start)] == [("kitchen:grill", "ticket.recalled")]
    assert [t["id"] for t in (await recent(client, base, cook))["items"]] == [newer]


async def test_a_recall_past_the_window_is_409_and_writes_nothing(client, db, base, server, cook, menu):
    await place(client, base, server, menu, "Burger")
    [ticket] = await bump_all(client, base, cook, "grill")
    await bumped_minutes_ago(db, ticket, 11)
    version = await db.fetchval("SELECT version FROM tickets WHERE id = $1", ticket)
    before = await table_counts(db)
    response = await step(client, base, cook, ticket, "recall")
    assert response.status == 409
    error = await error_of(response)
    assert error["code"] == "recall_window_passed"
    assert "10 minutes" in error["message"] and error["details"] == [{"recall_minutes": 10}]
    assert await table_counts(db) == before
    assert await db.fetchval("SELECT version FROM tickets WHERE id = $1", ticket) == version
    assert await db.fetchval("SELECT status FROM tickets WHERE id = $1", ticket) == "bumped"
    assert {r["status"] for r in await db.fetch("SELECT status FROM order_items WHERE ticket_id = $1",
                                                ticket)} == {"ready"}


async def test_the_window_is_the_restaurants_recall_minutes(client, db, base, server, cook, menu, tokens):
    owner = bearer(await tokens("owner"))
    await ok(await client.patch(base, headers=owner, json={"settings": {"recall_minutes": 30}}))
    await place(client, base, server, menu, "Burger")
    [ticket] = await bump_all(client, base, cook, "grill")
    await bumped_minutes_ago(db, ticket, 25)
    assert [t["id"] for t in (await recent(client, base, cook))["items"]] == [ticket]
    await ok(await step(client, base, cook, ticket, "recall"))
    await ok(await step(client, base, cook, ticket, "bump"))
    await bumped_minutes_ago(db, ticket, 31)
    response = await step(client, base, cook, ticket, "recall")
    assert response.status == 409
    assert "30 minutes" in (await error_of(response))["message"]


async def test_a_stale_version_still_answers_412_before_the_window(client, db, base, server, cook, menu):
    await place(client, base, server, menu, "Burger")
    [ticket] = await bump_all(client, base, cook, "grill")
    await bumped_minutes_ago(db, ticket, 11)
    response = await step(client, base, cook, ticket, "recall", **{"If-Match": "1"})
    assert response.status == 412


async def test_station_thresholds_and_recall_minutes_are_saved(client, base, tokens):
    owner = bearer(await tokens("owner"))
    thresholds = {"grill": {"amber_minutes": 10, "red_minutes": 20}, "fry": {"amber_minutes": 3,
                                                                              "red_minutes": 6}}
    body = await ok(await client.patch(base, headers=owner, json={"settings": {
        "recall_minutes": 15, "station_thresholds": thresholds}}))
    assert body["restaurant"]["settings"]["station_thresholds"] == thresholds
    settings = (await ok(await client.get(base + "/settings", headers=owner)))["settings"]
    assert settings["recall_minutes"] == 15 and settings["station_thresholds"] == thresholds


@pytest.mark.parametrize(("settings", "says"), [
    ({"station_thresholds": {"grill": {"amber_minutes": 20, "red_minutes": 10}}}, "less than red_minutes"),
    ({"station_thresholds": {"grill": {"amber_minutes": 10, "red_minutes": 10}}}, "less than red_minutes"),
    ({"station_thresholds": {"grill": {"amber_minutes": 0, "red_minutes": 10}}}, ">= 1"),
    ({"station_thresholds": {"grill": {"amber_minutes": 10, "red_minutes": 241}}}, "<= 240"),
    ({"station_thresholds": {"grill": {"amber_minutes": 10}}}, "red_minutes"),
    ({"station_thresholds": {"grill": {"amber_minutes": 1, "red_minutes": 2, "blue": 3}}}, "blue"),
    ({"station_thresholds": {"Grill Station": {"amber_minutes": 1, "red_minutes": 2}}}, "[a-z]"),
    ({"station_thresholds": ["grill"]}, "object"),
    ({"recall_minutes": 0}, ">= 1"),
    ({"recall_minutes": 121}, "<= 120"),
])
async def test_bad_kitchen_settings_are_422_and_write_nothing(client, db, base, tokens, settings, says):
    owner = bearer(await tokens("owner"))
    before = await table_counts(db)
    stored = await db.fetchval("SELECT settings::text || version FROM restaurants WHERE slug = 'demo'")
    response = await client.patch(base, headers=owner, json={"settings": settings})
    assert response.status == 422
    error = await error_of(response)
    assert error["code"] == "validation_failed" and says in error["message"]
    assert await table_counts(db) == before
    assert await db.fetchval("SELECT settings::text || version FROM restaurants WHERE slug = 'demo'") == stored


async def test_a_late_ticket_alert_follows_its_stations_own_red(make_client, config, db, rid, base,
                                                               tokens):
    fast = await make_client(msgspec.structs.replace(config, **FAST))
    owner, manager = bearer(await tokens("owner")), bearer(await tokens("manager"))
    await ok(await fast.patch(base, headers=owner, json={"settings": {"station_thresholds": {
        "grill": {"amber_minutes": 20, "red_minutes": 30}}}}))
    ticket = await late_ticket(fast, db, rid, tokens, minutes=20)  # past the restaurant's 15
    await asyncio.sleep(1)  # five alert checks
    assert await alerts_of(fast, rid, manager) == []
    await db.execute("UPDATE tickets SET fired_at = now() - interval '31 minutes' WHERE id = $1", ticket)
    raised = await until(lambda: alerts_of(fast, rid, manager))
    assert "grill: open 31 min (late at 30)" in raised[0]["message"]
    # The manager's dashboard lists late tickets by the same thresholds.
    dashboard = await ok(await fast.get(base + "/dashboard", headers=manager))
    assert [t["id"] for t in dashboard["late_tickets"]] == [ticket]
    await ok(await fast.patch(base, headers=owner, json={"settings": {"station_thresholds": {
        "grill": {"amber_minutes": 40, "red_minutes": 45}}}}))
    dashboard = await ok(await fast.get(base + "/dashboard", headers=manager))
    assert dashboard["late_tickets"] == []
