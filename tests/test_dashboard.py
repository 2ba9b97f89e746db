"""The manager's dashboard: a hand-built day through the API, then every number checked exactly."""
from __future__ import annotations

import pytest
from conftest import bearer, error_of


async def ok(response, status=200):
    assert response.status == status, await response.text()
    return await response.json()


async def menu_of(client, base, headers):
    tree = await ok(await client.get(base + "/menu", headers=headers))
    return {i["name"]: i for c in tree["categories"] for i in c["items"]}


async def tables_of(db, rid):
    return {r["label"]: r["id"] for r in await db.fetch(
        "SELECT label, id FROM dining_tables WHERE restaurant_id = $1", rid)}


async def dashboard(client, base, headers):
    return await ok(await client.get(base + "/dashboard", headers=headers))


async def order(client, base, server, menu, table_id, *names, hold=False):
    lines = [{"menu_item_id": menu[name]["id"]} for name in names]
    return await ok(await client.post(base + "/orders", headers=server,
                                      json={"table_id": table_id, "items": lines, "hold": hold}), 201)


async def bump_order(client, db, base, cook, order_id, seconds_by_station):
    """Bump every ticket of an order, then set its fire time back so it took exactly that long."""
    for row in await db.fetch("SELECT id, station, status FROM tickets WHERE order_id = $1 ORDER BY id",
                              order_id):
        if row["status"] != "bumped":  # a ticket whose items were all voided closed by itself
            await ok(await client.post(base + f"/kitchen/tickets/{row['id']}/bump", headers=cook))
        await db.execute("UPDATE tickets SET fired_at = bumped_at - make_interval(secs => $2) WHERE id = $1",
                         row["id"], seconds_by_station[row["station"]])


async def close(client, base, server, order_id, amount, tip):
    await ok(await client.post(base + f"/orders/{order_id}/close", headers=server, json={
        "payment": {"method": "card", "amount_minor": amount, "tip_minor": tip}}))


async def join(client, db, base, host, name, size, minutes_ago):
    party = await ok(await client.post(base + "/waitlist", headers=host,
                                       json={"name": name, "size": size}), 201)
    await db.execute("UPDATE waitlist_parties SET joined_at = now() - make_interval(mins => $2)"
                     " WHERE id = $1", party["id"], minutes_ago)
    return party


async def move_table(client, base, host, table_id, status, **extra):
    await ok(await client.post(base + f"/tables/{table_id}/status", headers=host,
                               json={"status": status, **extra}))


async def test_an_untouched_day_is_all_zeros_with_every_table_free(client, db, rid, base, tokens):
    response = await client.get(base + "/dashboard", headers=bearer(await tokens("manager")))
    numbers = await ok(response)
    assert response.headers["X-Serveline-Seq"] == str(
        await db.fetchval("SELECT seq FROM restaurants WHERE id = $1", rid))
    assert {k: v for k, v in numbers.items() if k != "day_starts_at"} == {
        "covers": 0, "turns": 0, "open_orders": 0, "tables_by_status": {"free": 20},
        "waitlist_length": 0, "longest_wait_minutes": 0, "ticket_seconds_by_station": {},
        "open_tickets": 0, "orders_closed": 0, "revenue_minor": 0, "tips_minor": 0, "currency": "USD"}


async def test_a_hand_built_service_gives_every_number_exactly(client, db, rid, restaurant_ids, base, tokens):
    host, server = bearer(await tokens("host")), bearer(await tokens("server"))
    cook, manager = bearer(await tokens("kitchen")), bearer(await tokens("manager"))
    menu, tables = await menu_of(client, base, server), await tables_of(db, rid)

    # Covers 4 + 2 from the waitlist and a walk-in of 3 whose table is already turned.
    ada = await join(client, db, base, host, "Ada", 4, 5)
    await ok(await client.post(base + f"/waitlist/{ada['id']}/seat", headers=host,
                               json={"table_id": tables["D1"]}))
    bo = await join(client, db, base, host, "Bo", 2, 3)
    await ok(await client.post(base + f"/waitlist/{bo['id']}/seat", headers=host,
                               json={"table_id": tables["P1"]}))
    await move_table(client, base, host, tables["P1"], "ordering")
    await move_table(client, base, host, tables["D2"], "seated", party_size=3)
    await move_table(client, base, host, tables["D2"], "dirty")
    await move_table(client, base, host, tables["D2"], "free")
    await move_table(client, base, host, tables["D3"], "blocked")

    # Waiting: three parties (one notified), the longest 40 minutes; one who left does not count.
    await join(client, db, base, host, "Cy", 2, 25)
    await join(client, db, base, host, "Di", 5, 40)
    eve = await join(client, db, base, host, "Eve", 3, 10)
    await ok(await client.post(base + f"/waitlist/{eve['id']}/notify", headers=host))
    fay = await join(client, db, base, host, "Fay", 2, 90)
    await ok(await client.post(base + f"/waitlist/{fay['id']}/leave", headers=host))

    # Two orders closed: 2 x Burger + Fries = 4200 (tip 700); Ribeye 3800 with a voided Espresso (tip 500).
    first = await order(client, base, server, menu, tables["D1"], "Burger", "Burger", "Fries")
    await bump_order(client, db, base, cook, first["id"], {"grill": 600, "fry": 300})
    await close(client, base, server, first["id"], 5000, 700)
    second = await order(client, base, server, menu, tables["P1"], "Ribeye", "Espresso")
    await ok(await client.post(base + f"/orders/{second['id']}/items/{second['items'][1]['id']}/void",
                               headers=server))
    await bump_order(client, db, base, cook, second["id"], {"grill": 900, "bar": 61})
    await close(client, base, server, second["id"], 3800, 500)

    # Two orders still open: one with a ticket on the grill, one held with no ticket yet.
    await order(client, base, server, menu, tables["D1"], "Salmon")
    await order(client, base, server, menu, tables["P1"], "Tiramisu", hold=True)

    # The other restaurant's service must not show up here.
    other = f"/api/v1/restaurants/{restaurant_ids['other']}"
    other_server = bearer(await tokens("server", "other"))
    foreign = await order(client, other, other_server, await menu_of(client, other, other_server), None,
                          "Espresso")
    await close(client, other, other_server, foreign["id"], 300, 100)

    numbers = await dashboard(client, base, manager)
    assert {k: v for k, v in numbers.items() if k != "day_starts_at"} == {
        "covers": 9, "turns": 3, "open_orders": 2,
        "tables_by_status": {"free": 17, "seated": 1, "ordering": 1, "blocked": 1},
        "waitlist_length": 3, "longest_wait_minutes": 40,
        "ticket_seconds_by_station": {"grill": 750, "fry": 300, "bar": 61}, "open_tickets": 1,
        "orders_closed": 2, "revenue_minor": 8000, "tips_minor": 1200, "currency": "USD"}


async def test_only_today_counts(client, db, rid, base, tokens):
    server, cook = bearer(await tokens("server")), bearer(await tokens("kitchen"))
    manager = bearer(await tokens("manager"))
    menu, tables = await menu_of(client, base, server), await tables_of(db, rid)
    await move_table(client, base, server, tables["D4"], "seated", party_size=2)
    done = await order(client, base, server, menu, tables["D4"], "Burger")
    await bump_order(client, db, base, cook, done["id"], {"grill": 120})
    await close(client, base, server, done["id"], 1800, 200)
    today = await dashboard(client, base, manager)
    assert (today["covers"], today["orders_closed"], today["revenue_minor"], today["tips_minor"]) == (
        2, 1, 1800, 200)
    assert today["ticket_seconds_by_station"] == {"grill": 120}
    await db.execute("UPDATE table_turns SET seated_at = seated_at - interval '2 days'")
    await db.execute("UPDATE tickets SET fired_at = fired_at - interval '2 days',"
                     " bumped_at = bumped_at - interval '2 days'")
    await db.execute("UPDATE orders SET created_at = created_at - interval '2 days', "
                     "closed_at = closed_at - interval '2 days'")
    before = await dashboard(client, base, manager)
    assert (before["covers"], before["turns"], before["orders_closed"], before["revenue_minor"],
            before["tips_minor"], before["ticket_seconds_by_station"]) == (0, 0, 0, 0, 0, {})
    assert before["tables_by_status"] == {"free": 19, "seated": 1}


async def test_the_day_starts_at_midnight_in_the_restaurants_time_zone(client, db, rid, base, tokens):
    numbers = await dashboard(client, base, bearer(await tokens("owner")))
    expected = await db.fetchval(
        "SELECT to_json(date_trunc('day', now() AT TIME ZONE 'America/New_York')"
        " AT TIME ZONE 'America/New_York')::text")
    assert f'"{numbers["day_starts_at"]}"' == expected


@pytest.mark.parametrize("role", ["kitchen", "host", "server"])
async def test_only_managers_see_the_dashboard(client, base, tokens, role):
    response = await client.get(base + "/dashboard", headers=bearer(await tokens(role)))
    assert response.status == 403
    assert (await error_of(response))["code"] == "forbidden"


async def test_another_restaurants_dashboard_is_404(client, restaurant_ids, tokens):
    response = await client.get(f"/api/v1/restaurants/{restaurant_ids['other']}/dashboard",
                                headers=bearer(await tokens("owner")))
    assert response.status == 404
    assert (await error_of(response))["code"] == "not_found"
