"""One table, several iPads: orders for a table land on its one open order, concurrent adds all
land exactly once, and a stale edit of the same line is 412 with the current version."""
from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from conftest import bearer, error_of

ADDS_PER_IPAD = 20


async def ok(response, status=200):
    assert response.status == status, await response.text()
    return await response.json()


@pytest.fixture
async def ipads(client, base, tokens) -> list[dict[str, str]]:
    """Two iPads registered by the manager, each signed in as a server with its own token."""
    manager = bearer(await tokens("manager"))
    made = []
    for name in ("iPad bar side", "iPad window side"):
        device = await ok(await client.post(base + "/devices", headers=manager, json={
            "name": name, "kind": "ipad", "role": "server"}), 201)
        made.append(bearer(device["token"]))
    return made


@pytest.fixture
async def table(db, rid) -> int:
    return await db.fetchval("SELECT id FROM dining_tables WHERE restaurant_id = $1 "
                             "ORDER BY id LIMIT 1", rid)


async def test_two_ipads_adding_to_one_table_at_once_lose_no_line_and_make_no_second_order(
        client, db, rid, base, tokens, open_socket, menu, ipads, table):
    first, second = ipads
    order = await ok(await client.post(base + "/orders", headers=first, json={
        "table_id": table, "items": [{"menu_item_id": menu["Burger"]["id"], "note": "start"}]}), 201)
    # The second iPad does not know yet: it is told which order the table has.
    response = await client.post(base + "/orders", headers=second, json={
        "table_id": table, "items": [{"menu_item_id": menu["Fries"]["id"]}]})
    assert response.status == 409
    assert (await error_of(response))["details"][0]["order_id"] == order["id"]

    socket = await open_socket(rid, await tokens("server"))
    await socket.send(type="subscribe", channels=["orders", "kitchen"])
    await socket.until("subscribed")

    async def add(ipad: int, n: int):
        menu_item = menu["Fries"] if ipad else menu["Burger"]
        return await client.post(base + f"/orders/{order['id']}/items", headers=ipads[ipad], json={
            "items": [{"menu_item_id": menu_item["id"], "note": f"ipad{ipad}-{n}"}]})

    answers = await asyncio.gather(*(add(ipad, n) for n in range(ADDS_PER_IPAD) for ipad in (0, 1)))
    assert [r.status for r in answers] == [200] * 2 * ADDS_PER_IPAD, [await r.text() for r in answers]

    sent = {f"ipad{ipad}-{n}" for ipad in (0, 1) for n in range(ADDS_PER_IPAD)}
    final = await ok(await client.get(base + f"/orders/{order['id']}", headers=first))
    notes = Counter(item["note"] for item in final["items"])
    assert notes == Counter(sent | {"start"})  # every line exactly once
    assert final["version"] == order["version"] + 2 * ADDS_PER_IPAD
    assert await db.fetchval("SELECT count(*) FROM orders WHERE restaurant_id = $1 AND table_id = $2",
                             rid, table) == 1
    # Each add went to the kitchen: onto the open ticket of its station and course.
    assert all(item["ticket_id"] is not None and item["status"] == "fired" for item in final["items"])

    heard = await socket.events(4 * ADDS_PER_IPAD, timeout=20)
    added = [e for e in heard if e["name"] == "order.items_added"]
    told = [e for e in heard if e["name"] in ("ticket.fired", "ticket.changed")]
    assert len(added) == len(told) == 2 * ADDS_PER_IPAD
    seqs = [e["seq"] for e in heard]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # Each add's event carries the order with that add's line in it.
    by_note = {}
    for event in added:
        new = {i["note"] for i in event["data"]["order"]["items"]} - set(by_note) - {"start"}
        assert len(new) == 1, new  # in seq order, each event brings exactly one new line
        by_note[new.pop()] = event["seq"]
    assert set(by_note) == sent
    # Each line reached the kitchen once: on a new ticket, or added to the one the kitchen had.
    note_of = {item["id"]: item["note"] for item in final["items"]}
    on_tickets = Counter(
        note_of[line["id"]] for e in told if e["name"] == "ticket.fired"
        for line in e["data"]["ticket"]["items"])
    on_tickets.update(note_of[change["item_id"]] for e in told if e["name"] == "ticket.changed"
                      for change in e["data"]["changes"] if change["kind"] == "added")
    assert on_tickets == Counter(sent)


async def test_two_ipads_editing_one_line_with_one_version_one_wins_the_other_gets_412(
        client, db, base, menu, ipads):
    order = await ok(await client.post(base + "/orders", headers=ipads[0], json={
        "items": [{"menu_item_id": menu["Burger"]["id"]}]}), 201)
    item = order["items"][0]
    url = base + f"/orders/{order['id']}/items/{item['id']}"
    version = item["version"]
    for round_ in range(5):
        answers = await asyncio.gather(*(
            client.patch(url, headers={**ipads[n], "If-Match": f'"{version}"'},
                         json={"qty": 2 + 10 * round_ + n, "note": f"round {round_} ipad {n}"})
            for n in (0, 1)))
        statuses = sorted(r.status for r in answers)
        assert statuses == [200, 412], [await r.text() for r in answers]
        won = next(r for r in answers if r.status == 200)
        lost = next(r for r in answers if r.status == 412)
        winner = (await won.json())["items"][0]
        error = await error_of(lost)
        assert error["code"] == "precondition_failed"
        assert error["details"][0]["version"] == winner["version"] == version + 1
        assert error["details"][0]["item"] == winner
        # The loser reloads and retries with the version it was given: it goes through.
        retried = await ok(await client.patch(url, headers={
            **ipads[0], "If-Match": f'"{error["details"][0]["version"]}"'}, json={"seat": round_ + 1}))
        version = retried["items"][0]["version"]
        assert version == winner["version"] + 1
    row = await db.fetchrow("SELECT version, seat FROM order_items WHERE id = $1", item["id"])
    assert (row["version"], row["seat"]) == (version, 5)
    changes = await db.fetchval("SELECT jsonb_array_length(changes) FROM tickets WHERE id = $1",
                                item["ticket_id"])
    assert changes == 5 * 3  # each round: the winner's qty and note, the retry's seat


async def test_edits_and_voids_while_the_kitchen_starts_and_bumps_never_deadlock(
        client, db, base, menu, ipads, cook):
    orders = [await ok(await client.post(base + "/orders", headers=ipads[n % 2], json={"items": [
        {"menu_item_id": menu["Burger"]["id"]}, {"menu_item_id": menu["Ribeye"]["id"]}]}), 201)
        for n in range(10)]

    async def edit(n, order):
        burger, ribeye = order["items"]
        url = base + f"/orders/{order['id']}/items/"
        first = await client.patch(url + str(burger["id"]), headers=ipads[n % 2],
                                   json={"qty": 2, "note": "extra pickles"})
        second = await client.post(url + f"{ribeye['id']}/void", headers=ipads[n % 2])
        return [first, second]

    async def cook_it(order):
        ticket = order["items"][0]["ticket_id"]
        started = await client.post(base + f"/kitchen/tickets/{ticket}/start", headers=cook)
        bumped = await client.post(base + f"/kitchen/tickets/{ticket}/bump", headers=cook)
        return [started, bumped]

    answers = await asyncio.gather(*(edit(n, o) for n, o in enumerate(orders)),
                                   *(cook_it(o) for o in orders))
    statuses = Counter(r.status for pair in answers for r in pair)
    assert set(statuses) <= {200, 409}, [await r.text() for p in answers for r in p
                                         if r.status not in (200, 409)]
    for order in orders:  # whatever the order of events, the ticket's log says what happened
        burger = order["items"][0]
        row = await db.fetchrow("SELECT qty FROM order_items WHERE id = $1", burger["id"])
        changes = await db.fetchval("SELECT changes FROM tickets WHERE id = $1", burger["ticket_id"])
        assert (row["qty"] == 2) == ("qty 1 → 2" in changes)
