"""Merged tables, orders moved to another table, lines moved between orders: one transaction each
with its events, and the kitchen receives nothing twice: no ticket row is written or changed, and
no ticket event but `ticket.moved` (the same ticket redrawn with its order's new table)."""
from __future__ import annotations

import json

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from conftest import error_of, table_counts


async def kitchen_sent(db: asyncpg.Connection, rid: int) -> tuple[list, int]:
    """Ticket rows as they are, and the events that tell the kitchen something (ticket.*,
    order.fired, anything on a kitchen channel) but the `ticket.moved` redraws."""
    # (A ticket's order may change: tickets follow their lines to the party's order.)
    tickets = await db.fetch("SELECT id, status, fired_at, version, changes::text "
                             "FROM tickets WHERE restaurant_id = $1 ORDER BY id", rid)
    told = await db.fetchval(
        "SELECT count(*) FROM events WHERE restaurant_id = $1 AND (name LIKE 'ticket.%' "
        "OR name = 'order.fired' OR channel LIKE 'kitchen%') AND name <> 'ticket.moved'", rid)
    return [tuple(t) for t in tickets], told


async def lines_as_sent(db: asyncpg.Connection, rid: int) -> dict[int, tuple]:
    rows = await db.fetch("SELECT id, ticket_id, status, fired_at FROM order_items "
                          "WHERE restaurant_id = $1", rid)
    return {r["id"]: (r["ticket_id"], r["status"], r["fired_at"]) for r in rows}


async def new_names(db: asyncpg.Connection, rid: int, after: int) -> list[tuple[str, str]]:
    rows = await db.fetch("SELECT channel, name FROM events WHERE restaurant_id = $1 AND seq > $2 "
                          "ORDER BY seq", rid, after)
    return [(r["channel"], r["name"]) for r in rows]


async def seq_of(db: asyncpg.Connection, rid: int) -> int:
    return await db.fetchval("SELECT seq FROM restaurants WHERE id = $1", rid)


async def seat(client: TestClient, base: str, headers: dict, table_id: int, size: int = 4) -> None:
    response = await client.post(f"{base}/tables/{table_id}/status", headers=headers,
                                 json={"status": "seated", "party_size": size})
    assert response.status == 200, await response.text()


async def order_at(client: TestClient, base: str, headers: dict, table_id: int | None,
                   *items: int, guests: int | None = None) -> dict:
    body: dict = {"items": [{"menu_item_id": i} for i in items]}
    if table_id is not None:
        body["table_id"] = table_id
    if guests is not None:
        body["guests"] = guests
    response = await client.post(f"{base}/orders", headers=headers, json=body)
    assert response.status == 201, await response.text()
    return await response.json()


async def test_merged_tables_join_the_party_and_its_order_and_the_kitchen_hears_nothing(
        client: TestClient, db, base, rid, manager, labels, menu):
    main, other, free = labels["D1"], labels["D2"], labels["D3"]
    await seat(client, base, manager, main, 4)
    await seat(client, base, manager, other, 2)
    first = await order_at(client, base, manager, main, menu["Burger"]["id"], guests=4)
    second = await order_at(client, base, manager, other, menu["Fries"]["id"],
                            menu["Cola"]["id"], guests=2)
    sent, lines, before = await kitchen_sent(db, rid), await lines_as_sent(db, rid), await seq_of(db, rid)
    response = await client.post(f"{base}/tables/{main}/merge", headers=manager,
                                 json={"table_ids": [other, free]})
    assert response.status == 200, await response.text()
    merged = await response.json()
    assert merged["table"]["merged_tables"] == [other, free]
    assert [(t["id"], t["merged_into"], t["status"], t["turn_id"]) for t in merged["tables"]] == [
        (other, main, "seated", None), (free, main, "seated", None)]
    assert (merged["order_id"], merged["closed_order_ids"]) == (first["id"], [second["id"]])
    order = await (await client.get(f"{base}/orders/{first['id']}", headers=manager)).json()
    assert sorted(i["id"] for i in order["items"]) == sorted(lines)
    assert order["total_minor"] == first["total_minor"] + second["total_minor"]
    assert order["guests"] == 6
    emptied = await (await client.get(f"{base}/orders/{second['id']}", headers=manager)).json()
    assert (emptied["status"], emptied["items"], emptied["payment"]["merged_into"]) == (
        "closed", [], first["id"])
    # Nothing re-fired, no ticket written: lines keep their tickets, statuses and times.
    assert await kitchen_sent(db, rid) == sent
    assert await lines_as_sent(db, rid) == lines
    # The joined order's tickets now belong to the party's order, redrawn with its table.
    owners = await db.fetch("SELECT DISTINCT order_id FROM tickets WHERE restaurant_id = $1", rid)
    assert [r["order_id"] for r in owners] == [first["id"]]
    names = await new_names(db, rid, before)
    assert [n for n in names if n[1] != "ticket.moved"] == [
        ("floor", "table.merged"), ("orders", "order.closed"), ("orders", "order.merged")]
    moved = await db.fetch("SELECT data FROM events WHERE restaurant_id = $1 AND seq > $2 "
                           "AND name = 'ticket.moved'", rid, before)
    second_tickets = {i["ticket_id"] for i in second["items"]}
    assert {json.loads(r["data"])["ticket"]["id"] for r in moved} == second_tickets
    assert all(json.loads(r["data"])["ticket"]["table_id"] == main for r in moved)
    # The party's turn is the main table's: one turn open, the joined table's own turn ended.
    open_turns = await db.fetch("SELECT table_id FROM table_turns WHERE restaurant_id = $1 "
                                "AND freed_at IS NULL", rid)
    assert [t["table_id"] for t in open_turns] == [main]
    # A joined table does not change on its own; it follows the main table.
    alone = await client.post(f"{base}/tables/{free}/status", headers=manager,
                              json={"status": "ordering"})
    assert alone.status == 409 and (await error_of(alone))["details"] == [{"merged_into": main}]
    for table_id in (main, free):  # a merged party does not move: unmerge first
        moving = await client.post(f"{base}/tables/{table_id}/move", headers=manager,
                                   json={"to_table_id": labels["D9"]})
        assert moving.status == 409 and "merge" in (await error_of(moving))["message"]
    await client.post(f"{base}/tables/{main}/status", headers=manager, json={"status": "ordering"})
    statuses = await db.fetch("SELECT id, status FROM dining_tables WHERE restaurant_id = $1 "
                              "AND id = ANY($2::bigint[]) ORDER BY id", rid, [main, other, free])
    assert {r["status"] for r in statuses} == {"ordering"}
    # Unmerging leaves the joined tables dirty and the party's order at the main table.
    left = await client.post(f"{base}/tables/{main}/unmerge", headers=manager)
    assert left.status == 200, await left.text()
    unmerged = await left.json()
    assert unmerged["table"]["merged_tables"] == []
    assert [(t["id"], t["merged_into"], t["status"]) for t in unmerged["tables"]] == [
        (other, None, "dirty"), (free, None, "dirty")]
    assert await kitchen_sent(db, rid) == sent


async def test_freeing_the_main_table_frees_the_merged_ones(client, db, base, rid, manager,
                                                             labels):
    main, other = labels["D4"], labels["D5"]
    await seat(client, base, manager, main, 6)
    await client.post(f"{base}/tables/{main}/merge", headers=manager, json={"table_ids": [other]})
    response = await client.post(f"{base}/tables/{main}/status", headers=manager,
                                 json={"status": "free"})
    assert response.status == 200, await response.text()
    row = await db.fetchrow("SELECT status, merged_into FROM dining_tables "
                            "WHERE restaurant_id = $1 AND id = $2", rid, other)
    assert (row["status"], row["merged_into"]) == ("free", None)
    covers = await db.fetchval("SELECT sum(party_size) FROM table_turns WHERE restaurant_id = $1",
                               rid)
    assert covers == 6  # the party counted once, on the main table's turn


@pytest.mark.parametrize("case, status, code", [
    ("main_not_seated", 409, "conflict"), ("joining_blocked", 409, "conflict"),
    ("joining_merged", 409, "conflict"), ("itself", 422, "invalid"), ("twice", 422, "invalid"),
    ("other_restaurant", 422, "invalid"), ("stale", 412, "precondition_failed"),
    ("empty", 422, "validation_failed"), ("unknown_field", 422, "validation_failed")])
async def test_a_merge_that_cannot_happen_says_why_and_changes_nothing(
        client, db, base, rid, manager, labels, restaurant_ids, case, status, code):
    main, other = labels["D1"], labels["D2"]
    if case != "main_not_seated":
        await seat(client, base, manager, main)
    body: dict = {"table_ids": [other]}
    if case == "joining_blocked":
        await client.post(f"{base}/tables/{other}/status", headers=manager, json={"status": "blocked"})
    if case == "joining_merged":
        await seat(client, base, manager, labels["D3"])
        await client.post(f"{base}/tables/{labels['D3']}/merge", headers=manager,
                          json={"table_ids": [other]})
    body = {"itself": {"table_ids": [main]}, "twice": {"table_ids": [other, other]},
            "empty": {"table_ids": []}, "unknown_field": {"table_ids": [other], "x": 1},
            "other_restaurant": {"table_ids": [await db.fetchval(
                "SELECT id FROM dining_tables WHERE restaurant_id = $1 LIMIT 1",
                restaurant_ids["other"])]}}.get(case, body)
    headers = {**manager, "If-Match": '"99"'} if case == "stale" else manager
    before = await table_counts(db)
    response = await client.post(f"{base}/tables/{main}/merge", headers=headers, json=body)
    assert response.status == status, await response.text()
    assert (await error_of(response))["code"] == code
    assert await table_counts(db) == before


async def test_unmerge_without_merged_tables_is_a_conflict(client, db, base, manager, labels):
    before = await table_counts(db)
    response = await client.post(f"{base}/tables/{labels['D1']}/unmerge", headers=manager)
    assert response.status == 409 and (await error_of(response))["code"] == "conflict"
    assert await table_counts(db) == before


async def test_an_order_transfers_to_a_free_table_which_is_seated_and_nothing_is_refired(
        client, db, base, rid, manager, labels, menu):
    source, target = labels["D1"], labels["D2"]
    await seat(client, base, manager, source)
    order = await order_at(client, base, manager, source, menu["Burger"]["id"], guests=3)
    sent, lines, before = await kitchen_sent(db, rid), await lines_as_sent(db, rid), await seq_of(db, rid)
    response = await client.post(f"{base}/orders/{order['id']}/transfer", headers={
        **manager, "If-Match": f'"{order["version"]}"'}, json={"table_id": target})
    assert response.status == 200, await response.text()
    moved = await response.json()
    assert (moved["table_id"], moved["version"]) == (target, order["version"] + 1)
    table = await (await client.get(f"{base}/tables/{target}", headers=manager)).json()
    assert (table["status"], table["party_size"]) == ("seated", 3)
    assert await kitchen_sent(db, rid) == sent
    assert await lines_as_sent(db, rid) == lines
    # The grill redraws the burger's ticket with the new table: the same ticket, not a new one.
    assert await new_names(db, rid, before) == [("floor", "table.status"),
                                                ("orders", "order.transferred"),
                                                ("kitchen:grill", "ticket.moved")]
    redrawn = json.loads(await db.fetchval("SELECT data::text FROM events WHERE restaurant_id = $1 "
                                           "AND name = 'ticket.moved'", rid))
    assert (redrawn["ticket"]["id"], redrawn["ticket"]["table_label"], redrawn["from_table_id"]) == (
        order["items"][0]["ticket_id"], "D2", source)
    tickets = await (await client.get(f"{base}/kitchen/tickets", headers=manager)).json()
    assert {t["table_label"] for t in tickets["items"]} == {"D2"}


@pytest.mark.parametrize("case, status, code", [
    ("target_has_order", 409, "table_has_open_order"), ("target_dirty", 409, "conflict"),
    ("same_table", 422, "invalid"), ("other_restaurant", 422, "invalid"),
    ("closed", 409, "conflict"), ("stale", 412, "precondition_failed")])
async def test_an_order_transfer_that_cannot_happen_says_why_and_changes_nothing(
        client, db, base, rid, manager, labels, menu, restaurant_ids, case, status, code):
    source, target = labels["D1"], labels["D2"]
    await seat(client, base, manager, source)
    order = await order_at(client, base, manager, source, menu["Burger"]["id"])
    if case == "target_has_order":
        await seat(client, base, manager, target)
        await order_at(client, base, manager, target, menu["Cola"]["id"])
    if case == "target_dirty":
        await seat(client, base, manager, target)
        await client.post(f"{base}/tables/{target}/status", headers=manager, json={"status": "dirty"})
    if case == "same_table":
        target = source
    if case == "other_restaurant":
        target = await db.fetchval("SELECT id FROM dining_tables WHERE restaurant_id = $1 LIMIT 1",
                                   restaurant_ids["other"])
    if case == "closed":
        await client.post(f"{base}/orders/{order['id']}/close", headers=manager, json={
            "payment": {"method": "cash", "amount_minor": order["total_minor"]}})
    headers = {**manager, "If-Match": '"99"'} if case == "stale" else manager
    before = await table_counts(db)
    response = await client.post(f"{base}/orders/{order['id']}/transfer", headers=headers,
                                 json={"table_id": target})
    assert response.status == status, await response.text()
    assert (await error_of(response))["code"] == code
    assert await table_counts(db) == before


async def test_items_move_between_orders_keeping_their_tickets(client, db, base, rid, manager,
                                                                labels, menu):
    await seat(client, base, manager, labels["D1"])
    await seat(client, base, manager, labels["D2"])
    source = await order_at(client, base, manager, labels["D1"], menu["Burger"]["id"],
                            menu["Fries"]["id"], menu["Cola"]["id"])
    target = await order_at(client, base, manager, labels["D2"], menu["Salmon"]["id"])
    moving = [source["items"][1]["id"], source["items"][2]["id"]]
    sent, lines, before = await kitchen_sent(db, rid), await lines_as_sent(db, rid), await seq_of(db, rid)
    response = await client.post(f"{base}/orders/{source['id']}/items/transfer", headers={
        **manager, "If-Match": f'"{source["version"]}"'},
        json={"item_ids": moving, "to_order_id": target["id"]})
    assert response.status == 200, await response.text()
    moved = await response.json()
    assert [i["id"] for i in moved["order"]["items"]] == [source["items"][0]["id"]]
    assert [i["id"] for i in moved["to_order"]["items"]] == sorted([target["items"][0]["id"], *moving])
    assert moved["order"]["version"] == source["version"] + 1
    assert moved["to_order"]["version"] == target["version"] + 1
    assert moved["order"]["total_minor"] + moved["to_order"]["total_minor"] == (
        source["total_minor"] + target["total_minor"])
    assert await kitchen_sent(db, rid) == sent
    assert await lines_as_sent(db, rid) == lines
    # Fries and Cola were each alone on their station's ticket: those tickets go with them to the
    # other order and are redrawn there; the grill's ticket (the Burger stays) stays.
    tickets = {i["ticket_id"] for i in source["items"][1:]}
    owners = await db.fetch("SELECT id, order_id FROM tickets WHERE restaurant_id = $1 AND id = ANY($2)",
                            rid, [*tickets, source["items"][0]["ticket_id"]])
    assert {r["id"]: r["order_id"] for r in owners} == {
        **{t: target["id"] for t in tickets}, source["items"][0]["ticket_id"]: source["id"]}
    assert sorted(await new_names(db, rid, before)) == sorted(
        [("orders", "order.items_transferred")]
        + [(f"kitchen:{i['station']}", "ticket.moved") for i in source["items"][1:]])


@pytest.mark.parametrize("case, status, code", [
    ("other_orders_item", 422, "invalid"), ("void_item", 422, "invalid"),
    ("duplicate", 422, "invalid"), ("same_order", 422, "invalid"),
    ("unknown_order", 422, "invalid"), ("target_closed", 409, "conflict"),
    ("stale", 412, "precondition_failed"), ("no_items", 422, "validation_failed")])
async def test_an_items_transfer_that_cannot_happen_says_why_and_changes_nothing(
        client, db, base, rid, manager, labels, menu, case, status, code):
    source = await order_at(client, base, manager, None, menu["Burger"]["id"], menu["Fries"]["id"])
    target = await order_at(client, base, manager, None, menu["Salmon"]["id"])
    item_ids, to_order = [source["items"][0]["id"]], target["id"]
    if case == "other_orders_item":
        item_ids = [target["items"][0]["id"]]
    if case == "void_item":
        await client.post(f"{base}/orders/{source['id']}/items/{item_ids[0]}/void", headers=manager)
    if case == "duplicate":
        item_ids = item_ids * 2
    if case == "same_order":
        to_order = source["id"]
    if case == "unknown_order":
        to_order = 10**12
    if case == "target_closed":
        await client.post(f"{base}/orders/{target['id']}/close", headers=manager, json={
            "payment": {"method": "cash", "amount_minor": target["total_minor"]}})
    if case == "no_items":
        item_ids = []
    headers = {**manager, "If-Match": '"99"'} if case == "stale" else manager
    before = await table_counts(db)
    response = await client.post(f"{base}/orders/{source['id']}/items/transfer", headers=headers,
                                 json={"item_ids": item_ids, "to_order_id": to_order})
    assert response.status == status, await response.text()
    assert (await error_of(response))["code"] == code
    assert await table_counts(db) == before


async def test_a_merge_into_a_table_without_an_order_takes_the_joined_tables_order(
        client, db, base, rid, manager, labels, menu):
    main, other = labels["D6"], labels["D7"]
    await seat(client, base, manager, main, 6)
    await seat(client, base, manager, other, 2)
    order = await order_at(client, base, manager, other, menu["Burger"]["id"], menu["Cola"]["id"])
    sent, lines, before = await kitchen_sent(db, rid), await lines_as_sent(db, rid), await seq_of(db, rid)
    response = await client.post(f"{base}/tables/{main}/merge", headers=manager,
                                 json={"table_ids": [other]})
    assert response.status == 200, await response.text()
    merged = await response.json()
    assert (merged["order_id"], merged["closed_order_ids"]) == (order["id"], [])
    assert await db.fetchval("SELECT table_id FROM orders WHERE id = $1", order["id"]) == main
    assert await kitchen_sent(db, rid) == sent
    assert await lines_as_sent(db, rid) == lines
    names = await new_names(db, rid, before)
    assert names[0] == ("floor", "table.merged") and names[-1] == ("orders", "order.merged")
    assert sorted(names[1:-1]) == [("kitchen:bar", "ticket.moved"), ("kitchen:grill", "ticket.moved")]


async def test_an_order_emptied_by_a_merge_is_not_counted_as_an_order(client: TestClient, db, base,
                                                                      rid, manager, labels, menu):
    main, other = labels["D1"], labels["D2"]
    await seat(client, base, manager, main, 2)
    await seat(client, base, manager, other, 2)
    first = await order_at(client, base, manager, main, menu["Burger"]["id"], guests=2)
    await order_at(client, base, manager, other, menu["Fries"]["id"], guests=2)
    merged = await client.post(f"{base}/tables/{main}/merge", headers=manager,
                               json={"table_ids": [other]})
    assert merged.status == 200, await merged.text()
    order = await (await client.get(f"{base}/orders/{first['id']}", headers=manager)).json()
    closed = await client.post(f"{base}/orders/{first['id']}/close", headers=manager, json={
        "payment": {"method": "card", "amount_minor": order["total_minor"]}})
    assert closed.status == 200, await closed.text()
    today = await db.fetchval("SELECT (now() AT TIME ZONE timezone)::date FROM restaurants "
                              "WHERE id = $1", rid)
    daily = await (await client.get(f"{base}/reports/daily?from={today}&to={today}",
                                     headers=manager)).json()
    assert (daily["days"][0]["orders"], daily["days"][0]["gross_minor"]) == (1, order["total_minor"])
    hourly = await (await client.get(f"{base}/reports/hourly?date={today}", headers=manager)).json()
    assert sum(hour["orders"] for hour in hourly["hours"]) == 1
    dashboard = await (await client.get(f"{base}/dashboard", headers=manager)).json()
    assert dashboard["orders_closed"] == 1


async def test_a_check_paid_while_a_merge_waits_stops_the_merge(client: TestClient, db, database_url,
                                                                  base, rid, manager, labels, menu):
    """The merge reads paid checks again once it holds the orders: a check paid meanwhile counts."""
    import asyncio
    main, other = labels["D1"], labels["D2"]
    await seat(client, base, manager, main)
    await seat(client, base, manager, other)
    await order_at(client, base, manager, main, menu["Burger"]["id"])
    joining = await order_at(client, base, manager, other, menu["Fries"]["id"], menu["Cola"]["id"])
    split = await client.post(f"{base}/orders/{joining['id']}/checks/split", headers=manager,
                              json={"by": "even", "count": 2})
    assert split.status == 200, await split.text()
    check = (await split.json())["checks"][0]
    payer = await asyncpg.connect(database_url)  # a payment holding the order, as pay does
    try:
        async with payer.transaction():
            await payer.execute("SELECT 1 FROM orders WHERE id = $1 FOR NO KEY UPDATE", joining["id"])
            merging = asyncio.ensure_future(client.post(f"{base}/tables/{main}/merge",
                                                        headers=manager, json={"table_ids": [other]}))
            await asyncio.sleep(0.5)  # the merge reads the checks, then waits for the order
            assert not merging.done()
            await payer.execute("UPDATE checks SET status = 'paid', paid_at = now(), payment = "
                                "'{\"method\": \"cash\"}' WHERE id = $1", check["id"])
        response = await merging
    finally:
        await payer.close()
    assert response.status == 409, await response.text()
    after = await db.fetchrow("SELECT status FROM orders WHERE id = $1", joining["id"])
    assert after["status"] == "open"
    assert await db.fetchval("SELECT count(*) FROM order_items WHERE order_id = $1", joining["id"]) == 2
