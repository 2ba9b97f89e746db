"""Kitchen tickets over HTTP: one per station per firing, started, bumped, recalled; item-level ready."""
from __future__ import annotations

import msgspec
import pytest
from conftest import bearer, error_of, table_counts


async def ok(response, status=200):
    assert response.status == status, await response.text()
    return await response.json()


async def place(client, base, server, menu, *names, **extra):
    lines = [{"menu_item_id": menu[name]["id"]} for name in names]
    return await ok(await client.post(base + "/orders", headers=server,
                                      json={"items": lines, **extra}), 201)


async def open_tickets(client, base, headers, station=None):
    query = f"?station={station}" if station else ""
    return (await ok(await client.get(base + "/kitchen/tickets" + query, headers=headers)))["items"]


async def step(client, base, cook, ticket_id, action, **headers):
    return await client.post(base + f"/kitchen/tickets/{ticket_id}/{action}", headers={**cook, **headers})


async def seq_of(db, rid):
    return await db.fetchval("SELECT seq FROM restaurants WHERE id = $1", rid)


async def events_after(db, rid, seq):
    rows = await db.fetch("SELECT channel, name, data FROM events WHERE restaurant_id = $1 AND seq > $2"
                          " ORDER BY seq", rid, seq)
    return [(r["channel"], r["name"], msgspec.json.decode(r["data"])) for r in rows]


async def item_states(db, ticket_id):
    return [r["status"] for r in await db.fetch(
        "SELECT status FROM order_items WHERE ticket_id = $1 ORDER BY id", ticket_id)]


async def test_fired_items_become_one_ticket_per_station_in_fire_order(client, base, server, cook, menu):
    first = await place(client, base, server, menu, "Burger", "Fries", "Ribeye", "Espresso")
    second = await place(client, base, server, menu, "Salmon")
    tickets = await open_tickets(client, base, cook)
    assert [(t["order_id"], t["station"]) for t in tickets] == [
        (first["id"], "bar"), (first["id"], "fry"), (first["id"], "grill"), (second["id"], "grill")]
    assert [t["id"] for t in tickets] == sorted(t["id"] for t in tickets)
    assert [i["name"] for i in tickets[2]["items"]] == ["Burger", "Ribeye"]
    assert all(t["status"] == "open" and t["course"] == 1 for t in tickets)
    by_item = {i["id"]: i["ticket_id"] for i in first["items"]}
    assert {by_item[i["id"]] for i in tickets[2]["items"]} == {tickets[2]["id"]}


async def test_a_station_sees_only_its_tickets_with_table_items_modifiers_and_notes(
        client, db, rid, base, server, cook, menu):
    table_id = await db.fetchval(
        "SELECT id FROM dining_tables WHERE restaurant_id = $1 AND label = 'D7'", rid)
    bacon = next(m for m in menu["Burger"]["modifiers"] if m["name"] == "Add bacon")
    await ok(await client.post(base + "/orders", headers=server, json={
        "table_id": table_id, "guests": 3, "note": "birthday", "items": [
            {"menu_item_id": menu["Burger"]["id"], "qty": 2, "modifiers": [bacon["id"]],
             "note": "no pickles"},
            {"menu_item_id": menu["Fries"]["id"]}]}), 201)
    [ticket] = await open_tickets(client, base, cook, "grill")
    assert (ticket["station"], ticket["table_id"], ticket["table_label"]) == ("grill", table_id, "D7")
    assert (ticket["guests"], ticket["order_note"], ticket["server_name"]) == (3, "birthday", "Sam Rivera")
    [item] = ticket["items"]
    assert (item["name"], item["qty"], item["note"], item["status"]) == ("Burger", 2, "no pickles", "fired")
    assert item["modifiers"] == [bacon]
    assert [t["station"] for t in await open_tickets(client, base, server, "fry")] == ["fry"]
    assert await open_tickets(client, base, cook, "pastry") == []


async def test_starting_a_ticket_puts_its_items_to_cooking(client, db, rid, base, server, cook, menu):
    await place(client, base, server, menu, "Burger", "Ribeye")
    [ticket] = await open_tickets(client, base, cook, "grill")
    start = await seq_of(db, rid)
    started = await ok(await step(client, base, cook, ticket["id"], "start"))
    assert (started["status"], started["version"]) == ("started", 2)
    assert started["started_at"] is not None
    assert [i["status"] for i in started["items"]] == ["cooking", "cooking"]
    assert await item_states(db, ticket["id"]) == ["cooking", "cooking"]
    assert [(c, n) for c, n, _ in await events_after(db, rid, start)] == [("kitchen:grill", "ticket.started")]


async def test_bumping_a_ticket_makes_its_items_ready_and_emits_ticket_bumped(
        client, db, rid, base, server, cook, menu):
    await place(client, base, server, menu, "Burger", "Fries")
    [ticket] = await open_tickets(client, base, cook, "grill")
    await ok(await step(client, base, cook, ticket["id"], "start"))
    start = await seq_of(db, rid)
    bumped = await ok(await step(client, base, cook, ticket["id"], "bump"))
    assert bumped["status"] == "bumped" and bumped["bumped_at"] is not None
    assert await item_states(db, ticket["id"]) == ["ready"]
    [(channel, name, data)] = await events_after(db, rid, start)
    assert (channel, name, data["ticket"]["id"]) == ("kitchen:grill", "ticket.bumped", ticket["id"])
    assert await open_tickets(client, base, cook, "grill") == []


async def test_order_ready_is_emitted_when_its_last_ticket_is_bumped_and_not_before(
        client, db, rid, base, server, cook, menu):
    order = await place(client, base, server, menu, "Burger", "Fries")
    grill, fry = [await open_tickets(client, base, cook, s) for s in ("grill", "fry")]
    start = await seq_of(db, rid)
    await ok(await step(client, base, cook, grill[0]["id"], "bump"))
    assert [n for _, n, _ in await events_after(db, rid, start)] == ["ticket.bumped"]
    start = await seq_of(db, rid)
    await ok(await step(client, base, cook, fry[0]["id"], "bump"))
    assert [(c, n, d.get("order_id")) for c, n, d in await events_after(db, rid, start)] == [
        ("kitchen:fry", "ticket.bumped", None), ("orders", "order.ready", order["id"])]


async def test_recall_brings_a_bumped_ticket_back_to_started_and_items_to_cooking(
        client, db, rid, base, server, cook, menu):
    await place(client, base, server, menu, "Burger", "Ribeye")
    [ticket] = await open_tickets(client, base, cook, "grill")
    await ok(await step(client, base, cook, ticket["id"], "bump"))
    start = await seq_of(db, rid)
    recalled = await ok(await step(client, base, cook, ticket["id"], "recall"))
    assert recalled["status"] == "started"
    assert recalled["recalled_at"] is not None and recalled["bumped_at"] is None
    assert await item_states(db, ticket["id"]) == ["cooking", "cooking"]
    assert await db.fetchval("SELECT count(*) FROM order_items WHERE ticket_id = $1 AND ready_at IS NOT NULL",
                             ticket["id"]) == 0
    assert [(c, n) for c, n, _ in await events_after(db, rid, start)] == [
        ("kitchen:grill", "ticket.recalled")]
    assert [t["id"] for t in await open_tickets(client, base, cook, "grill")] == [ticket["id"]]


async def test_one_item_of_a_ticket_can_be_ready_on_its_own(client, db, rid, base, server, cook, menu):
    await place(client, base, server, menu, "Burger", "Ribeye")
    [ticket] = await open_tickets(client, base, cook, "grill")
    burger = ticket["items"][0]["id"]
    start = await seq_of(db, rid)
    response = await client.post(base + f"/kitchen/tickets/{ticket['id']}/items/{burger}/ready", headers=cook)
    answer = await ok(response)
    assert [i["status"] for i in answer["items"]] == ["ready", "fired"]
    assert answer["status"] == "open"
    assert await db.fetchval("SELECT ready_at FROM order_items WHERE id = $1", burger) is not None
    [(channel, name, data)] = await events_after(db, rid, start)
    assert (channel, name, data["item_id"]) == ("kitchen:grill", "item.ready", burger)
    before = await table_counts(db)
    again = await client.post(base + f"/kitchen/tickets/{ticket['id']}/items/{burger}/ready", headers=cook)
    assert again.status == 409
    assert (await error_of(again))["details"] == [{"status": "ready"}]
    assert await table_counts(db) == before


async def test_an_item_of_another_ticket_is_404_for_item_ready(client, db, base, server, cook, menu):
    order = await place(client, base, server, menu, "Burger", "Fries")
    grill = (await open_tickets(client, base, cook, "grill"))[0]
    fries = order["items"][1]["id"]
    before = await table_counts(db)
    response = await client.post(base + f"/kitchen/tickets/{grill['id']}/items/{fries}/ready", headers=cook)
    assert response.status == 404
    assert (await error_of(response))["code"] == "not_found"
    assert await table_counts(db) == before


ILLEGAL = [
    ("bump twice", ["bump"], "bump", "bumped"),
    ("recall an open ticket", [], "recall", "open"),
    ("recall a started ticket", ["start"], "recall", "started"),
    ("start a bumped ticket", ["bump"], "start", "bumped"),
    ("start twice", ["start"], "start", "started"),
]


@pytest.mark.parametrize(("case", "done", "action", "status"), ILLEGAL, ids=[c[0] for c in ILLEGAL])
async def test_an_illegal_ticket_step_is_409_and_writes_nothing(client, db, base, server, cook, menu,
                                                                case, done, action, status):
    await place(client, base, server, menu, "Burger")
    [ticket] = await open_tickets(client, base, cook, "grill")
    for earlier in done:
        await ok(await step(client, base, cook, ticket["id"], earlier))
    before = await table_counts(db)
    items_before = await item_states(db, ticket["id"])
    response = await step(client, base, cook, ticket["id"], action)
    assert response.status == 409
    error = await error_of(response)
    assert (error["code"], error["details"]) == ("conflict", [{"status": status}])
    assert await table_counts(db) == before
    assert await item_states(db, ticket["id"]) == items_before
    assert await db.fetchval("SELECT status FROM tickets WHERE id = $1", ticket["id"]) == status


async def test_a_stale_if_match_on_a_ticket_is_412_and_writes_nothing(client, db, base, server, cook, menu):
    await place(client, base, server, menu, "Burger")
    [ticket] = await open_tickets(client, base, cook, "grill")
    await ok(await step(client, base, cook, ticket["id"], "start", **{"If-Match": "1"}))
    before = await table_counts(db)
    response = await step(client, base, cook, ticket["id"], "bump", **{"If-Match": "1"})
    assert response.status == 412
    assert (await error_of(response))["details"] == [{"version": 2}]
    assert await table_counts(db) == before


async def test_unknown_or_another_restaurants_ticket_is_404(client, db, restaurant_ids, base, tokens, menu):
    other = f"/api/v1/restaurants/{restaurant_ids['other']}"
    other_server = bearer(await tokens("server", "other"))
    other_cook = bearer(await tokens("kitchen", "other"))
    other_menu = {i["name"]: i for c in (await ok(await client.get(other + "/menu", headers=other_server)))
                  ["categories"] for i in c["items"]}
    await place(client, other, other_server, other_menu, "Burger")
    [foreign] = await open_tickets(client, other, other_cook, "grill")
    cook = bearer(await tokens("kitchen"))
    before = await table_counts(db)
    for ticket_id in (foreign["id"], 999_999):
        response = await step(client, base, cook, ticket_id, "bump")
        assert response.status == 404
        assert (await error_of(response))["code"] == "not_found"
    assert await table_counts(db) == before
    assert await open_tickets(client, base, cook) == []


async def test_kitchen_and_managers_work_tickets(client, base, server, tokens, menu):
    await place(client, base, server, menu, "Burger", "Fries", "Espresso")
    tickets = await open_tickets(client, base, server)
    for role, ticket in zip(("kitchen", "manager", "owner"), tickets):
        await ok(await step(client, base, bearer(await tokens(role)), ticket["id"], "bump"))


@pytest.mark.parametrize("role", ["host", "server"])
async def test_front_of_house_may_not_work_tickets(client, db, base, server, tokens, menu, role):
    await place(client, base, server, menu, "Burger")
    [ticket] = await open_tickets(client, base, server, "grill")
    headers = bearer(await tokens(role))
    before = await table_counts(db)
    for action in ("start", "bump"):
        response = await step(client, base, headers, ticket["id"], action)
        assert response.status == 403
        assert (await error_of(response))["code"] == "forbidden"
    assert await table_counts(db) == before


async def test_hosts_may_not_read_tickets(client, base, tokens):
    response = await client.get(base + "/kitchen/tickets", headers=bearer(await tokens("host")))
    assert response.status == 403
    assert (await error_of(response))["code"] == "forbidden"


@pytest.mark.parametrize("station", ["Grill", "grill!", "1st"])
async def test_a_bad_station_filter_is_400(client, base, cook, station):
    response = await client.get(base + "/kitchen/tickets", params={"station": station}, headers=cook)
    assert response.status == 400
    error = await error_of(response)
    assert (error["code"], error["details"][0]["path"]) == ("invalid_query", "query.station")


async def test_expo_shows_orders_whose_tickets_are_all_bumped(client, base, server, cook, menu):
    order = await (await client.post(base + "/orders", headers=server, json={"items": [
        {"menu_item_id": menu["Burger"]["id"]}, {"menu_item_id": menu["Fries"]["id"]}]})).json()
    tickets = (await (await client.get(base + "/kitchen/tickets", headers=cook)).json())["items"]
    mine = [t for t in tickets if t["order_id"] == order["id"]]
    assert len(mine) == 2
    await client.post(base + f"/kitchen/tickets/{mine[0]['id']}/bump", headers=cook)
    assert (await (await client.get(base + "/kitchen/expo", headers=cook)).json())["items"] == []
    await client.post(base + f"/kitchen/tickets/{mine[1]['id']}/bump", headers=cook)
    expo = (await (await client.get(base + "/kitchen/expo", headers=cook)).json())["items"]
    assert [e["order_id"] for e in expo] == [order["id"]]
    assert sorted(i["name"] for i in expo[0]["items"]) == ["Burger", "Fries"]
    for item in expo[0]["items"]:
        await client.post(base + f"/orders/{order['id']}/items/{item['id']}/serve", headers=server)
    assert (await (await client.get(base + "/kitchen/expo", headers=cook)).json())["items"] == []


async def test_voiding_every_item_of_a_ticket_closes_it(client, base, server, cook, menu, db):
    order = await (await client.post(base + "/orders", headers=server, json={"items": [
        {"menu_item_id": menu["Ribeye"]["id"]}]})).json()
    item = order["items"][0]
    await client.post(base + f"/orders/{order['id']}/items/{item['id']}/void", headers=server,
                      json={"reason": "changed mind"})
    assert (await (await client.get(base + "/kitchen/tickets?station=grill", headers=cook)).json())["items"] == []
    names = [r["name"] for r in await db.fetch("SELECT name FROM events ORDER BY seq DESC LIMIT 3")]
    assert names[0] == "ticket.bumped" and "item.voided" in names
