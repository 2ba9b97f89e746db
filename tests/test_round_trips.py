"""SQL statements per hot request, counted by the app's query log: no N+1, numbers as documented."""
from __future__ import annotations

import asyncio

from conftest import bearer

from server.keys import CACHE, QUERY_LOG

# Statements per request, BEGIN/COMMIT included (adding and firing lock the order first). The credential was resolved by an earlier
# request and is kept for a minute, so none of these looks it up; a cached read runs none.
# docs/api.md quotes these numbers.
EXPECTED = {"GET menu (cached)": 0, "GET menu (after an 86)": 1, "GET orders?status=open": 1,
            "GET dashboard": 1, "POST orders": 1, "POST orders/{id}/items": 4,
            "POST orders/{id}/fire": 4}


async def statements(client, response) -> int:
    await asyncio.sleep(0)  # asyncpg reports each statement on the next loop turn
    return client.app[QUERY_LOG].statements_of(response.headers["X-Request-Id"])


async def test_hot_paths_take_a_fixed_number_of_statements(client, rid, tokens):
    manager = bearer(await tokens("manager"))
    base = f"/api/v1/restaurants/{rid}"
    menu = await (await client.get(base + "/menu", headers=manager)).json()
    items = [i for c in menu["categories"] for i in c["items"]]
    counts = {}

    response = await client.get(base + "/menu", headers=manager)
    counts["GET menu (cached)"] = await statements(client, response)
    eighty_six = await client.post(base + f"/menu/items/{items[-1]['id']}/availability",
                                   headers=manager, json={"available": False})
    assert eighty_six.status == 200
    response = await client.get(base + "/menu", headers=manager)
    counts["GET menu (after an 86)"] = await statements(client, response)
    response = await client.post(base + "/orders", headers=manager, json={"items": [
        {"menu_item_id": items[n]["id"], "qty": 2, "course": 1 + n % 2} for n in range(6)]})
    assert response.status == 201
    counts["POST orders"] = await statements(client, response)
    order = await response.json()
    response = await client.post(base + f"/orders/{order['id']}/items", headers={
        **manager, "Idempotency-Key": "more-1"}, json={"items": [
            {"menu_item_id": items[n]["id"], "course": 3} for n in range(3)]})
    assert response.status == 200
    counts["POST orders/{id}/items"] = await statements(client, response)
    response = await client.post(base + f"/orders/{order['id']}/fire", headers=manager, json={})
    assert response.status == 200
    counts["POST orders/{id}/fire"] = await statements(client, response)
    response = await client.get(base + "/orders?status=open", headers=manager)
    counts["GET orders?status=open"] = await statements(client, response)
    response = await client.get(base + "/dashboard", headers=manager)
    counts["GET dashboard"] = await statements(client, response)
    print("\nSQL statements per request:", counts)
    assert counts == EXPECTED


async def test_reads_do_not_grow_with_the_data(client, rid, tokens):
    manager = bearer(await tokens("manager"))
    base = f"/api/v1/restaurants/{rid}"
    menu = await (await client.get(base + "/menu", headers=manager)).json()
    first_item = menu["categories"][0]["items"][0]["id"]
    before = {}
    await client.app[CACHE].clear(rid)  # the menu is read from the database, as after a change
    for path in ("/menu", "/orders?status=open", "/kitchen/tickets", "/tables", "/waitlist"):
        before[path] = await statements(client, await client.get(base + path, headers=manager))
    for n in range(12):
        await client.post(base + "/menu/items", headers=manager, json={
            "category_id": menu["categories"][0]["id"], "name": f"Extra {n}", "price_minor": 100,
            "station": "grill", "modifiers": [{"name": "Big"}, {"name": "Small"}]})
        await client.post(base + "/orders", headers=manager, json={"items": [
            {"menu_item_id": first_item, "qty": 1}, {"menu_item_id": first_item + 12, "qty": 1}]})
        await client.post(base + "/waitlist", headers=manager, json={"name": f"P{n}", "size": 2})
    for path, count in before.items():
        assert await statements(client, await client.get(base + path, headers=manager)) == count, path
