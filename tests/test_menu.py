"""The menu over HTTP: the whole tree in one read, creating categories and items, editing, 86'ing."""
from __future__ import annotations

import msgspec
import pytest
from conftest import bearer, error_of, table_counts

CATEGORIES = ["Starters", "Fried", "Grill", "Pasta", "Desserts", "Drinks"]
GRILL = ["Ribeye", "Burger", "Half chicken", "Salmon", "Pork chop", "Lamb skewers",
         "Grilled vegetables", "Swordfish"]


@pytest.fixture
def base(rid):
    return f"/api/v1/restaurants/{rid}/menu"


async def events_after(db, rid, seq):
    rows = await db.fetch("SELECT channel, name, data FROM events WHERE restaurant_id = $1 AND seq > $2"
                          " ORDER BY seq", rid, seq)
    return [(r["channel"], r["name"], msgspec.json.decode(r["data"])) for r in rows]


async def seq_of(db, rid):
    return await db.fetchval("SELECT seq FROM restaurants WHERE id = $1", rid)


async def read_menu(client, base, headers):
    response = await client.get(base, headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


def item_named(menu, name):
    return next(i for c in menu["categories"] for i in c["items"] if i["name"] == name)


async def test_menu_is_one_tree_of_6_categories_and_40_items_in_sort_order(client, base, tokens):
    menu = await read_menu(client, base, bearer(await tokens("server")))
    assert menu["currency"] == "USD"
    assert [c["name"] for c in menu["categories"]] == CATEGORIES
    assert sum(len(c["items"]) for c in menu["categories"]) == 40
    assert [len(c["items"]) for c in menu["categories"]] == [6, 6, 8, 5, 5, 10]
    assert [i["name"] for i in menu["categories"][2]["items"]] == GRILL
    for category in menu["categories"]:
        assert {"id", "name", "items"} <= set(category)
        for item in category["items"]:
            assert {"id", "name", "price_minor", "station", "available", "modifiers"} <= set(item)
            assert item["available"] is True


async def test_menu_items_carry_price_station_and_modifiers_in_order(client, base, tokens):
    menu = await read_menu(client, base, bearer(await tokens("kitchen")))
    burger = item_named(menu, "Burger")
    assert (burger["price_minor"], burger["station"]) == (1800, "grill")
    assert [(m["name"], m["price_delta_minor"]) for m in burger["modifiers"]] == [
        ("Add bacon", 300), ("No onion", 0), ("Medium", 0)]
    assert all(isinstance(m["id"], int) for m in burger["modifiers"])
    fries = item_named(menu, "Fries")
    assert (fries["price_minor"], fries["station"]) == (600, "fry")
    assert [(m["name"], m["price_delta_minor"]) for m in fries["modifiers"]] == [("Truffle", 300)]
    assert item_named(menu, "Tiramisu")["modifiers"] == []


async def test_menu_answer_carries_the_seq_it_was_read_at(client, db, rid, base, tokens):
    host = bearer(await tokens("host"))
    response = await client.get(base, headers=host)
    assert response.status == 200
    # Cached: the seq the tree was read at, no newer than the restaurant's, and no menu
    # event after it (sign-ins happened since; they do not change the menu).
    seq = int(response.headers["X-Serveline-Seq"])
    assert seq <= await seq_of(db, rid)
    assert not await db.fetchval("SELECT count(*) FROM events WHERE restaurant_id = $1 "
                                 "AND channel = 'menu' AND seq > $2", rid, seq)
    eighty_six = await client.post(base + f"/items/{item_named(await response.json(), 'Fries')['id']}"
                                   "/availability", json={"available": False},
                                   headers=bearer(await tokens("kitchen")))
    written = int(eighty_six.headers["X-Serveline-Seq"])
    after = await client.get(base, headers=host)
    assert int(after.headers["X-Serveline-Seq"]) >= written
    assert item_named(await after.json(), "Fries")["available"] is False


async def test_another_restaurants_menu_is_404(client, restaurant_ids, tokens):
    response = await client.get(f"/api/v1/restaurants/{restaurant_ids['other']}/menu",
                                headers=bearer(await tokens("owner")))
    assert response.status == 404
    assert (await error_of(response))["code"] == "not_found"


async def test_manager_creates_a_category_and_it_is_announced_on_menu(client, db, rid, base, tokens):
    manager = bearer(await tokens("manager"))
    start = await seq_of(db, rid)
    response = await client.post(base + "/categories", headers=manager, json={"name": "Specials", "sort": 9})
    assert response.status == 201, await response.text()
    category = await response.json()
    assert (category["name"], category["sort"], category["items"]) == ("Specials", 9, [])
    assert response.headers["X-Serveline-Seq"] == str(start + 1)
    [(channel, name, data)] = await events_after(db, rid, start)
    assert (channel, name, data["category"]["id"]) == ("menu", "menu.category_created", category["id"])
    menu = await read_menu(client, base, manager)
    assert menu["categories"][-1]["name"] == "Specials"


async def test_duplicate_category_name_is_409_and_writes_nothing(client, db, base, tokens):
    manager = bearer(await tokens("manager"))
    before = await table_counts(db)
    response = await client.post(base + "/categories", headers=manager, json={"name": "Grill"})
    assert response.status == 409
    assert (await error_of(response))["code"] == "conflict"
    assert await table_counts(db) == before


async def test_manager_creates_an_item_with_modifiers_that_shows_in_the_menu(client, db, rid, base, tokens):
    manager = bearer(await tokens("manager"))
    menu = await read_menu(client, base, manager)
    grill = menu["categories"][2]
    start = await seq_of(db, rid)
    response = await client.post(base + "/items", headers=manager, json={
        "category_id": grill["id"], "name": "Tomahawk", "price_minor": 9500, "station": "grill",
        "sort": 99, "modifiers": [{"name": "Bone marrow", "price_delta_minor": 700},
                                  {"name": "Small", "price_delta_minor": -1500}]})
    assert response.status == 201, await response.text()
    item = await response.json()
    assert (item["name"], item["price_minor"], item["station"], item["available"]) == (
        "Tomahawk", 9500, "grill", True)
    assert [(m["name"], m["price_delta_minor"]) for m in item["modifiers"]] == [
        ("Bone marrow", 700), ("Small", -1500)]
    [(channel, name, data)] = await events_after(db, rid, start)
    assert (channel, name, data["item"]["id"]) == ("menu", "menu.item_created", item["id"])
    after = await read_menu(client, base, manager)
    assert after["categories"][2]["items"][-1] == item
    assert await db.fetchval("SELECT count(*) FROM menu_modifiers WHERE item_id = $1", item["id"]) == 2


async def test_duplicate_item_name_is_409_and_writes_nothing(client, db, base, tokens):
    manager = bearer(await tokens("manager"))
    category_id = (await read_menu(client, base, manager))["categories"][0]["id"]
    before = await table_counts(db)
    response = await client.post(base + "/items", headers=manager, json={
        "category_id": category_id, "name": "Burger", "price_minor": 100, "station": "grill",
        "modifiers": [{"name": "Extra"}]})
    assert response.status == 409
    assert (await error_of(response))["code"] == "conflict"
    assert await table_counts(db) == before


@pytest.mark.parametrize(("field", "value"), [
    ("station", "Grill"), ("station", "grill station"), ("station", ""), ("price_minor", -1),
    ("price_minor", "12.00"), ("name", ""), ("sort", 2**31), ("category_id", 2**63),
])
async def test_bad_item_field_is_422_with_its_path_and_writes_nothing(client, db, base, tokens,
                                                                       field, value):
    manager = bearer(await tokens("manager"))
    category_id = (await read_menu(client, base, manager))["categories"][0]["id"]
    body = {"category_id": category_id, "name": "Soup", "price_minor": 800, "station": "cold",
            field: value}
    before = await table_counts(db)
    response = await client.post(base + "/items", headers=manager, json=body)
    assert response.status == 422
    error = await error_of(response)
    assert error["code"] == "validation_failed"
    assert error["details"][0]["path"] == f"$.{field}"
    assert await table_counts(db) == before


async def test_unknown_category_is_422_and_writes_nothing(client, db, restaurant_ids, tokens):
    other_manager = bearer(await tokens("manager", "other"))
    other_menu = await read_menu(client, f"/api/v1/restaurants/{restaurant_ids['other']}/menu",
                                 other_manager)
    manager = bearer(await tokens("manager"))
    before = await table_counts(db)
    for category_id in (999_999, other_menu["categories"][0]["id"]):
        response = await client.post(f"/api/v1/restaurants/{restaurant_ids['demo']}/menu/items",
                                     headers=manager, json={"category_id": category_id, "name": "Soup",
                                                            "price_minor": 800, "station": "cold"})
        assert response.status == 422
        error = await error_of(response)
        assert (error["code"], error["details"][0]["path"]) == ("invalid", "$.category_id")
    assert await table_counts(db) == before


async def test_duplicate_modifier_names_are_422_and_write_nothing(client, db, base, tokens):
    manager = bearer(await tokens("manager"))
    category_id = (await read_menu(client, base, manager))["categories"][0]["id"]
    before = await table_counts(db)
    response = await client.post(base + "/items", headers=manager, json={
        "category_id": category_id, "name": "Soup", "price_minor": 800, "station": "cold",
        "modifiers": [{"name": "Bread"}, {"name": "Bread"}]})
    assert response.status == 422
    assert (await error_of(response))["code"] == "invalid"
    assert await table_counts(db) == before


@pytest.mark.parametrize("role", ["server", "host", "kitchen"])
async def test_only_managers_create_menu_items(client, db, base, tokens, role):
    headers = bearer(await tokens(role))
    before = await table_counts(db)
    response = await client.post(base + "/categories", headers=headers, json={"name": "Specials"})
    assert response.status == 403
    assert (await error_of(response))["code"] == "forbidden"
    assert await table_counts(db) == before


async def test_patch_item_with_current_if_match_changes_it_and_bumps_version(client, db, rid, base, tokens):
    manager = bearer(await tokens("manager"))
    burger = item_named(await read_menu(client, base, manager), "Burger")
    start = await seq_of(db, rid)
    response = await client.patch(base + f"/items/{burger['id']}", json={"price_minor": 1950},
                                  headers={**manager, "If-Match": f'"{burger["version"]}"'})
    assert response.status == 200, await response.text()
    patched = await response.json()
    assert (patched["price_minor"], patched["version"], patched["name"]) == (
        1950, burger["version"] + 1, "Burger")
    assert patched["modifiers"] == burger["modifiers"]
    [(channel, name, _)] = await events_after(db, rid, start)
    assert (channel, name) == ("menu", "menu.item_updated")
    assert item_named(await read_menu(client, base, manager), "Burger")["price_minor"] == 1950


async def test_patch_item_with_stale_if_match_is_412_and_writes_nothing(client, db, base, tokens):
    manager = bearer(await tokens("manager"))
    burger = item_named(await read_menu(client, base, manager), "Burger")
    url = base + f"/items/{burger['id']}"
    first = await client.patch(url, json={"price_minor": 1900}, headers={**manager, "If-Match": "1"})
    assert first.status == 200
    before = await table_counts(db)
    response = await client.patch(url, json={"price_minor": 2000}, headers={**manager, "If-Match": "1"})
    assert response.status == 412
    error = await error_of(response)
    assert (error["code"], error["details"]) == ("precondition_failed", [{"version": 2}])
    assert await table_counts(db) == before
    assert await db.fetchval("SELECT price_minor FROM menu_items WHERE id = $1", burger["id"]) == 1900


async def test_patch_to_an_existing_item_name_is_409_and_writes_nothing(client, db, base, tokens):
    manager = bearer(await tokens("manager"))
    burger = item_named(await read_menu(client, base, manager), "Burger")
    before = await table_counts(db)
    response = await client.patch(base + f"/items/{burger['id']}", headers=manager, json={"name": "Fries"})
    assert response.status == 409
    assert (await error_of(response))["code"] == "conflict"
    assert await table_counts(db) == before


async def test_patch_of_another_restaurants_item_is_404(client, db, restaurant_ids, base, tokens):
    other = await read_menu(client, f"/api/v1/restaurants/{restaurant_ids['other']}/menu",
                            bearer(await tokens("manager", "other")))
    manager = bearer(await tokens("manager"))
    before = await table_counts(db)
    response = await client.patch(base + f"/items/{item_named(other, 'Burger')['id']}",
                                  headers=manager, json={"price_minor": 1})
    assert response.status == 404
    assert (await error_of(response))["code"] == "not_found"
    assert await table_counts(db) == before


async def test_kitchen_86s_an_item_and_it_is_announced_on_menu(client, db, rid, base, tokens):
    cook = bearer(await tokens("kitchen"))
    burger = item_named(await read_menu(client, base, cook), "Burger")
    start = await seq_of(db, rid)
    response = await client.post(base + f"/items/{burger['id']}/availability", headers=cook,
                                 json={"available": False})
    assert response.status == 200, await response.text()
    assert (await response.json())["available"] is False
    [(channel, name, data)] = await events_after(db, rid, start)
    assert (channel, name) == ("menu", "menu.item_availability")
    assert (data["item_id"], data["available"], data["item"]["available"]) == (burger["id"], False, False)
    assert item_named(await read_menu(client, base, cook), "Burger")["available"] is False


async def test_an_86d_item_comes_back_with_another_availability_event(client, db, rid, base, tokens):
    cook = bearer(await tokens("kitchen"))
    url = base + f"/items/{item_named(await read_menu(client, base, cook), 'Fries')['id']}/availability"
    assert (await client.post(url, headers=cook, json={"available": False})).status == 200
    start = await seq_of(db, rid)
    response = await client.post(url, headers=cook, json={"available": True})
    assert response.status == 200
    assert (await response.json())["available"] is True
    [(channel, name, data)] = await events_after(db, rid, start)
    assert (channel, name, data["available"]) == ("menu", "menu.item_availability", True)
    assert item_named(await read_menu(client, base, cook), "Fries")["available"] is True


async def test_host_may_not_86_an_item(client, db, base, tokens):
    host = bearer(await tokens("host"))
    burger = item_named(await read_menu(client, base, host), "Burger")
    before = await table_counts(db)
    response = await client.post(base + f"/items/{burger['id']}/availability", headers=host,
                                 json={"available": False})
    assert response.status == 403
    assert (await error_of(response))["code"] == "forbidden"
    assert await table_counts(db) == before


async def test_availability_needs_a_boolean(client, db, base, tokens):
    cook = bearer(await tokens("kitchen"))
    burger = item_named(await read_menu(client, base, cook), "Burger")
    before = await table_counts(db)
    response = await client.post(base + f"/items/{burger['id']}/availability", headers=cook,
                                 json={"available": "no"})
    assert response.status == 422
    error = await error_of(response)
    assert (error["code"], error["details"][0]["path"]) == ("validation_failed", "$.available")
    assert await table_counts(db) == before
