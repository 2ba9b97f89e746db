"""Firing by prep time, courses held and fired by hand, seats at order entry (docs/api.md, Firing)."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import msgspec
import pytest
from conftest import PASSWORD, error_of, table_counts
from screens import SHOTS, needs_chromium, sign_in

from server.keys import POOL
from store import firing


async def ok(response, status=200):
    assert response.status == status, await response.text()
    return await response.json()


@pytest.fixture
async def prep(client, base, manager, menu):
    """`await prep(Ribeye=720, ...)` sets those items' prep times through the menu API."""
    async def set_prep(**seconds: int) -> None:
        for name, value in seconds.items():
            item = menu[name.replace("_", " ")]
            await ok(await client.patch(base + f"/menu/items/{item['id']}", headers=manager,
                                        json={"prep_seconds": value}))
    return set_prep


def line(menu, name, course=1, **more):
    return {"menu_item_id": menu[name.replace("_", " ")]["id"], "course": course, **more}


async def place(client, base, server, *lines, **more):
    return await ok(await client.post(base + "/orders", headers=server,
                                      json={"items": list(lines), **more}), 201)


def by_name(order):
    return {item["name"]: item for item in order["items"]}


async def events_after(db, rid, seq):
    rows = await db.fetch("SELECT channel, name, data FROM events WHERE restaurant_id = $1 AND seq > $2"
                          " ORDER BY seq", rid, seq)
    return [(r["channel"], r["name"], msgspec.json.decode(r["data"])) for r in rows]


async def until_fired(db, ids, timeout=5.0):
    """Wait until none of the lines `ids` is held (the app's own task may be firing them too)."""
    async with asyncio.timeout(timeout):
        while await db.fetchval("SELECT count(*) FROM order_items WHERE id = ANY($1::bigint[])"
                                " AND status = 'held'", ids):
            await asyncio.sleep(0.05)


async def seq_of(db, rid):
    return await db.fetchval("SELECT seq FROM restaurants WHERE id = $1", rid)


async def test_menu_items_carry_a_prep_time_set_at_create_and_patch(client, base, manager, menu):
    assert menu["Burger"]["prep_seconds"] == 0  # tests' restaurants start without prep times
    grill = next(c for c in (await ok(await client.get(base + "/menu", headers=manager)))["categories"]
                 if c["name"] == "Grill")
    created = await ok(await client.post(base + "/menu/items", headers=manager, json={
        "category_id": grill["id"], "name": "Tomahawk", "price_minor": 9500, "station": "grill",
        "prep_seconds": 1500}), 201)
    assert created["prep_seconds"] == 1500
    patched = await ok(await client.patch(base + f"/menu/items/{created['id']}", headers=manager,
                                          json={"prep_seconds": 1200}))
    assert (patched["prep_seconds"], patched["price_minor"]) == (1200, 9500)


@pytest.mark.parametrize("value", [-1, 14_401, "600", 1.5])
async def test_a_prep_time_out_of_range_is_422_and_nothing_written(client, db, base, manager, menu,
                                                                   value):
    before = await table_counts(db)
    response = await client.patch(base + f"/menu/items/{menu['Burger']['id']}", headers=manager,
                                  json={"prep_seconds": value})
    assert response.status == 422
    assert "prep_seconds" in str(await error_of(response))
    assert await table_counts(db) == before


async def test_a_course_fires_so_it_finishes_together_longest_first(client, db, rid, base, server,
                                                                    cook, menu, prep):
    await prep(Ribeye=720, Caesar_salad=240)
    start = await seq_of(db, rid)
    order = await place(client, base, server, line(menu, "Ribeye"), line(menu, "Caesar salad"))
    steak, salad = by_name(order)["Ribeye"], by_name(order)["Caesar salad"]
    assert (steak["status"], steak["fire_at"]) == ("fired", None) and steak["fired_at"]
    assert (salad["status"], salad["fired_at"]) == ("held", None)
    wait = await db.fetchval("SELECT fire_at - created_at FROM order_items WHERE id = $1", salad["id"])
    assert wait == timedelta(minutes=8)
    tickets = (await ok(await client.get(base + "/kitchen/tickets", headers=cook)))["items"]
    cold = next(t for t in tickets if t["station"] == "cold")
    [held] = cold["items"]
    assert (held["id"], held["status"], held["fire_at"]) == (salad["id"], "held", salad["fire_at"])
    grill = next(t for t in tickets if t["station"] == "grill")
    # A ticket's time runs from when its first line goes to the cook: the salad's, in 8 minutes.
    assert (cold["fired_at"], grill["fired_at"]) == (salad["fire_at"], steak["fired_at"])
    names = [(channel, name) for channel, name, _ in await events_after(db, rid, start)]
    assert names == [("orders", "order.created"), ("kitchen:grill", "ticket.fired"),
                     ("kitchen:cold", "ticket.fired")]  # in fire order: the steak starts first
    assert grill["id"] < cold["id"]


async def test_fire_and_added_lines_are_timed_as_a_batch_of_their_own(client, db, base, server, menu,
                                                                     prep):
    await prep(Ribeye=600, Tiramisu=120, Caesar_salad=240, Fries=120)
    order = await place(client, base, server, line(menu, "Ribeye"), line(menu, "Tiramisu", 2),
                        line(menu, "Panna cotta", 2))
    fired = await ok(await client.post(base + f"/orders/{order['id']}/fire", headers=server,
                                       json={"course": 2}))
    assert [i["status"] for i in fired["items"]] == ["fired", "fired", "held"]
    added = await ok(await client.post(base + f"/orders/{order['id']}/items", headers=server,
                                       json={"items": [line(menu, "Caesar salad"), line(menu, "Fries")]}))
    assert [i["status"] for i in added["items"][3:]] == ["fired", "held"]  # not behind the steak
    waits = dict(await db.fetch("SELECT name, fire_at - created_at FROM order_items"
                                " WHERE order_id = $1 AND status = 'held'", order["id"]))
    fire_order = await db.fetchval("SELECT fired_at FROM order_items WHERE order_id = $1"
                                   " AND name = 'Tiramisu'", order["id"])
    panna = await db.fetchval("SELECT fire_at FROM order_items WHERE order_id = $1"
                              " AND name = 'Panna cotta'", order["id"])
    assert panna - fire_order == timedelta(minutes=2)
    assert waits["Fries"] == timedelta(minutes=2)


async def test_a_held_line_fires_at_its_time_and_the_screens_hear_it(client, db, rid, base, server,
                                                                     menu, prep, tokens, open_socket):
    await prep(Ribeye=2, Caesar_salad=0)
    sock = await open_socket(rid, await tokens("kitchen"))
    await sock.send(type="subscribe", channels=["kitchen:cold", "orders"])
    await sock.until("subscribed")
    order = await place(client, base, server, line(menu, "Ribeye"), line(menu, "Caesar salad"))
    salad = by_name(order)["Caesar salad"]
    assert salad["status"] == "held"
    ticket = await sock.until("event", "ticket.fired")  # the cold ticket, salad held
    assert ticket["data"]["ticket"]["items"][0]["status"] == "held"
    fired = await sock.until("event", "order.fired", timeout=8)  # the task, ~2 s later
    assert by_name(fired["data"]["order"])["Caesar salad"]["status"] == "fired"
    assert fired["data"]["order"]["version"] == order["version"] + 1
    refired = await sock.until("event", "ticket.fired")
    assert refired["data"]["ticket"]["id"] == ticket["data"]["ticket"]["id"]
    assert refired["data"]["ticket"]["items"][0]["status"] == "fired"
    row = await db.fetchrow("SELECT status, fired_at, fire_at, version FROM order_items WHERE id = $1",
                            salad["id"])
    assert row["status"] == "fired" and row["fired_at"] >= row["fire_at"]
    assert row["version"] == salad["version"] + 1


async def test_due_lines_fire_once_however_many_firing_runs_race(client, db, rid, base, server,
                                                                 menu, prep):
    await prep(Ribeye=600, Caesar_salad=60, Fries=120)
    orders = [await place(client, base, server, line(menu, "Ribeye"), line(menu, "Caesar salad"),
                          line(menu, "Fries")) for _ in range(6)]
    held = {i["id"]: i["version"] for o in orders for i in o["items"] if i["status"] == "held"}
    assert len(held) == 12
    start = await seq_of(db, rid)
    await db.execute("UPDATE order_items SET fire_at = now() - interval '1 second'"
                     " WHERE id = ANY($1::bigint[])", list(held))  # time passes
    pool = client.app[POOL]
    counts = await asyncio.gather(*(firing.fire_due(pool) for _ in range(4)))
    assert sum(counts) <= 12  # the app's own task may have fired some of them
    await until_fired(db, list(held))
    rows = await db.fetch("SELECT id, status, version FROM order_items WHERE id = ANY($1::bigint[])",
                          list(held))
    assert {r["id"]: (r["status"], r["version"]) for r in rows} == {
        id: ("fired", version + 1) for id, version in held.items()}
    fired = await events_after(db, rid, start)
    assert sorted(data["order"]["id"] for _, name, data in fired if name == "order.fired") == sorted(
        o["id"] for o in orders)
    assert len([name for _, name, _ in fired if name == "ticket.fired"]) == 12  # cold, fry per order
    assert await firing.fire_due(pool) == 0


async def test_a_held_course_does_not_auto_fire_and_fires_by_hand(client, db, rid, base, server, menu,
                                                                 prep):
    await prep(Ribeye=600, Caesar_salad=0)
    order = await place(client, base, server, line(menu, "Ribeye"), line(menu, "Caesar salad"))
    start = await seq_of(db, rid)
    held = await ok(await client.post(base + f"/orders/{order['id']}/courses/1/hold", headers={
        **server, "If-Match": str(order["version"])}))
    salad = by_name(held)["Caesar salad"]
    assert (held["held_courses"], held["version"]) == ([1], order["version"] + 1)
    assert (salad["status"], salad["fire_at"]) == ("held", None)
    assert [(c, n) for c, n, _ in await events_after(db, rid, start)] == [
        ("orders", "order.course_held"), ("kitchen:cold", "ticket.held")]
    await db.execute("UPDATE order_items SET fire_at = now() - interval '1 minute' WHERE id = $1",
                     salad["id"])  # even with a time passed, a course held by hand waits
    assert await firing.fire_due(client.app[POOL]) == 0
    start = await seq_of(db, rid)
    fired = await ok(await client.post(base + f"/orders/{order['id']}/courses/1/fire",
                                       headers=server))
    assert fired["held_courses"] == [] and by_name(fired)["Caesar salad"]["status"] == "fired"
    sent = await events_after(db, rid, start)
    assert [(c, n) for c, n, _ in sent] == [("orders", "order.fired"), ("kitchen:cold", "ticket.fired")]
    assert sent[1][2]["ticket"]["id"] == salad["ticket_id"]


async def test_a_held_course_stays_back_when_a_later_course_fires(client, db, rid, base, server, menu,
                                                                 prep):
    await prep(Ribeye=600, Tiramisu=120)
    order = await place(client, base, server, line(menu, "Burger"), line(menu, "Ribeye", 2),
                        line(menu, "Tiramisu", 2), line(menu, "Espresso", 3))
    order = await ok(await client.post(base + f"/orders/{order['id']}/courses/2/hold", headers=server))
    assert [i["status"] for i in order["items"]] == ["fired", "new", "new", "new"]
    fired = await ok(await client.post(base + f"/orders/{order['id']}/fire", headers=server,
                                       json={"course": 3}))
    assert [i["status"] for i in fired["items"]] == ["fired", "new", "new", "fired"]
    assert (fired["fired_course"], fired["held_courses"]) == (3, [2])
    refused = await client.post(base + f"/orders/{order['id']}/fire", headers=server, json={})
    assert refused.status == 409  # course 2 is held by hand: nothing else waits
    assert (await refused.json())["error"]["code"] == "nothing_to_fire"
    added = await ok(await client.post(base + f"/orders/{order['id']}/items", headers=server,
                                       json={"items": [line(menu, "Panna cotta", 2)]}))
    assert by_name(added)["Panna cotta"]["status"] == "new"  # held course: added lines wait too
    by_hand = await ok(await client.post(base + f"/orders/{order['id']}/courses/2/fire",
                                         headers=server))
    course = by_name(by_hand)
    assert (course["Ribeye"]["status"], course["Tiramisu"]["status"]) == ("fired", "held")
    assert course["Panna cotta"]["status"] == "held"
    waits = dict(await db.fetch(
        "SELECT name, fire_at - (SELECT fired_at FROM order_items WHERE order_id = $1"
        " AND name = 'Ribeye') FROM order_items WHERE order_id = $1 AND course = 2", order["id"]))
    assert waits == {"Ribeye": None, "Tiramisu": timedelta(minutes=8),
                     "Panna cotta": timedelta(minutes=10)}
    assert by_hand["held_courses"] == []


async def test_holding_a_course_that_has_all_gone_to_the_cook_is_409(client, db, base, server, menu):
    order = await place(client, base, server, line(menu, "Burger"), line(menu, "Tiramisu", 2))
    before = await table_counts(db)
    response = await client.post(base + f"/orders/{order['id']}/courses/1/hold", headers=server)
    assert response.status == 409
    assert (await error_of(response))["code"] == "course_already_sent"
    assert await table_counts(db) == before
    await ok(await client.post(base + f"/orders/{order['id']}/courses/2/hold", headers=server))
    before = await table_counts(db)
    again = await client.post(base + f"/orders/{order['id']}/courses/2/hold", headers=server)
    assert again.status == 409 and (await error_of(again))["code"] == "course_already_held"
    nothing = await client.post(base + f"/orders/{order['id']}/courses/5/fire", headers=server)
    assert nothing.status == 409 and (await error_of(nothing))["code"] == "nothing_to_fire"
    assert await table_counts(db) == before


@pytest.mark.parametrize("action", ["hold", "fire"])
async def test_bad_course_requests_are_refused_and_nothing_written(client, db, base, server, menu,
                                                                   action):
    order = await place(client, base, server, line(menu, "Burger"), line(menu, "Tiramisu", 2))
    closed = await place(client, base, server, line(menu, "Burger"))
    await ok(await client.post(base + f"/orders/{closed['id']}/close", headers=server, json={
        "payment": {"method": "cash", "amount_minor": 1800}}))
    before = await table_counts(db)
    url = base + f"/orders/{order['id']}/courses"
    for path, headers, status, code in [
            (f"{url}/0/{action}", server, 422, "invalid"),
            (f"{url}/10/{action}", server, 422, "invalid"),
            (f"{url}/2/{action}", {**server, "If-Match": str(order["version"] + 1)}, 412,
             "precondition_failed"),
            (base + f"/orders/{closed['id']}/courses/2/{action}", server, 409, "conflict"),
            (base + f"/orders/{order['id'] + 99}/courses/2/{action}", server, 404, "not_found")]:
        response = await client.post(path, headers=headers)
        assert response.status == status, (path, await response.text())
        assert (await error_of(response))["code"] == code
    assert await table_counts(db) == before


async def test_a_course_fired_by_hand_twice_with_one_key_fires_once(client, db, rid, base, server, menu):
    order = await place(client, base, server, line(menu, "Burger"), line(menu, "Tiramisu", 2))
    start = await seq_of(db, rid)
    headers = {**server, "Idempotency-Key": "fire-dessert-1"}
    first = await client.post(base + f"/orders/{order['id']}/courses/2/fire", headers=headers)
    again = await client.post(base + f"/orders/{order['id']}/courses/2/fire", headers=headers)
    assert (first.status, again.status) == (200, 200)
    assert await first.json() == await again.json()
    assert len(await events_after(db, rid, start)) == 2  # order.fired, ticket.fired: once


async def test_seats_are_taken_at_order_entry(client, db, base, server, menu):
    order = await place(client, base, server, line(menu, "Burger", seat=1),
                        line(menu, "Fries", seat=2), line(menu, "Cola"))
    assert [i["seat"] for i in order["items"]] == [1, 2, None]
    added = await ok(await client.post(base + f"/orders/{order['id']}/items", headers=server,
                                       json={"items": [line(menu, "Tiramisu", 2, seat=100)]}))
    assert added["items"][-1]["seat"] == 100
    assert await db.fetchval("SELECT seat FROM order_items WHERE id = $1", added["items"][-1]["id"]) == 100


@pytest.mark.parametrize("seat", [0, 101, "2", -1])
async def test_a_seat_out_of_range_is_422_and_nothing_written(client, db, base, server, menu, seat):
    order = await place(client, base, server, line(menu, "Burger"))
    before = await table_counts(db)
    create = await client.post(base + "/orders", headers=server,
                               json={"items": [line(menu, "Burger", seat=seat)]})
    add = await client.post(base + f"/orders/{order['id']}/items", headers=server,
                            json={"items": [line(menu, "Fries"), line(menu, "Burger", seat=seat)]})
    for response, path in [(create, "$.items[0].seat"), (add, "$.items[1].seat")]:
        assert response.status == 422
        assert path in str(await error_of(response))
    assert await table_counts(db) == before


async def test_a_ticket_bumped_before_its_held_line_fires_comes_back(client, db, base, server, cook,
                                                                    menu, prep):
    await prep(Ribeye=600, Caesar_salad=0)
    order = await place(client, base, server, line(menu, "Ribeye"), line(menu, "Caesar salad"))
    salad = by_name(order)["Caesar salad"]
    bumped = await ok(await client.post(base + f"/kitchen/tickets/{salad['ticket_id']}/bump",
                                        headers=cook))
    assert bumped["status"] == "bumped" and bumped["items"][0]["status"] == "held"
    await db.execute("UPDATE order_items SET fire_at = now() WHERE id = $1", salad["id"])
    await firing.fire_due(client.app[POOL])  # or the app's own task does
    await until_fired(db, [salad["id"]])
    tickets = (await ok(await client.get(base + "/kitchen/tickets?station=cold", headers=cook)))["items"]
    [back] = tickets
    assert (back["id"], back["status"], back["bumped_at"]) == (salad["ticket_id"], "open", None)
    assert back["items"][0]["status"] == "fired" and back["version"] == bumped["version"] + 1


@needs_chromium
async def test_the_kitchen_sees_a_course_timed_by_prep_and_a_course_held(browser, client, base, server,
                                                                         menu, prep):
    await prep(Ribeye=720, Caesar_salad=240, Fries=300, Tiramisu=120)
    order = await place(client, base, server, line(menu, "Ribeye", seat=1),
                        line(menu, "Caesar salad", seat=2), line(menu, "Fries", seat=2),
                        line(menu, "Tiramisu", 2), line(menu, "Panna cotta", 2))
    await ok(await client.post(base + f"/orders/{order['id']}/courses/2/hold", headers=server))
    page = await browser.new_page(viewport={"width": 1920, "height": 1080})
    await sign_in(page, str(client.make_url("")), "kitchen@demo.test", PASSWORD, "/r/demo/kitchen")
    await page.locator(".ticket").nth(2).wait_for(timeout=10_000)  # grill, cold and fry
    assert await page.locator("li.item.held").count() == 2  # the salad and the fries wait
    assert await page.locator("li.item[data-status='fired']", has_text="Ribeye").count() == 1
    assert await page.locator("li.item", has_text="Ribeye").locator(".seat").inner_text() == "seat 1"
    await page.wait_for_function(
        "() => [...document.querySelectorAll('li.item.held .hold')].every(n => /^hold \\d/.test(n.textContent))")
    await page.screenshot(path=str(SHOTS / "firing-by-prep.png"))
    await ok(await client.post(base + f"/orders/{order['id']}/courses/1/fire", headers=server))
    await page.wait_for_function("() => document.querySelectorAll('li.item.held').length === 0",
                                 timeout=10_000)  # fired by hand: the held lines go now
