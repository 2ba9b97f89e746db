"""Edits of a taken order: PATCH of a line (If-Match: the line's version), the ticket's change log
on edits and voids, and one open order per table."""
from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from conftest import bearer, error_of, table_counts


async def ok(response, status=200):
    assert response.status == status, await response.text()
    return await response.json()


async def place(client, base, headers, items, **extra):
    return await ok(await client.post(base + "/orders", headers=headers,
                                      json={"items": items, **extra}), 201)


def line(order, name):
    return next(i for i in order["items"] if i["name"] == name)


async def patch(client, base, headers, order, item, body, version=None):
    extra = {} if version is None else {"If-Match": f'"{version}"'}
    return await client.patch(base + f"/orders/{order['id']}/items/{item['id']}",
                              headers={**headers, **extra}, json=body)


async def events_after(db, rid, seq):
    rows = await db.fetch("SELECT channel, name, data FROM events WHERE restaurant_id = $1 "
                          "AND seq > $2 ORDER BY seq", rid, seq)
    return [(r["channel"], r["name"], msgspec.json.decode(r["data"])) for r in rows]


async def seq_of(db, rid):
    return await db.fetchval("SELECT seq FROM restaurants WHERE id = $1", rid)


@pytest.fixture
async def free_tables(db, rid):
    return [r["id"] for r in await db.fetch(
        "SELECT id FROM dining_tables WHERE restaurant_id = $1 ORDER BY id", rid)]


async def test_a_line_not_yet_sent_changes_qty_note_seat_and_course(client, db, rid, base, server,
                                                                   menu):
    order = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"]},
                                               {"menu_item_id": menu["Tiramisu"]["id"], "course": 3}])
    cake = line(order, "Tiramisu")
    assert cake["status"] == "new" and cake["ticket_id"] is None
    tickets_before = await db.fetch("SELECT id, version, changes FROM tickets ORDER BY id")
    start = await seq_of(db, rid)
    response = await patch(client, base, server, order, cake,
                           {"qty": 2, "note": "two spoons", "seat": 3, "course": 2}, cake["version"])
    changed = await ok(response)
    now = line(changed, "Tiramisu")
    assert (now["qty"], now["note"], now["seat"], now["course"], now["status"]) == (
        2, "two spoons", 3, 2, "new")
    assert now["version"] == cake["version"] + 1 and changed["version"] == order["version"] + 1
    assert now["line_total_minor"] == 1800 and changed["total_minor"] == 1800 + 1800
    assert response.headers["X-Serveline-Seq"] == str(start + 1)
    [(channel, name, data)] = await events_after(db, rid, start)
    assert (channel, name, data["item_id"]) == ("orders", "item.updated", cake["id"])
    assert data["order"] == changed
    # Nothing sent, so no ticket changed.
    assert await db.fetch("SELECT id, version, changes FROM tickets ORDER BY id") == tickets_before
    # The seat can be cleared again.
    cleared = await ok(await patch(client, base, server, order, now, {"seat": None}, now["version"]))
    assert line(cleared, "Tiramisu")["seat"] is None
    # Moved to a course: it goes with that course's fire.
    fired = await ok(await client.post(base + f"/orders/{order['id']}/fire", headers=server,
                                       json={"course": 2}))
    assert line(fired, "Tiramisu")["status"] == "fired"


async def test_qty_and_note_of_a_sent_line_are_added_to_its_ticket(client, db, rid, base, server,
                                                                   tokens, open_socket, menu):
    order = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"]},
                                               {"menu_item_id": menu["Ribeye"]["id"]}])
    burger = line(order, "Burger")
    assert burger["ticket_id"] is not None
    ticket_before = await db.fetchrow("SELECT version, changes FROM tickets WHERE id = $1",
                                      burger["ticket_id"])
    assert msgspec.json.decode(ticket_before["changes"]) == []
    screen = await open_socket(rid, await tokens("kitchen"))
    await screen.send(type="subscribe", channels=["kitchen:grill"])
    await screen.until("subscribed")
    start = await seq_of(db, rid)
    changed = await ok(await patch(client, base, server, order, burger,
                                   {"qty": 2, "note": "no onions"}, burger["version"]))
    assert (line(changed, "Burger")["qty"], line(changed, "Burger")["note"]) == (2, "no onions")

    ticket = await db.fetchrow("SELECT version, changes, changed_at FROM tickets WHERE id = $1",
                               burger["ticket_id"])
    changes = msgspec.json.decode(ticket["changes"])
    assert [(c["kind"], c["item_id"], c["name"], c["text"]) for c in changes] == [
        ("qty", burger["id"], "Burger", "qty 1 → 2"),
        ("note", burger["id"], "Burger", "note: no onions")]
    assert ticket["version"] == ticket_before["version"] + 1 and ticket["changed_at"] is not None
    assert all(c["at"] for c in changes)

    found = await events_after(db, rid, start)
    assert [(c, n) for c, n, _ in found] == [("orders", "item.updated"),
                                             ("kitchen:grill", "ticket.changed")]
    told = found[1][2]
    assert told["ticket"]["id"] == burger["ticket_id"] and told["changes"] == changes
    assert told["ticket"]["changes"] == changes
    heard = await screen.until("event", "ticket.changed")
    assert heard["data"]["ticket"]["items"][0]["qty"] == 2
    # The kitchen's list shows the change too.
    listed = await ok(await client.get(base + "/kitchen/tickets?station=grill", headers=server))
    assert listed["items"][0]["changes"] == changes

    # A seat change of a sent line is shown as "moved"; a second change appends.
    again = await ok(await patch(client, base, server, order, line(changed, "Burger"), {"seat": 2}))
    assert line(again, "Burger")["seat"] == 2
    changes = msgspec.json.decode(await db.fetchval("SELECT changes FROM tickets WHERE id = $1",
                                                    burger["ticket_id"]))
    assert [(c["kind"], c["text"]) for c in changes][2:] == [("moved", "seat – → 2")]


async def test_lines_added_to_a_sent_course_join_its_open_ticket_and_say_so(client, db, rid, base,
                                                                           server, cook, menu):
    order = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"]}])
    grill = line(order, "Burger")["ticket_id"]
    before = await seq_of(db, rid)
    added = await ok(await client.post(base + f"/orders/{order['id']}/items", headers=server, json={
        "items": [{"menu_item_id": menu["Burger"]["id"], "qty": 2},
                  {"menu_item_id": menu["Fries"]["id"]}]}))
    burgers = [i for i in added["items"] if i["name"] == "Burger"]
    fries = line(added, "Fries")
    # The grill's open ticket of course 1 takes the new burgers; the fry station gets a new ticket.
    assert [i["ticket_id"] for i in burgers] == [grill, grill]
    assert fries["ticket_id"] not in (None, grill)
    told = [(name, data) for _, name, data in await events_after(db, rid, before)]
    assert [name for name, _ in told] == ["order.items_added", "ticket.changed", "ticket.fired"]
    changed = told[1][1]
    assert [(c["kind"], c["item_id"], c["text"]) for c in changed["changes"]] == [
        ("added", burgers[1]["id"], "ADD 2× Burger")]
    ticket = changed["ticket"]
    assert ticket["id"] == grill and ticket["changed_at"] is not None
    assert sorted(i["id"] for i in ticket["items"]) == sorted(i["id"] for i in burgers)
    assert [c["text"] for c in ticket["changes"]] == ["ADD 2× Burger"]
    assert [i["id"] for i in told[2][1]["ticket"]["items"]] == [fries["id"]]
    # Once the grill has bumped its ticket, the next burger goes on a new one.
    bumped = await client.post(base + f"/kitchen/tickets/{grill}/bump", headers=cook)
    assert bumped.status == 200, await bumped.text()
    again = await ok(await client.post(base + f"/orders/{order['id']}/items", headers=server, json={
        "items": [{"menu_item_id": menu["Burger"]["id"]}]}))
    assert again["items"][-1]["ticket_id"] not in (None, grill)
    kept = await db.fetchval("SELECT changes FROM tickets WHERE id = $1", grill)
    assert msgspec.json.decode(kept) == ticket["changes"]  # the log stays with the bumped ticket


async def test_a_patch_with_the_values_a_line_has_records_no_ticket_change(client, db, base, server,
                                                                          menu):
    order = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"]}])
    burger = order["items"][0]
    same = await ok(await patch(client, base, server, order, burger, {"qty": 1, "note": ""}))
    assert line(same, "Burger")["version"] == burger["version"] + 1
    assert await db.fetchval("SELECT changes FROM tickets WHERE id = $1", burger["ticket_id"]) == "[]"


async def test_voiding_a_sent_line_adds_a_voided_change_to_its_ticket(client, db, rid, base, server,
                                                                      menu):
    order = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"], "qty": 2},
                                               {"menu_item_id": menu["Ribeye"]["id"]}])
    burger = line(order, "Burger")
    start = await seq_of(db, rid)
    await ok(await client.post(base + f"/orders/{order['id']}/items/{burger['id']}/void",
                               headers=server))
    ticket = await db.fetchrow("SELECT status, changes, changed_at FROM tickets WHERE id = $1",
                               burger["ticket_id"])
    changes = msgspec.json.decode(ticket["changes"])
    assert [(c["kind"], c["item_id"], c["text"]) for c in changes] == [
        ("voided", burger["id"], "VOID 2× Burger")]
    assert ticket["status"] == "open" and ticket["changed_at"] is not None
    names = [(c, n) for c, n, _ in await events_after(db, rid, start)]
    assert names == [("orders", "item.voided"), ("kitchen:grill", "item.voided"),
                     ("kitchen:grill", "ticket.changed")]


async def test_voiding_a_tickets_last_line_records_it_and_closes_the_ticket(client, db, rid, base,
                                                                            server, menu):
    order = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"]}])
    burger = order["items"][0]
    start = await seq_of(db, rid)
    await ok(await client.post(base + f"/orders/{order['id']}/items/{burger['id']}/void",
                               headers=server))
    ticket = await db.fetchrow("SELECT status, changes FROM tickets WHERE id = $1", burger["ticket_id"])
    assert ticket["status"] == "bumped"
    assert [c["text"] for c in msgspec.json.decode(ticket["changes"])] == ["VOID 1× Burger"]
    names = [n for _, n, _ in await events_after(db, rid, start)]
    assert names == ["item.voided", "item.voided", "ticket.changed", "ticket.bumped"]


async def test_a_line_of_a_bumped_ticket_changes_no_ticket(client, db, base, server, cook, menu):
    order = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"]}])
    burger = order["items"][0]
    await ok(await client.post(base + f"/kitchen/tickets/{burger['ticket_id']}/bump", headers=cook))
    before = await db.fetchrow("SELECT version, changes FROM tickets WHERE id = $1", burger["ticket_id"])
    seated = await ok(await patch(client, base, server, order, burger, {"seat": 4}))
    assert line(seated, "Burger")["seat"] == 4
    assert await db.fetchrow("SELECT version, changes FROM tickets WHERE id = $1",
                             burger["ticket_id"]) == before


async def test_moving_a_sent_lines_course_is_409_already_sent_and_writes_nothing(client, db, base,
                                                                                 server, menu):
    order = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"]}])
    burger = order["items"][0]
    before = await table_counts(db)
    response = await patch(client, base, server, order, burger, {"course": 2, "qty": 3},
                           burger["version"])
    assert response.status == 409
    error = await error_of(response)
    assert error["code"] == "already_sent" and "course" in error["message"]
    assert error["details"] == [{"path": "$.course", "status": "fired"}]
    assert await table_counts(db) == before
    assert await db.fetchval("SELECT version FROM order_items WHERE id = $1", burger["id"]) == burger["version"]


async def test_qty_of_a_ready_line_is_409_already_sent(client, db, base, server, cook, menu):
    order = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"]}])
    burger = order["items"][0]
    await ok(await client.post(base + f"/kitchen/tickets/{burger['ticket_id']}/bump", headers=cook))
    before = await table_counts(db)
    response = await patch(client, base, server, order, burger, {"qty": 2})
    assert response.status == 409 and (await error_of(response))["code"] == "already_sent"
    assert await table_counts(db) == before


@pytest.mark.parametrize("step", ["void", "served"])
async def test_a_void_or_served_line_cannot_change(client, db, base, server, cook, menu, step):
    order = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"]}])
    burger = order["items"][0]
    url = base + f"/orders/{order['id']}/items/{burger['id']}"
    if step == "void":
        await ok(await client.post(url + "/void", headers=server))
    else:
        await ok(await client.post(base + f"/kitchen/tickets/{burger['ticket_id']}/bump", headers=cook))
        await ok(await client.post(url + "/serve", headers=server))
    before = await table_counts(db)
    response = await patch(client, base, server, order, burger, {"note": "late"})
    assert response.status == 409
    error = await error_of(response)
    assert error["code"] == "conflict" and error["details"] == [{"status": step}]
    assert await table_counts(db) == before


async def test_a_stale_if_match_is_412_with_the_current_line_and_writes_nothing(client, db, base,
                                                                                server, menu):
    order = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"]}])
    burger = order["items"][0]
    moved = line(await ok(await patch(client, base, server, order, burger, {"seat": 1},
                                      burger["version"])), "Burger")
    before = await table_counts(db)
    response = await patch(client, base, server, order, burger, {"qty": 5}, burger["version"])
    assert response.status == 412
    error = await error_of(response)
    assert error["code"] == "precondition_failed"
    assert error["details"] == [{"version": moved["version"], "item": moved}]
    assert await table_counts(db) == before
    assert await db.fetchval("SELECT qty FROM order_items WHERE id = $1", burger["id"]) == 1


BAD_BODIES = [
    ("empty patch", {}, 422, "invalid", "$"),
    ("qty 0", {"qty": 0}, 422, "validation_failed", "$.qty"),
    ("qty 100", {"qty": 100}, 422, "validation_failed", "$.qty"),
    ("course 0", {"course": 0}, 422, "validation_failed", "$.course"),
    ("course 10", {"course": 10}, 422, "validation_failed", "$.course"),
    ("seat 0", {"seat": 0}, 422, "validation_failed", "$.seat"),
    ("seat 101", {"seat": 101}, 422, "validation_failed", "$.seat"),
    ("note too long", {"note": "x" * 301}, 422, "validation_failed", "$.note"),
    ("qty as text", {"qty": "2"}, 422, "validation_failed", "$.qty"),
    ("unknown field", {"price_minor": 1}, 422, "validation_failed", "$"),
    ("a list", [], 422, "validation_failed", "$"),
]


@pytest.mark.parametrize("body,status,code,path", [b[1:] for b in BAD_BODIES],
                         ids=[b[0] for b in BAD_BODIES])
async def test_a_bad_patch_is_refused_clearly_and_writes_nothing(client, db, base, server, menu,
                                                                 body, status, code, path):
    order = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"], "course": 2}])
    before = await table_counts(db)
    response = await patch(client, base, server, order, order["items"][0], body)
    assert response.status == status
    error = await error_of(response)
    assert error["code"] == code and error["details"][0]["path"] == path
    assert await table_counts(db) == before


async def test_unknown_items_orders_and_other_orders_items_are_404(client, db, base, server, menu,
                                                                   tokens, restaurant_ids):
    first = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"]}])
    second = await place(client, base, server, [{"menu_item_id": menu["Fries"]["id"]}])
    before = await table_counts(db)
    for order_id, item_id in ((first["id"], 999_999), (first["id"], second["items"][0]["id"]),
                              (999_999, first["items"][0]["id"]), (first["id"], "abc")):
        response = await client.patch(base + f"/orders/{order_id}/items/{item_id}", headers=server,
                                      json={"qty": 2})
        assert response.status == 404, (order_id, item_id)
        assert (await error_of(response))["code"] == "not_found"
    assert await table_counts(db) == before


async def test_a_line_of_a_closed_order_cannot_change(client, db, base, server, cook, menu):
    order = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"]}])
    await ok(await client.post(base + f"/kitchen/tickets/{order['items'][0]['ticket_id']}/bump",
                               headers=cook))
    await ok(await client.post(base + f"/orders/{order['id']}/close", headers=server,
                               json={"payment": {"method": "cash", "amount_minor": 1800}}))
    before = await table_counts(db)
    response = await patch(client, base, server, order, order["items"][0], {"seat": 1})
    assert response.status == 409 and (await error_of(response))["code"] == "conflict"
    assert await table_counts(db) == before


async def test_hosts_and_the_kitchen_cannot_change_lines(client, db, base, server, tokens, menu):
    order = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"]}])
    others = {role: bearer(await tokens(role)) for role in ("host", "kitchen")}
    before = await table_counts(db)
    for role, headers in others.items():
        response = await patch(client, base, headers, order, order["items"][0], {"qty": 2})
        assert response.status == 403, role
    assert await table_counts(db) == before


# One open order per table.

async def test_a_second_order_for_a_table_is_409_naming_the_open_one(client, db, base, server,
                                                                     menu, free_tables):
    table = free_tables[0]
    first = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"]}],
                        table_id=table)
    before = await table_counts(db)
    response = await client.post(base + "/orders", headers=server, json={
        "table_id": table, "items": [{"menu_item_id": menu["Fries"]["id"]}]})
    assert response.status == 409
    error = await error_of(response)
    assert error["code"] == "table_has_open_order" and str(first["id"]) in error["message"]
    assert error["details"] == [{"path": "$.table_id", "table_id": table, "order_id": first["id"]}]
    assert await table_counts(db) == before
    # Another table, and orders without a table, are not limited.
    await place(client, base, server, [{"menu_item_id": menu["Fries"]["id"]}], table_id=free_tables[1])
    await place(client, base, server, [{"menu_item_id": menu["Fries"]["id"]}])
    await place(client, base, server, [{"menu_item_id": menu["Fries"]["id"]}])


async def test_once_the_tables_order_is_closed_it_takes_a_new_one(client, db, base, server, cook,
                                                                  menu, free_tables):
    first = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"]}],
                        table_id=free_tables[0])
    await ok(await client.post(base + f"/kitchen/tickets/{first['items'][0]['ticket_id']}/bump",
                               headers=cook))
    await ok(await client.post(base + f"/orders/{first['id']}/close", headers=server,
                               json={"payment": {"method": "card", "amount_minor": 1800}}))
    second = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"]}],
                         table_id=free_tables[0])
    assert second["id"] != first["id"]


async def test_two_ipads_ordering_for_one_table_at_once_make_one_order(client, db, rid, base, tokens,
                                                                       menu, free_tables):
    table = free_tables[2]
    ipads = [bearer(await tokens("server")), bearer(await tokens("manager"))]

    async def take(n):
        return await client.post(base + "/orders", headers=ipads[n % 2], json={
            "table_id": table, "items": [{"menu_item_id": menu["Burger"]["id"]}]})

    answers = await asyncio.gather(*(take(n) for n in range(20)))
    made = [await r.json() for r in answers if r.status == 201]
    refused = [await error_of(r) for r in answers if r.status == 409]
    assert len(made) == 1 and len(refused) == 19, [r.status for r in answers]
    assert {e["details"][0]["order_id"] for e in refused} == {made[0]["id"]}
    assert await db.fetchval("SELECT count(*) FROM orders WHERE restaurant_id = $1 "
                             "AND table_id = $2", rid, table) == 1
    assert await db.fetchval("SELECT count(*) FROM tickets WHERE order_id = $1", made[0]["id"]) == 1


async def test_the_same_order_sent_twice_at_once_with_a_key_answers_the_first(client, db, rid, base,
                                                                              server, menu,
                                                                              free_tables):
    body = {"table_id": free_tables[3], "items": [{"menu_item_id": menu["Burger"]["id"]}]}
    headers = {**server, "Idempotency-Key": "ipad-7-order-1"}
    answers = await asyncio.gather(*(client.post(base + "/orders", headers=headers, json=body)
                                     for _ in range(6)))
    assert [r.status for r in answers] == [201] * 6, [await r.text() for r in answers]
    assert len({(await r.json())["id"] for r in answers}) == 1
    assert await db.fetchval("SELECT count(*) FROM orders WHERE restaurant_id = $1", rid) == 1


async def test_the_migration_keeps_one_open_order_per_table(db, rid):
    index = await db.fetchval("SELECT indexdef FROM pg_indexes WHERE indexname = $1",
                              "orders_one_open_per_table")
    assert "UNIQUE" in index and "WHERE (status = 'open'::text)" in index


async def test_the_migration_folds_a_tables_open_orders_into_its_oldest(client, db, rid, base, server,
                                                                        menu, free_tables):
    """A database from before the rule may hold several open orders for one table: the oldest
    keeps them all, lines and tickets, and the rule then holds."""
    await db.execute("DROP INDEX orders_one_open_per_table; "
                     "CREATE INDEX orders_table ON orders (restaurant_id, table_id) WHERE status = 'open'")
    table = free_tables[4]
    first = await place(client, base, server, [{"menu_item_id": menu["Burger"]["id"]}],
                        table_id=table, guests=2)
    second = await place(client, base, server, [{"menu_item_id": menu["Fries"]["id"]},
                                                {"menu_item_id": menu["Tiramisu"]["id"], "course": 3}],
                         table_id=table)
    alone = await place(client, base, server, [{"menu_item_id": menu["Fries"]["id"]}],
                        table_id=free_tables[5])
    sql = (Path(__file__).parent.parent / "store/migrations/0016_order_edits.sql").read_text()
    async with db.transaction():
        await db.execute(sql)
    rows = await db.fetch("SELECT id, fired_course, guests FROM orders WHERE table_id = $1", table)
    assert [(r["id"], r["fired_course"], r["guests"]) for r in rows] == [(first["id"], 1, 2)]
    lines = await db.fetch("SELECT id, order_id FROM order_items WHERE order_id = ANY($1::bigint[])",
                           [first["id"], second["id"]])
    assert {r["order_id"] for r in lines} == {first["id"]} and len(lines) == 3
    assert await db.fetchval("SELECT count(*) FROM tickets WHERE order_id = $1", first["id"]) == 2
    assert await db.fetchval("SELECT count(*) FROM orders WHERE id = $1", alone["id"]) == 1
    merged = await ok(await client.get(base + f"/orders/{first['id']}", headers=server))
    assert merged["total_minor"] == 1800 + 600 + 900
    response = await client.post(base + "/orders", headers=server, json={
        "table_id": table, "items": [{"menu_item_id": menu["Fries"]["id"]}]})
    assert response.status == 409
