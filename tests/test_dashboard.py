"""The manager's dashboard: a hand-built day through the API, then every number checked exactly."""
from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import bearer, error_of

from server.keys import CACHE, QUERY_LOG


async def ok(response, status=200):
    assert response.status == status, await response.text()
    return await response.json()


async def menu_of(client, base, headers):
    tree = await ok(await client.get(base + "/menu", headers=headers))
    return {i["name"]: i for c in tree["categories"] for i in c["items"]}


async def tables_of(db, rid):
    return {r["label"]: r["id"] for r in await db.fetch(
        "SELECT label, id FROM dining_tables WHERE restaurant_id = $1", rid)}


async def forget_cached(client, base):
    """These tests set timestamps with SQL, which no event announces: read past the cache."""
    await client.app[CACHE].clear(int(base.rsplit("/", 1)[1]))


async def dashboard(client, base, headers):
    await forget_cached(client, base)
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
        "open_tickets": 0, "orders_closed": 0, "revenue_minor": 0, "tips_minor": 0, "currency": "USD",
        "ticket_red_minutes": 15, "late_tickets": []}


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
        "orders_closed": 2, "revenue_minor": 8000, "tips_minor": 1200, "currency": "USD",
        "ticket_red_minutes": 15, "late_tickets": []}


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


async def local_time(db, rid, clock, days=0):
    """That clock time on the restaurant's today (or `days` later) as an instant, as PostgreSQL sees it."""
    return await db.fetchval(
        "SELECT ((now() AT TIME ZONE timezone)::date + $2::int + $3::time) AT TIME ZONE timezone"
        " FROM restaurants WHERE id = $1", rid, days, time.fromisoformat(clock))


async def seat_at(client, db, base, host, rid, table_id, size, at):
    await move_table(client, base, host, table_id, "seated", party_size=size)
    await db.execute("UPDATE table_turns SET seated_at = $3 WHERE restaurant_id = $1 AND table_id = $2",
                     rid, table_id, at)


async def tickets_of(db, order_id):
    return {r["station"]: r["id"] for r in await db.fetch(
        "SELECT station, id FROM tickets WHERE order_id = $1", order_id)}


async def cooked(client, db, base, cook, ticket_id, bumped_at, minutes):
    """Bump a ticket through the API, then say when it was bumped and how long it took."""
    status = await db.fetchval("SELECT status FROM tickets WHERE id = $1", ticket_id)
    if status != "bumped":
        await ok(await client.post(base + f"/kitchen/tickets/{ticket_id}/bump", headers=cook))
    await db.execute("UPDATE tickets SET bumped_at = $2::timestamptz,"
                     " fired_at = $2::timestamptz - make_interval(mins => $3)"
                     " WHERE id = $1", ticket_id, bumped_at, minutes)


async def hourly(client, base, headers, **query):
    await forget_cached(client, base)
    return await ok(await client.get(base + "/dashboard/hourly", headers=headers, params=query))


def quiet_hour(hour):
    return {"hour": hour, "covers": 0, "turns": 0, "tickets": 0,
            "ticket_avg_minutes": None, "ticket_p90_minutes": None}


async def test_hourly_counts_covers_by_seating_and_tickets_by_bump_hour(client, db, rid, restaurant_ids,
                                                                       base, tokens):
    host, server = bearer(await tokens("host")), bearer(await tokens("server"))
    cook, manager = bearer(await tokens("kitchen")), bearer(await tokens("manager"))
    menu, tables = await menu_of(client, base, server), await tables_of(db, rid)

    # Covers: 4 + 2 seated between 18:00 and 19:00, 3 after 19:00; 5 late yesterday do not count.
    for label, size, clock, days in (("D1", 4, "18:05", 0), ("D2", 2, "18:40", 0), ("D3", 3, "19:15", 0),
                                     ("D4", 5, "23:30", -1)):
        await seat_at(client, db, base, host, rid, tables[label], size, await local_time(db, rid, clock, days))

    # Tickets by the hour they were bumped: grill 10 min and fry 4 min at 18:xx, grill 20 min at 19:10.
    first = await order(client, base, server, menu, tables["D1"], "Burger", "Burger", "Fries")
    await ok(await client.post(base + f"/orders/{first['id']}/items/{first['items'][0]['id']}/void",
                               headers=server))  # one Burger voided: the grill ticket still counts
    first_tickets = await tickets_of(db, first["id"])
    await cooked(client, db, base, cook, first_tickets["grill"], await local_time(db, rid, "18:30"), 10)
    await cooked(client, db, base, cook, first_tickets["fry"], await local_time(db, rid, "18:20"), 4)
    second = await order(client, base, server, menu, tables["D2"], "Ribeye")
    await cooked(client, db, base, cook, (await tickets_of(db, second["id"]))["grill"],
                 await local_time(db, rid, "19:10"), 20)
    # Left out: a ticket whose only item was voided, one bumped yesterday, one still open.
    voided = await order(client, base, server, menu, tables["D3"], "Espresso")
    await ok(await client.post(base + f"/orders/{voided['id']}/items/{voided['items'][0]['id']}/void",
                               headers=server))
    await cooked(client, db, base, cook, (await tickets_of(db, voided["id"]))["bar"],
                 await local_time(db, rid, "19:20"), 2)
    old = await order(client, base, server, menu, tables["D5"], "Salmon")
    await cooked(client, db, base, cook, (await tickets_of(db, old["id"]))["grill"],
                 await local_time(db, rid, "18:45", -1), 30)
    await order(client, base, server, menu, tables["D6"], "Salmon")
    # And another restaurant's kitchen.
    other = f"/api/v1/restaurants/{restaurant_ids['other']}"
    other_server, other_cook = bearer(await tokens("server", "other")), bearer(await tokens("kitchen", "other"))
    foreign = await order(client, other, other_server, await menu_of(client, other, other_server), None, "Burger")
    await cooked(client, db, other, other_cook, (await tickets_of(db, foreign["id"]))["grill"],
                 await local_time(db, restaurant_ids["other"], "18:30"), 45)

    response = await client.get(base + "/dashboard/hourly", headers=manager)
    day = await ok(response)
    assert response.headers["X-Serveline-Seq"] == str(
        await db.fetchval("SELECT seq FROM restaurants WHERE id = $1", rid))
    await asyncio.sleep(0)  # asyncpg reports each statement on the next loop turn
    assert client.app[QUERY_LOG].statements_of(response.headers["X-Request-Id"]) == 2  # credential + one
    expected = [quiet_hour(h) for h in range(24)]
    expected[18] = {"hour": 18, "covers": 6, "turns": 2, "tickets": 2,
                    "ticket_avg_minutes": 7.0, "ticket_p90_minutes": 9.4}  # p90 of 4 and 10: 4 + .9 × 6
    expected[19] = {"hour": 19, "covers": 3, "turns": 1, "tickets": 1,
                    "ticket_avg_minutes": 20.0, "ticket_p90_minutes": 20.0}
    assert [{k: v for k, v in h.items() if k != "starts_at"} for h in day["hours"]] == expected


async def test_the_hourly_day_is_the_restaurants_local_day(client, db, rid, base, tokens):
    host, owner = bearer(await tokens("host")), bearer(await tokens("owner"))
    tables = await tables_of(db, rid)
    after_midnight = await local_time(db, rid, "00:30")
    before_midnight = await local_time(db, rid, "23:30", -1)
    await seat_at(client, db, base, host, rid, tables["D1"], 2, after_midnight)
    await seat_at(client, db, base, host, rid, tables["D2"], 3, before_midnight)

    zone = ZoneInfo("America/New_York")
    hour_before = datetime.now(zone).hour
    today = await hourly(client, base, owner)
    hour_after = datetime.now(zone).hour
    midnight = datetime.combine(date.fromisoformat(today["date"]), time(0), zone)
    assert midnight == after_midnight - timedelta(minutes=30)
    assert (today["timezone"], datetime.fromisoformat(today["day_starts_at"])) == ("America/New_York", midnight)
    assert today["current_hour"] in (hour_before, hour_after)
    assert [datetime.fromisoformat(today["hours"][h]["starts_at"]) for h in (0, 12)] == [
        midnight, datetime.combine(midnight.date(), time(12), zone)]
    assert {h["hour"]: h["covers"] for h in today["hours"] if h["covers"]} == {0: 2}
    yesterday = await hourly(client, base, owner, date=(midnight.date() - timedelta(days=1)).isoformat())
    assert yesterday["current_hour"] is None
    assert {h["hour"]: h["covers"] for h in yesterday["hours"] if h["covers"]} == {23: 3}

    # The same two parties in Tokyo's day: other local hours, perhaps another date.
    await ok(await client.patch(base, headers=owner, json={"timezone": "Asia/Tokyo"}))
    tokyo = ZoneInfo("Asia/Tokyo")
    seen: dict[str, dict[int, int]] = {}
    for instant, size in ((after_midnight, 2), (before_midnight, 3)):
        local = instant.astimezone(tokyo)
        seen.setdefault(local.date().isoformat(), {})[local.hour] = size
    for day, covers in seen.items():
        answer = await hourly(client, base, owner, date=day)
        assert answer["timezone"] == "Asia/Tokyo"
        assert {h["hour"]: h["covers"] for h in answer["hours"] if h["covers"]} == covers


@pytest.mark.parametrize("value", ["yesterday", "2026-02-30", "26-11-25", ""])
async def test_a_malformed_hourly_date_is_400_with_the_error_shape(client, base, tokens, value):
    response = await client.get(base + "/dashboard/hourly", headers=bearer(await tokens("manager")),
                                params={"date": value})
    assert response.status == 400
    error = await error_of(response)
    assert error["code"] == "invalid_query"
    assert error["details"][0]["path"] == "query.date"


async def test_late_tickets_are_open_tickets_fired_before_the_red_threshold(client, db, rid, base, tokens):
    server, cook = bearer(await tokens("server")), bearer(await tokens("kitchen"))
    owner = bearer(await tokens("owner"))
    menu, tables = await menu_of(client, base, server), await tables_of(db, rid)
    at_table = await tickets_of(db, (await order(client, base, server, menu, tables["D1"], "Burger",
                                                 "Fries"))["id"])
    takeaway = await tickets_of(db, (await order(client, base, server, menu, None, "Salmon"))["id"])
    done = await tickets_of(db, (await order(client, base, server, menu, tables["D2"], "Ribeye"))["id"])
    await ok(await client.post(base + f"/kitchen/tickets/{at_table['grill']}/start", headers=cook))
    await ok(await client.post(base + f"/kitchen/tickets/{done['grill']}/bump", headers=cook))
    for ticket_id, minutes in ((at_table["grill"], 16), (at_table["fry"], 12), (takeaway["grill"], 40),
                               (done["grill"], 60)):
        await db.execute("UPDATE tickets SET fired_at = now() - make_interval(mins => $2) WHERE id = $1",
                         ticket_id, minutes)

    def summary(numbers):
        return [(t["id"], t["station"], t["table_label"], t["minutes"]) for t in numbers["late_tickets"]]

    numbers = await dashboard(client, base, owner)
    assert numbers["ticket_red_minutes"] == 15
    assert summary(numbers) == [(takeaway["grill"], "grill", None, 40), (at_table["grill"], "grill", "D1", 16)]
    assert numbers["open_tickets"] == 3
    await ok(await client.patch(base, headers=owner, json={"settings": {"ticket_red_minutes": 10}}))
    numbers = await dashboard(client, base, owner)
    assert numbers["ticket_red_minutes"] == 10
    assert summary(numbers) == [(takeaway["grill"], "grill", None, 40), (at_table["grill"], "grill", "D1", 16),
                                (at_table["fry"], "fry", "D1", 12)]
