"""Orders over HTTP: priced from the menu, coursed, fired, voided, served, closed, listed."""
from __future__ import annotations

import msgspec
import pytest
from conftest import bearer, error_of, table_counts


@pytest.fixture
async def table_ids(db, rid):
    return [r["id"] for r in await db.fetch(
        "SELECT id FROM dining_tables WHERE restaurant_id = $1 ORDER BY id", rid)]


def mod(item, name):
    return next(m["id"] for m in item["modifiers"] if m["name"] == name)


async def ok(response, status=200):
    assert response.status == status, await response.text()
    return await response.json()


async def place(client, base, headers, body):
    return await ok(await client.post(base + "/orders", headers=headers, json=body), 201)


async def bump_all(client, base, cook):
    tickets = await ok(await client.get(base + "/kitchen/tickets", headers=cook))
    for ticket in tickets["items"]:
        await ok(await client.post(base + f"/kitchen/tickets/{ticket['id']}/bump", headers=cook))


async def test_creating_an_order_is_201_with_the_documented_fields(client, db, rid, base, server,
                                                                  menu, table_ids):
    start = await db.fetchval("SELECT seq FROM restaurants WHERE id = $1", rid)
    response = await client.post(base + "/orders", headers=server, json={
        "table_id": table_ids[0], "guests": 2, "items": [{"menu_item_id": menu["Burger"]["id"]}]})
    order = await ok(response, 201)
    assert {"id", "status", "table_id", "items", "total_minor", "version"} <= set(order)
    assert (order["status"], order["table_id"], order["version"], order["total_minor"]) == (
        "open", table_ids[0], 1, 1800)
    [item] = order["items"]
    assert {"id", "menu_item_id", "qty", "status"} <= set(item)
    assert (item["menu_item_id"], item["qty"], item["name"], item["station"]) == (
        menu["Burger"]["id"], 1, "Burger", "grill")
    assert response.headers["X-Serveline-Seq"] == str(start + 2)
    names = await db.fetch("SELECT channel, name, data FROM events WHERE restaurant_id = $1 AND seq > $2"
                           " ORDER BY seq", rid, start)
    assert [(r["channel"], r["name"]) for r in names] == [("orders", "order.created"),
                                                          ("kitchen:grill", "ticket.fired")]
    assert msgspec.json.decode(names[0]["data"])["order"] == order
    assert await ok(await client.get(base + f"/orders/{order['id']}", headers=server)) == order


async def test_totals_are_qty_times_price_plus_modifier_deltas(client, db, base, server, menu):
    burger, fries, espresso = menu["Burger"], menu["Fries"], menu["Espresso"]
    order = await place(client, base, server, {"items": [
        {"menu_item_id": burger["id"], "qty": 2,
         "modifiers": [mod(burger, "Add bacon"), mod(burger, "Medium")]},
        {"menu_item_id": fries["id"], "qty": 3, "modifiers": [mod(fries, "Truffle")]},
        {"menu_item_id": espresso["id"], "modifiers": [mod(espresso, "Double")]},
        {"menu_item_id": menu["Ribeye"]["id"], "course": 2}]})
    lines = [(i["unit_price_minor"], i["modifiers_minor"], i["line_total_minor"]) for i in order["items"]]
    assert lines == [(1800, 300, 4200), (600, 300, 2700), (300, 100, 400), (3800, 0, 3800)]
    assert [m["name"] for m in order["items"][0]["modifiers"]] == ["Add bacon", "Medium"]
    assert (order["total_minor"], order["void_minor"]) == (2 * 2100 + 3 * 900 + 400 + 3800, 0)
    assert await db.fetchval("SELECT sum(line_total_minor) FROM order_items WHERE order_id = $1",
                             order["id"]) == 11100


async def test_a_voided_line_leaves_the_total_and_counts_in_void_minor(client, db, base, server, menu):
    fries = menu["Fries"]
    order = await place(client, base, server, {"items": [
        {"menu_item_id": menu["Burger"]["id"], "qty": 2},
        {"menu_item_id": fries["id"], "qty": 2, "modifiers": [mod(fries, "Truffle")]}]})
    fries_line = order["items"][1]["id"]
    voided = await ok(await client.post(base + f"/orders/{order['id']}/items/{fries_line}/void",
                                        headers=server, json={"reason": "sent back"}))
    assert voided["items"][1]["status"] == "void" and voided["items"][1]["void_reason"] == "sent back"
    assert (voided["total_minor"], voided["void_minor"], voided["version"]) == (3600, 1800, 2)
    row = await db.fetchrow("SELECT status, voided_at FROM order_items WHERE id = $1", fries_line)
    assert row["status"] == "void" and row["voided_at"] is not None


async def test_voiding_an_item_twice_is_409_and_writes_nothing(client, db, base, server, menu):
    order = await place(client, base, server, {"items": [{"menu_item_id": menu["Burger"]["id"]}]})
    url = base + f"/orders/{order['id']}/items/{order['items'][0]['id']}/void"
    await ok(await client.post(url, headers=server))
    before = await table_counts(db)
    response = await client.post(url, headers=server)
    assert response.status == 409
    assert (await error_of(response))["code"] == "conflict"
    assert await table_counts(db) == before


async def test_course_1_fires_at_once_and_later_courses_wait_for_fire(client, db, base, server, menu):
    order = await place(client, base, server, {"items": [
        {"menu_item_id": menu["Burger"]["id"]}, {"menu_item_id": menu["Tiramisu"]["id"], "course": 2},
        {"menu_item_id": menu["Espresso"]["id"], "course": 3}]})
    assert [i["status"] for i in order["items"]] == ["fired", "new", "new"]
    assert order["items"][0]["ticket_id"] is not None and order["items"][1]["ticket_id"] is None
    assert order["fired_course"] == 1
    fired = await ok(await client.post(base + f"/orders/{order['id']}/fire", headers=server,
                                       json={"course": 2}))
    assert [i["status"] for i in fired["items"]] == ["fired", "fired", "new"]
    assert fired["fired_course"] == 2
    assert await db.fetchval("SELECT count(*) FROM tickets WHERE order_id = $1", order["id"]) == 2


async def test_firing_when_nothing_is_held_is_409_and_writes_nothing(client, db, base, server, menu):
    order = await place(client, base, server, {"items": [{"menu_item_id": menu["Burger"]["id"]}]})
    before = await table_counts(db)
    response = await client.post(base + f"/orders/{order['id']}/fire", headers=server, json={"course": 2})
    assert response.status == 409
    assert (await error_of(response))["code"] == "nothing_to_fire"
    assert await table_counts(db) == before


async def test_hold_true_holds_every_course_until_fired(client, db, base, server, menu):
    order = await place(client, base, server, {"hold": True, "items": [
        {"menu_item_id": menu["Burger"]["id"]}, {"menu_item_id": menu["Tiramisu"]["id"], "course": 2}]})
    assert [i["status"] for i in order["items"]] == ["new", "new"]
    assert order["fired_course"] == 0
    assert await db.fetchval("SELECT count(*) FROM tickets WHERE order_id = $1", order["id"]) == 0
    fired = await ok(await client.post(base + f"/orders/{order['id']}/fire", headers=server))
    assert [i["status"] for i in fired["items"]] == ["fired", "fired"]


async def test_items_added_to_a_fired_course_go_straight_to_the_kitchen(client, db, base, server, menu):
    order = await place(client, base, server, {"items": [{"menu_item_id": menu["Burger"]["id"]}]})
    added = await ok(await client.post(base + f"/orders/{order['id']}/items", headers=server, json={
        "items": [{"menu_item_id": menu["Fries"]["id"]},
                  {"menu_item_id": menu["Tiramisu"]["id"], "course": 2}]}))
    assert [i["status"] for i in added["items"]] == ["fired", "fired", "new"]
    assert added["total_minor"] == 1800 + 600 + 900
    stations = await db.fetch("SELECT station FROM tickets WHERE order_id = $1 ORDER BY id", order["id"])
    assert [r["station"] for r in stations] == ["grill", "fry"]


async def test_serving_needs_a_ready_item(client, db, base, server, cook, menu):
    order = await place(client, base, server, {"items": [{"menu_item_id": menu["Burger"]["id"]}]})
    url = base + f"/orders/{order['id']}/items/{order['items'][0]['id']}/serve"
    before = await table_counts(db)
    response = await client.post(url, headers=server)
    assert response.status == 409
    error = await error_of(response)
    assert (error["code"], error["details"]) == ("conflict", [{"status": "fired"}])
    assert await table_counts(db) == before
    await bump_all(client, base, cook)
    served = await ok(await client.post(url, headers=server))
    assert served["items"][0]["status"] == "served"
    assert (await client.post(url, headers=server)).status == 409


async def test_closing_with_payment_records_it_and_the_total(client, db, base, server, cook, menu):
    order = await place(client, base, server, {"items": [{"menu_item_id": menu["Ribeye"]["id"], "qty": 2}]})
    await bump_all(client, base, cook)
    closed = await ok(await client.post(base + f"/orders/{order['id']}/close", headers=server, json={
        "payment": {"method": "card", "amount_minor": 8000, "tip_minor": 1200, "reference": "A1"}}))
    assert closed["status"] == "closed" and closed["closed_at"] is not None
    assert closed["payment"] == {"method": "card", "amount_minor": 8000, "tip_minor": 1200,
                                 "reference": "A1", "total_minor": 7600}
    assert await db.fetchval("SELECT status FROM orders WHERE id = $1", order["id"]) == "closed"


async def test_a_payment_below_the_total_is_422_and_writes_nothing(client, db, base, server, menu):
    order = await place(client, base, server, {"items": [{"menu_item_id": menu["Ribeye"]["id"]}]})
    before = await table_counts(db)
    response = await client.post(base + f"/orders/{order['id']}/close", headers=server,
                                 json={"payment": {"method": "cash", "amount_minor": 3799}})
    assert response.status == 422
    error = await error_of(response)
    assert error["code"] == "invalid"
    assert error["details"] == [{"path": "$.payment.amount_minor", "total_minor": 3800, "due_minor": 3800}]
    assert await table_counts(db) == before


async def test_closing_with_held_items_is_409_and_writes_nothing(client, db, base, server, menu):
    order = await place(client, base, server, {"items": [
        {"menu_item_id": menu["Burger"]["id"]}, {"menu_item_id": menu["Tiramisu"]["id"], "course": 2}]})
    before = await table_counts(db)
    response = await client.post(base + f"/orders/{order['id']}/close", headers=server,
                                 json={"payment": {"method": "cash", "amount_minor": 10_000}})
    assert response.status == 409
    error = await error_of(response)
    assert (error["code"], error["details"]) == ("conflict", [{"item_ids": [order["items"][1]["id"]]}])
    assert await table_counts(db) == before


async def test_a_closed_order_takes_no_more_items(client, db, base, server, menu):
    order = await place(client, base, server, {"items": [{"menu_item_id": menu["Espresso"]["id"]}]})
    await ok(await client.post(base + f"/orders/{order['id']}/close", headers=server,
                               json={"payment": {"method": "cash", "amount_minor": 300}}))
    before = await table_counts(db)
    response = await client.post(base + f"/orders/{order['id']}/items", headers=server,
                                 json={"items": [{"menu_item_id": menu["Espresso"]["id"]}]})
    assert response.status == 409
    assert (await error_of(response))["code"] == "conflict"
    assert await table_counts(db) == before


async def test_open_orders_page_through_with_the_next_cursor(client, base, server, menu):
    ids = [(await place(client, base, server, {"items": [{"menu_item_id": menu["Cola"]["id"]}]}))["id"]
           for _ in range(8)]
    await ok(await client.post(base + f"/orders/{ids[3]}/close", headers=server,
                               json={"payment": {"method": "cash", "amount_minor": 400}}))
    seen, pages, url = [], [], base + "/orders?status=open&limit=3"
    while url:
        page = await ok(await client.get(url, headers=server))
        pages.append(len(page["items"]))
        seen += [o["id"] for o in page["items"]]
        assert all(o["status"] == "open" for o in page["items"])
        url = base + f"/orders?status=open&limit=3&cursor={page['next']}" if page["next"] else None
    assert pages == [3, 3, 1]
    assert seen == [i for i in ids if i != ids[3]]


@pytest.mark.parametrize("cursor", ["garbage!", "bm90IGpzb24", "WyJhIl0", "e30"])
async def test_a_garbage_cursor_is_400_invalid_cursor(client, base, server, cursor):
    response = await client.get(base + f"/orders?status=open&cursor={cursor}", headers=server)
    assert response.status == 400
    assert (await error_of(response))["code"] == "invalid_cursor"


async def test_every_item_lifecycle_step_is_timestamped(client, db, base, server, cook, menu):
    order = await place(client, base, server, {"items": [
        {"menu_item_id": menu["Burger"]["id"]}, {"menu_item_id": menu["Fries"]["id"]}]})
    burger, fries = (i["id"] for i in order["items"])
    grill = (await ok(await client.get(base + "/kitchen/tickets?station=grill", headers=cook)))["items"][0]
    await ok(await client.post(base + f"/kitchen/tickets/{grill['id']}/start", headers=cook))
    await ok(await client.post(base + f"/kitchen/tickets/{grill['id']}/bump", headers=cook))
    await ok(await client.post(base + f"/orders/{order['id']}/items/{burger}/serve", headers=server))
    await ok(await client.post(base + f"/orders/{order['id']}/items/{fries}/void", headers=server))
    row = await db.fetchrow("SELECT * FROM order_items WHERE id = $1", burger)
    assert row["status"] == "served"
    assert row["created_at"] <= row["fired_at"] <= row["cooking_at"] <= row["ready_at"] <= row["served_at"]
    assert row["voided_at"] is None
    row = await db.fetchrow("SELECT * FROM order_items WHERE id = $1", fries)
    assert row["status"] == "void" and row["fired_at"] is not None and row["voided_at"] is not None
    assert (row["cooking_at"], row["ready_at"], row["served_at"]) == (None, None, None)


def burger_line(menu, **changes):
    return {"menu_item_id": menu["Burger"]["id"], **changes}


BAD_SHAPES = [
    ("negative qty", lambda m: {"items": [burger_line(m, qty=-1)]}, "$.items[0].qty"),
    ("qty 0", lambda m: {"items": [burger_line(m, qty=0)]}, "$.items[0].qty"),
    ("qty 100", lambda m: {"items": [burger_line(m, qty=100)]}, "$.items[0].qty"),
    ("course 0", lambda m: {"items": [burger_line(m, course=0)]}, "$.items[0].course"),
    ("empty items", lambda m: {"items": []}, "$.items"),
    ("no items", lambda m: {"table_id": 1}, "$"),
    ("qty as text", lambda m: {"items": [burger_line(m, qty="2")]}, "$.items[0].qty"),
    ("table as text", lambda m: {"table_id": "D1", "items": [burger_line(m)]}, "$.table_id"),
    ("items as object", lambda m: {"items": burger_line(m)}, "$.items"),
    ("modifier as name", lambda m: {"items": [burger_line(m, modifiers=["Add bacon"])]},
     "$.items[0].modifiers[0]"),
    ("menu item id beyond bigint", lambda m: {"items": [{"menu_item_id": 2**63}]},
     "$.items[0].menu_item_id"),
    ("table id beyond bigint", lambda m: {"table_id": 2**63, "items": [burger_line(m)]}, "$.table_id"),
    ("unknown field", lambda m: {"items": [burger_line(m)], "tip": 5}, "$"),
    ("unknown line field", lambda m: {"items": [burger_line(m, price_minor=1)]}, "$.items[0]"),
]


@pytest.mark.parametrize(("case", "body", "path"), BAD_SHAPES, ids=[c[0] for c in BAD_SHAPES])
async def test_a_badly_shaped_order_is_422_and_writes_nothing(client, db, base, server, menu,
                                                              case, body, path):
    before = await table_counts(db)
    response = await client.post(base + "/orders", headers=server, json=body(menu))
    assert response.status == 422
    error = await error_of(response)
    assert (error["code"], error["details"][0]["path"]) == ("validation_failed", path)
    assert await table_counts(db) == before


async def test_an_unknown_menu_item_is_422_at_its_path_and_writes_nothing(client, db, base, server):
    before = await table_counts(db)
    response = await client.post(base + "/orders", headers=server,
                                 json={"items": [{"menu_item_id": 987_654}]})
    assert response.status == 422
    error = await error_of(response)
    assert (error["code"], error["details"][0]["path"]) == ("invalid", "$.items[0].menu_item_id")
    assert await table_counts(db) == before


async def test_another_items_modifier_is_422_and_writes_nothing(client, db, base, server, menu):
    before = await table_counts(db)
    response = await client.post(base + "/orders", headers=server, json={"items": [
        {"menu_item_id": menu["Cola"]["id"]},
        burger_line(menu, modifiers=[mod(menu["Burger"], "No onion"), mod(menu["Fries"], "Truffle")])]})
    assert response.status == 422
    error = await error_of(response)
    assert (error["code"], error["details"][0]["path"]) == ("invalid", "$.items[1].modifiers[1]")
    assert await table_counts(db) == before


async def test_another_restaurants_table_or_menu_item_is_422_and_writes_nothing(
        client, db, restaurant_ids, base, server, menu):
    other = restaurant_ids["other"]
    other_table = await db.fetchval("SELECT min(id) FROM dining_tables WHERE restaurant_id = $1", other)
    other_burger = await db.fetchval(
        "SELECT id FROM menu_items WHERE restaurant_id = $1 AND name = 'Burger'", other)
    before = await table_counts(db)
    for body, path in (({"table_id": other_table, "items": [burger_line(menu)]}, "$.table_id"),
                       ({"items": [{"menu_item_id": other_burger}]}, "$.items[0].menu_item_id")):
        response = await client.post(base + "/orders", headers=server, json=body)
        assert response.status == 422
        error = await error_of(response)
        assert (error["code"], error["details"][0]["path"]) == ("invalid", path)
    assert await table_counts(db) == before


async def test_ordering_an_86d_item_is_409_and_writes_nothing(client, db, base, server, cook, menu):
    await ok(await client.post(base + f"/menu/items/{menu['Fries']['id']}/availability", headers=cook,
                               json={"available": False}))
    before = await table_counts(db)
    response = await client.post(base + "/orders", headers=server, json={"items": [
        burger_line(menu), {"menu_item_id": menu["Fries"]["id"]}]})
    assert response.status == 409
    error = await error_of(response)
    assert error["code"] == "conflict" and "86" in error["message"]
    assert error["details"] == [{"path": "$.items[1].menu_item_id", "menu_item_id": menu["Fries"]["id"]}]
    assert await table_counts(db) == before


@pytest.mark.parametrize("role", ["host", "kitchen"])
async def test_only_servers_and_managers_take_orders(client, db, base, tokens, menu, role):
    headers = bearer(await tokens(role))
    before = await table_counts(db)
    response = await client.post(base + "/orders", headers=headers, json={"items": [burger_line(menu)]})
    assert response.status == 403
    assert (await error_of(response))["code"] == "forbidden"
    assert await table_counts(db) == before


async def test_duplicate_modifiers_and_lines_below_zero_are_422_and_write_nothing(client, db, rid, tokens):
    manager = bearer(await tokens("manager"))
    base = f"/api/v1/restaurants/{rid}"
    menu = await (await client.get(base + "/menu", headers=manager)).json()
    category = menu["categories"][0]["id"]
    cheap = await (await client.post(base + "/menu/items", headers=manager, json={
        "category_id": category, "name": "Tap water", "price_minor": 100, "station": "bar",
        "modifiers": [{"name": "Big discount", "price_delta_minor": -500}, {"name": "Ice"}]})).json()
    before = await table_counts(db)
    for line, path in (({"menu_item_id": cheap["id"], "modifiers": [cheap["modifiers"][1]["id"]] * 2},
                        "$.items[0].modifiers"),
                       ({"menu_item_id": cheap["id"], "modifiers": [cheap["modifiers"][0]["id"]]},
                        "$.items[0].modifiers")):
        response = await client.post(base + "/orders", headers=manager, json={"items": [line]})
        assert response.status == 422, await response.text()
        assert (await error_of(response))["details"][0]["path"] == path
    assert await table_counts(db) == before


async def test_a_line_whose_total_passes_what_a_line_holds_is_422_and_writes_nothing(
        client, db, base, server, tokens, menu):
    """Each figure is bounded, but 99 × (the top price and 20 top modifiers) is not: a clear 422."""
    owner = {"Authorization": f"Bearer {await tokens('owner')}"}
    item = await client.post(base + "/menu/items", headers=owner, json={
        "category_id": menu["Burger"]["category_id"], "name": "Whole truffle", "station": "grill",
        "price_minor": 10_000_000, "modifiers": [
            {"name": f"gold leaf {n}", "price_delta_minor": 1_000_000} for n in range(20)]})
    assert item.status == 201, await item.text()
    item = await item.json()
    item = item.get("item", item)
    before = await table_counts(db)
    response = await client.post(base + "/orders", headers=server, json={"items": [{
        "menu_item_id": item["id"], "qty": 99, "modifiers": [m["id"] for m in item["modifiers"]]}]})
    assert response.status == 422, await response.text()
    assert (await error_of(response))["code"] == "invalid"
    assert await table_counts(db) == before
