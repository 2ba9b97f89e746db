"""Idempotency-Key on POST: a retry gets the first answer, duplicates in flight make one effect."""
from __future__ import annotations

import asyncio

import pytest
from conftest import bearer, error_of, table_counts


def keyed(headers, key):
    return {**headers, "Idempotency-Key": key}


def burger_order(menu, qty=1):
    return {"items": [{"menu_item_id": menu["Burger"]["id"], "qty": qty}]}


async def orders_in_db(db, rid):
    return await db.fetchval("SELECT count(*) FROM orders WHERE restaurant_id = $1", rid)


async def test_a_retry_with_the_same_key_replays_the_first_answer_and_writes_nothing(
        client, db, base, server, menu):
    first = await client.post(base + "/orders", headers=keyed(server, "order-1"), json=burger_order(menu))
    assert first.status == 201, await first.text()
    assert "Idempotent-Replayed" not in first.headers
    before = await table_counts(db)
    retry = await client.post(base + "/orders", headers=keyed(server, "order-1"), json=burger_order(menu))
    assert retry.status == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert await retry.read() == await first.read()
    assert retry.headers["X-Serveline-Seq"] == first.headers["X-Serveline-Seq"]
    assert retry.content_type == "application/json"
    assert await table_counts(db) == before


async def test_the_same_key_with_another_body_is_422_and_writes_nothing(client, db, base, server, menu):
    first = await client.post(base + "/orders", headers=keyed(server, "order-1"), json=burger_order(menu))
    assert first.status == 201
    before = await table_counts(db)
    response = await client.post(base + "/orders", headers=keyed(server, "order-1"),
                                 json=burger_order(menu, qty=2))
    assert response.status == 422
    assert (await error_of(response))["code"] == "idempotency_key_reused"
    assert await table_counts(db) == before


async def test_the_same_key_on_another_route_is_422(client, db, base, server, menu):
    created = await client.post(base + "/orders", headers=keyed(server, "k"), json=burger_order(menu))
    order = await created.json()
    before = await table_counts(db)
    response = await client.post(base + f"/orders/{order['id']}/items", headers=keyed(server, "k"),
                                 json=burger_order(menu))
    assert response.status == 422
    assert (await error_of(response))["code"] == "idempotency_key_reused"
    assert await table_counts(db) == before


async def test_20_concurrent_posts_with_one_key_make_exactly_one_order(client, db, rid, base, server, menu):
    start = await db.fetchval("SELECT seq FROM restaurants WHERE id = $1", rid)

    async def post():
        response = await client.post(base + "/orders", headers=keyed(server, "rush"), json=burger_order(menu))
        assert response.status == 201, await response.text()
        return (await response.json())["id"], response.headers.get("Idempotent-Replayed")

    answers = await asyncio.gather(*(post() for _ in range(20)))
    assert len({order_id for order_id, _ in answers}) == 1
    assert [replayed for _, replayed in answers].count(None) == 1
    assert await orders_in_db(db, rid) == 1
    assert await db.fetchval("SELECT count(*) FROM order_items WHERE restaurant_id = $1", rid) == 1
    assert await db.fetchval("SELECT count(*) FROM tickets WHERE restaurant_id = $1", rid) == 1
    names = [r["name"] for r in await db.fetch(
        "SELECT name FROM events WHERE restaurant_id = $1 AND seq > $2 ORDER BY seq", rid, start)]
    assert names == ["order.created", "ticket.fired"]


async def test_a_failed_request_stores_nothing_so_the_key_works_once_the_item_is_back(
        client, db, rid, base, server, tokens, menu):
    cook = bearer(await tokens("kitchen"))
    availability = base + f"/menu/items/{menu['Burger']['id']}/availability"
    assert (await client.post(availability, headers=cook, json={"available": False})).status == 200
    before = await table_counts(db)
    refused = await client.post(base + "/orders", headers=keyed(server, "try"), json=burger_order(menu))
    assert refused.status == 409
    assert (await error_of(refused))["code"] == "conflict"
    assert await table_counts(db) == before
    assert (await client.post(availability, headers=cook, json={"available": True})).status == 200
    accepted = await client.post(base + "/orders", headers=keyed(server, "try"), json=burger_order(menu))
    assert accepted.status == 201, await accepted.text()
    assert "Idempotent-Replayed" not in accepted.headers
    assert await orders_in_db(db, rid) == 1


async def test_a_bad_body_stores_nothing_under_its_key(client, db, base, server, menu):
    before = await table_counts(db)
    response = await client.post(base + "/orders", headers=keyed(server, "bad"),
                                 json={"items": [{"menu_item_id": menu["Burger"]["id"], "qty": 0}]})
    assert response.status == 422
    assert (await error_of(response))["code"] == "validation_failed"
    assert await table_counts(db) == before


async def test_keys_are_per_restaurant(client, db, restaurant_ids, base, server, tokens, menu):
    other = f"/api/v1/restaurants/{restaurant_ids['other']}"
    other_server = bearer(await tokens("server", "other"))
    other_menu = await (await client.get(other + "/menu", headers=other_server)).json()
    other_burger = next(i for c in other_menu["categories"] for i in c["items"] if i["name"] == "Burger")
    here = await client.post(base + "/orders", headers=keyed(server, "shared"), json=burger_order(menu))
    there = await client.post(other + "/orders", headers=keyed(other_server, "shared"),
                              json={"items": [{"menu_item_id": other_burger["id"]}]})
    assert (here.status, there.status) == (201, 201)
    assert "Idempotent-Replayed" not in there.headers
    assert (await here.json())["id"] != (await there.json())["id"]
    for restaurant in restaurant_ids.values():
        assert await orders_in_db(db, restaurant) == 1
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = 'shared'") == 2


@pytest.mark.parametrize("key", ["k" * 300, "k" * 201, "has space", ""],
                         ids=["300 chars", "201 chars", "space", "empty"])
async def test_an_invalid_key_is_400_and_writes_nothing(client, db, base, server, menu, key):
    before = await table_counts(db)
    response = await client.post(base + "/orders", headers=keyed(server, key), json=burger_order(menu))
    assert response.status == 400
    assert (await error_of(response))["code"] == "invalid_idempotency_key"
    assert await table_counts(db) == before


async def test_a_200_character_key_is_fine(client, base, server, menu):
    response = await client.post(base + "/orders", headers=keyed(server, "k" * 200), json=burger_order(menu))
    assert response.status == 201, await response.text()


async def test_an_expired_key_is_reusable(client, db, rid, base, server, menu):
    first = await (await client.post(base + "/orders", headers=keyed(server, "old"),
                                     json=burger_order(menu))).json()
    await db.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    again = await client.post(base + "/orders", headers=keyed(server, "old"), json=burger_order(menu, qty=2))
    assert again.status == 201, await again.text()
    assert "Idempotent-Replayed" not in again.headers
    assert (await again.json())["id"] != first["id"]
    assert await orders_in_db(db, rid) == 2
    retry = await client.post(base + "/orders", headers=keyed(server, "old"), json=burger_order(menu, qty=2))
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert await orders_in_db(db, rid) == 2


async def test_a_key_younger_than_24_hours_still_replays(client, db, rid, base, server, menu):
    first = await client.post(base + "/orders", headers=keyed(server, "recent"), json=burger_order(menu))
    await db.execute("UPDATE idempotency_keys SET created_at = now() - interval '23 hours'")
    retry = await client.post(base + "/orders", headers=keyed(server, "recent"), json=burger_order(menu))
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert await retry.read() == await first.read()
    assert await orders_in_db(db, rid) == 1


async def test_a_retried_bump_replays_instead_of_409(client, db, base, server, tokens, menu):
    cook = bearer(await tokens("kitchen"))
    await client.post(base + "/orders", headers=server, json=burger_order(menu))
    ticket = (await (await client.get(base + "/kitchen/tickets", headers=cook)).json())["items"][0]
    url = base + f"/kitchen/tickets/{ticket['id']}/bump"
    first = await client.post(url, headers=keyed(cook, "bump-1"))
    assert first.status == 200
    before = await table_counts(db)
    retry = await client.post(url, headers=keyed(cook, "bump-1"))
    assert retry.status == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert await retry.read() == await first.read()
    assert await table_counts(db) == before
    assert (await client.post(url, headers=cook)).status == 409


async def test_a_retried_add_or_fire_replays_and_sends_the_kitchen_nothing_twice(
        client, db, rid, base, server, menu):
    order = await (await client.post(base + "/orders", headers=server, json={
        "items": [{"menu_item_id": menu["Burger"]["id"], "course": 2}], "hold": True})).json()
    start = await db.fetchval("SELECT seq FROM restaurants WHERE id = $1", rid)
    path = base + f"/orders/{order['id']}"
    for _ in range(3):
        added = await client.post(path + "/items", headers=keyed(server, "add-1"),
                                  json={"items": [{"menu_item_id": menu["Burrata"]["id"]}]})
        assert added.status == 200, await added.text()
        fired = await client.post(path + "/fire", headers=keyed(server, "fire-1"), json={})
        assert fired.status == 200, await fired.text()
    assert added.headers["Idempotent-Replayed"] == "true"
    assert fired.headers["Idempotent-Replayed"] == "true"
    lines = await db.fetch("SELECT status, station, ticket_id FROM order_items "
                           "WHERE restaurant_id = $1 AND order_id = $2 ORDER BY id", rid, order["id"])
    assert len(lines) == 2 and all(line["status"] == "fired" for line in lines)
    stations = {line["station"] for line in lines}
    names = [r["name"] for r in await db.fetch(
        "SELECT name FROM events WHERE restaurant_id = $1 AND seq > $2 ORDER BY seq", rid, start)]
    assert names == ["order.items_added", "order.fired"] + ["ticket.fired"] * len(stations)


async def test_concurrent_adds_and_fires_on_one_order_put_each_line_on_one_ticket(
        client, db, rid, base, server, menu):
    items = [item for item in menu.values() if item["available"]]
    order = await (await client.post(base + "/orders", headers=server, json={
        "items": [{"menu_item_id": items[0]["id"], "course": 3}], "hold": True})).json()
    path = base + f"/orders/{order['id']}"

    async def add(n):
        response = await client.post(path + "/items", headers=keyed(server, f"add-{n}"), json={
            "items": [{"menu_item_id": items[n % len(items)]["id"], "course": 1 + n % 3}]})
        assert response.status == 200, await response.text()

    async def fire(course):
        response = await client.post(path + "/fire", headers=server, json={"course": course})
        assert response.status in (200, 409), await response.text()  # 409: nothing left to fire

    await asyncio.gather(*(add(n) for n in range(12)), *(fire(c) for c in (1, 2, 3, 3)))
    lines = await db.fetch("SELECT id, status, ticket_id FROM order_items WHERE restaurant_id = $1 "
                           "AND order_id = $2", rid, order["id"])
    assert len(lines) == 13  # no line lost, none twice
    # A line reaches the kitchen on a new ticket (ticket.fired), or added to one the kitchen has
    # (ticket.changed, an "added" change).
    on_tickets = [row["id"] for row in await db.fetch(
        "SELECT (item->>'id')::bigint AS id FROM events, jsonb_array_elements(data->'ticket'->'items') item "
        "WHERE restaurant_id = $1 AND name = 'ticket.fired' UNION ALL "
        "SELECT (change->>'item_id')::bigint FROM events, jsonb_array_elements(data->'changes') change "
        "WHERE restaurant_id = $1 AND name = 'ticket.changed' AND change->>'kind' = 'added'", rid)]
    assert len(on_tickets) == len(set(on_tickets))  # no line sent to the kitchen twice
    assert sorted(on_tickets) == sorted(line["id"] for line in lines if line["ticket_id"])
    assert all(line["status"] == "fired" for line in lines)  # course 3 was fired last


async def test_orders_for_a_table_and_its_status_changes_at_once_never_deadlock(
        client, db, rid, base, server, menu):
    table_id = await db.fetchval("SELECT id FROM dining_tables WHERE restaurant_id = $1 "
                                 "AND status = 'free' ORDER BY id LIMIT 1", rid)
    steps = ["seated", "ordering", "waiting_food", "eating", "paying", "dirty", "free"]

    async def order(n):
        response = await client.post(base + "/orders", headers=server, json={
            "table_id": table_id, "items": [{"menu_item_id": menu["Burger"]["id"]}]})
        # One open order per table: the first is made, the others are told it exists.
        assert response.status in (201, 409), await response.text()
        return response.status

    async def walk():
        for _ in range(3):
            for status in steps:
                body = {"status": status, **({"party_size": 2} if status == "seated" else {})}
                response = await client.post(base + f"/tables/{table_id}/status", headers=server,
                                             json=body)
                assert response.status == 200, await response.text()

    made = await asyncio.gather(*(order(n) for n in range(40)), walk())
    assert made[:40].count(201) == 1
    assert await db.fetchval("SELECT count(*) FROM orders WHERE restaurant_id = $1 "
                             "AND table_id = $2", rid, table_id) == 1
