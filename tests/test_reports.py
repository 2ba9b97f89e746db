"""Daily reports: a hand-built set of days in a time zone with a DST change, JSON and CSV."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime

import msgspec
import pytest
from conftest import bearer, error_of

# New York springs forward on 2026-03-08: that local day is 23 hours long, from 05:00 UTC to
# 04:00 UTC the next morning (a fixed offset would put the last order in the wrong day).
CLOSED_AT = {"a": "2026-03-08T04:59:59Z",   # Mar 7, 23:59:59 EST
             "b": "2026-03-08T05:00:00Z",   # Mar 8, 00:00 EST
             "c": "2026-03-09T03:59:59Z",   # Mar 8, 23:59:59 EDT
             "d": "2026-03-09T04:00:00Z"}   # Mar 9, 00:00 EDT


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def ok(response, status=200):
    assert response.status == status, await response.text()
    return await response.json()


@pytest.fixture
async def days(client, db, rid, base, server, tokens, menu):
    manager = bearer(await tokens("manager"))
    await db.execute("UPDATE restaurants SET timezone = 'America/New_York' WHERE id = $1", rid)
    burger, burrata = menu["Burger"], menu["Burrata"]
    orders = {}
    for name in CLOSED_AT:
        order = await ok(await client.post(base + "/orders", headers=server, json={
            "guests": 2, "items": [{"menu_item_id": burger["id"]}, {"menu_item_id": burrata["id"]}]}), 201)
        if name == "b":  # the burrata goes back: a void on day Mar 8
            order = await ok(await client.post(
                base + f"/orders/{order['id']}/items/{order['items'][1]['id']}/void",
                headers=manager, json={"reason": "wrong table"}))
        await ok(await client.post(base + f"/orders/{order['id']}/close", headers=server, json={
            "payment": {"method": "card", "amount_minor": order["total_minor"]}}))
        await db.execute("UPDATE orders SET closed_at = $3 WHERE restaurant_id = $1 AND id = $2",
                         rid, order["id"], utc(CLOSED_AT[name]))
        orders[name] = order
    table_id = await db.fetchval("SELECT id FROM dining_tables WHERE restaurant_id = $1 "
                                 "ORDER BY id LIMIT 1", rid)
    await ok(await client.post(base + f"/tables/{table_id}/status", headers=manager,
                               json={"status": "seated", "party_size": 5}))
    await db.execute("UPDATE table_turns SET seated_at = '2026-03-09T03:30:00Z' "
                     "WHERE restaurant_id = $1", rid)  # 23:30 EDT on Mar 8
    return {"orders": orders, "burger": burger["price_minor"], "burrata": burrata["price_minor"],
            "manager": manager}


async def test_a_day_is_the_restaurants_own_across_a_dst_change(client, base, days):
    report = await ok(await client.get(base + "/reports/daily?from=2026-03-07&to=2026-03-10",
                                       headers=days["manager"]))
    assert report["timezone"] == "America/New_York"
    by_day = {d["date"]: d for d in report["days"]}
    assert list(by_day) == ["2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10"]
    full = days["burger"] + days["burrata"]
    assert [by_day[d]["orders"] for d in by_day] == [1, 2, 1, 0]
    mar8 = by_day["2026-03-08"]
    assert mar8["gross_minor"] == full + days["burger"]  # b lost its burrata
    assert mar8["void_minor"] == days["burrata"]
    assert mar8["average_check_minor"] == round((full + days["burger"]) / 2)
    assert mar8["covers"] == 5 and by_day["2026-03-09"]["covers"] == 0
    assert sum(c["gross_minor"] for c in mar8["by_category"]) == mar8["gross_minor"]
    empty = by_day["2026-03-10"]
    assert empty["date"] == "2026-03-10"
    assert all(value in (0, []) for key, value in empty.items() if key != "date"), empty


async def test_csv_has_one_row_a_day_with_the_json_numbers(client, base, days):
    url = base + "/reports/daily?from=2026-03-07&to=2026-03-09"
    report = await ok(await client.get(url, headers=days["manager"]))
    response = await client.get(url, headers={**days["manager"], "Accept": "text/csv"})
    assert response.status == 200 and response.content_type == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [row["date"] for row in rows] == [d["date"] for d in report["days"]]
    assert [int(row["gross_minor"]) for row in rows] == [d["gross_minor"] for d in report["days"]]
    assert [int(row["covers"]) for row in rows] == [d["covers"] for d in report["days"]]


@pytest.mark.parametrize("query", ["", "from=2026-03-07", "from=2026-03-07&to=2026-03-06",
                                   "from=2026-01-01&to=2027-01-02", "from=yesterday&to=2026-03-08"])
async def test_bad_spans_are_400_invalid_query(client, base, tokens, query):
    response = await client.get(base + "/reports/daily?" + query,
                                headers=bearer(await tokens("manager")))
    assert response.status == 400
    assert (await error_of(response))["code"] == "invalid_query"


async def test_reports_are_for_managers_and_read_keys(client, base, tokens):
    url = base + "/reports/daily?from=2026-03-07&to=2026-03-07"
    assert (await client.get(url, headers=bearer(await tokens("host")))).status == 403
    key = await ok(await client.post(base + "/api-keys", headers=bearer(await tokens("owner")),
                                     json={"name": "books", "scopes": ["read"]}), 201)
    assert (await client.get(url, headers=bearer(key["key"]))).status == 200


async def test_an_hourly_day_has_23_or_25_hours_across_dst(client, db, rid, base, server, tokens,
                                                          menu):
    manager = bearer(await tokens("manager"))
    await db.execute("UPDATE restaurants SET timezone = 'America/New_York' WHERE id = $1", rid)
    taken = []
    for at in ("2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-01T06:45:00Z"):
        order = await ok(await client.post(base + "/orders", headers=server, json={
            "items": [{"menu_item_id": menu["Burger"]["id"]}]}), 201)
        await db.execute("UPDATE orders SET created_at = $3 WHERE restaurant_id = $1 AND id = $2",
                         rid, order["id"], utc(at))
        taken.append(order["id"])
    fall = await ok(await client.get(base + "/reports/hourly?date=2026-11-01", headers=manager))
    assert len(fall["hours"]) == 25  # New York falls back: 01:00 comes twice
    ones = [h for h in fall["hours"] if h["local_time"] == "01:00"]
    assert [utc(h["starts_at"]) for h in ones] == [utc("2026-11-01T05:00:00Z"),
                                                   utc("2026-11-01T06:00:00Z")]
    assert [h["orders"] for h in ones] == [1, 2]  # 01:30 EDT, then 01:30 and 01:45 EST
    assert sum(h["orders"] for h in fall["hours"]) == 3
    spring = await ok(await client.get(base + "/reports/hourly?date=2026-03-08", headers=manager))
    assert len(spring["hours"]) == 23 and "02:00" not in [h["local_time"] for h in spring["hours"]]
    response = await client.get(base + "/reports/hourly?date=2026-11-01",
                                headers={**manager, "Accept": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert len(rows) == 25 and utc(rows[1]["starts_at"]) == utc("2026-11-01T05:00:00Z")
    assert [int(row["orders"]) for row in rows] == [h["orders"] for h in fall["hours"]]
    missing = await client.get(base + "/reports/hourly", headers=manager)
    assert missing.status == 400 and (await error_of(missing))["code"] == "invalid_query"


# New York falls back on 2026-11-01 (25 hours, 04:00 UTC to 05:00 UTC the next day). The times
# below are UTC; the day's facts are built through the API, then dated by hand.
FALL_DAY = "2026-11-01"


@pytest.fixture
async def fall_day(client, db, rid, base, server, tokens, menu):
    manager = bearer(await tokens("manager"))
    cook = bearer(await tokens("kitchen"))
    await db.execute("UPDATE restaurants SET timezone = 'America/New_York' WHERE id = $1", rid)
    a, b = await db.fetch("SELECT id, label FROM dining_tables WHERE restaurant_id = $1 AND seats >= 4 "
                          "ORDER BY id LIMIT 2", rid)
    # A party of four sits at A, orders, then moves to B with its order; B is freed later.
    await ok(await client.post(base + f"/tables/{a['id']}/status", headers=server,
                               json={"status": "seated", "party_size": 4}))
    order = await ok(await client.post(base + "/orders", headers=server, json={
        "table_id": a["id"], "guests": 4, "items": [{"menu_item_id": menu["Burger"]["id"]}]}), 201)
    moved = await ok(await client.post(base + f"/tables/{a['id']}/move", headers=server,
                                       json={"to_table_id": b["id"]}))
    assert moved["order_ids"] == [order["id"]] and moved["table"]["party_size"] == 4
    await ok(await client.post(base + f"/tables/{b['id']}/status", headers=server,
                               json={"status": "free"}))
    turns = await db.fetch("SELECT id FROM table_turns WHERE restaurant_id = $1 ORDER BY id", rid)
    await db.execute("UPDATE table_turns SET seated_at = '2026-11-01T17:00Z', freed_at = "
                     "'2026-11-01T17:30Z' WHERE restaurant_id = $1 AND id = $2", rid, turns[0]["id"])
    await db.execute("UPDATE table_turns SET seated_at = '2026-11-01T17:30Z', freed_at = "
                     "'2026-11-01T18:30Z' WHERE restaurant_id = $1 AND id = $2", rid, turns[1]["id"])
    # Three more grill tickets (four in all) and a cold one, bumped after known times.
    for _ in range(3):
        await ok(await client.post(base + "/orders", headers=server, json={
            "items": [{"menu_item_id": menu["Burger"]["id"]}]}), 201)
    await ok(await client.post(base + "/orders", headers=server, json={
        "items": [{"menu_item_id": menu["Burrata"]["id"]}]}), 201)
    tickets = await db.fetch("SELECT id, station FROM tickets WHERE restaurant_id = $1 ORDER BY id", rid)
    for ticket, seconds in zip(tickets, (300, 600, 1500, 900, 120)):
        await ok(await client.post(base + f"/kitchen/tickets/{ticket['id']}/bump", headers=cook))
        await db.execute("UPDATE tickets SET fired_at = '2026-11-01T20:00Z', bumped_at = "
                         "'2026-11-01T20:00Z'::timestamptz + make_interval(secs => $3) "
                         "WHERE restaurant_id = $1 AND id = $2", rid, ticket["id"], seconds)
    # Waitlist: quoted 20 and 30 minutes, waited 15 and 40.
    for quoted, waited in ((20, 15), (30, 40)):
        await db.execute(
            "INSERT INTO waitlist_parties (restaurant_id, name, size, quoted_minutes, status, "
            "joined_at, seated_at) VALUES ($1, 'Guest', 2, $2, 'seated', '2026-11-01T22:00Z', "
            "'2026-11-01T22:00Z'::timestamptz + make_interval(mins => $3))", rid, quoted, waited)
    # Reservations booked for the day: one cancelled (left out), one no-show, two that came.
    for status, starts in (("cancelled", "2026-11-01T23:00Z"), ("no_show", "2026-11-02T00:00Z"),
                           ("completed", "2026-11-01T23:30Z"), ("seated", "2026-11-02T04:30Z"),
                           ("no_show", "2026-11-02T05:00Z")):  # 00:00 on Nov 2: the next day
        await db.execute(
            "INSERT INTO reservations (restaurant_id, name, size, starts_at, ends_at, status) "
            "VALUES ($1, 'Booking', 2, $2::timestamptz, $2::timestamptz + interval '90 minutes', $3)",
            rid, utc(starts), status)
    return {"manager": manager, "a": a, "b": b}


async def test_a_hand_built_day_gives_turns_stays_ticket_times_waits_and_no_shows(
        client, base, fall_day):
    report = await ok(await client.get(base + f"/reports/daily?from={FALL_DAY}&to=2026-11-02",
                                       headers=fall_day["manager"]))
    day, next_day = report["days"]
    assert day["date"] == FALL_DAY
    # The party that moved counts once in covers, at each table in turns, once in stays.
    assert day["covers"] == 4
    assert (day["turns"], day["average_turn_minutes"]) == (2, 45.0)
    assert day["by_table"] == sorted([
        {"table_id": fall_day["a"]["id"], "label": fall_day["a"]["label"], "turns": 1,
         "average_minutes": 30.0},
        {"table_id": fall_day["b"]["id"], "label": fall_day["b"]["label"], "turns": 1,
         "average_minutes": 60.0}], key=lambda t: t["label"])
    assert day["by_party_size"] == [{"party_size": 4, "stays": 1, "average_minutes": 90.0}]
    # Grill: 300, 600, 900, 1500 s; cold: 120 s. Red is 15 minutes: only 1500 s is late.
    assert day["by_station"] == [
        {"station": "cold", "tickets": 1, "p50_seconds": 120.0, "p90_seconds": 120.0, "late": 0},
        {"station": "grill", "tickets": 4, "p50_seconds": 750.0, "p90_seconds": 1320.0,
         "late": 1}]
    assert (day["tickets"], day["ticket_p50_seconds"], day["late_tickets"]) == (5, 600.0, 1)
    assert (day["waitlist_seated"], day["quoted_minutes"], day["waited_minutes"],
            day["waited_past_quote"]) == (2, 25.0, 27.5, 1)
    assert (day["reservations"], day["no_shows"], day["no_show_rate"]) == (3, 1, 0.333)
    assert (next_day["reservations"], next_day["no_shows"]) == (1, 1)
    response = await client.get(base + f"/reports/daily?from={FALL_DAY}&to={FALL_DAY}",
                                headers={**fall_day["manager"], "Accept": "text/csv"})
    [row] = list(csv.DictReader(io.StringIO(await response.text())))
    assert (row["turns"], row["late_tickets"], row["no_show_rate"]) == ("2", "1", "0.333")


async def test_a_moved_party_counts_once_in_the_hourly_covers(client, base, fall_day):
    hourly = await ok(await client.get(base + f"/reports/hourly?date={FALL_DAY}",
                                       headers=fall_day["manager"]))
    assert sum(h["covers"] for h in hourly["hours"]) == 4


async def test_rollups_are_kept_and_refreshed_only_by_new_facts(client, db, rid, base, server,
                                                                 fall_day):
    url = base + f"/reports/daily?from={FALL_DAY}&to={FALL_DAY}"
    first = await ok(await client.get(url, headers=fall_day["manager"]))
    kept = await db.fetchrow("SELECT figures, through_seq FROM daily_rollups "
                             "WHERE restaurant_id = $1 AND day = $2", rid, date(2026, 11, 1))
    assert kept is not None and msgspec.json.decode(kept["figures"]) == first["days"][0]
    # The day's orders are gone (as a retention policy would drop them): the rollup stays.
    await db.execute("UPDATE order_items SET ticket_id = NULL WHERE restaurant_id = $1", rid)
    await db.execute("DELETE FROM tickets WHERE restaurant_id = $1", rid)
    again = await ok(await client.get(url, headers=fall_day["manager"]))
    assert again == first
    # A no-show marked later for that day's booking makes the day stale: it is rolled up again.
    booking = await db.fetchval("SELECT id FROM reservations WHERE restaurant_id = $1 AND "
                                "status = 'completed'", rid)
    await db.execute("UPDATE reservations SET status = 'no_show', status_changed_at = now() "
                     "WHERE restaurant_id = $1 AND id = $2", rid, booking)
    await db.execute("UPDATE restaurants SET seq = seq + 1 WHERE id = $1", rid)
    later = await ok(await client.get(url, headers=fall_day["manager"]))
    assert (later["days"][0]["no_shows"], later["days"][0]["tickets"]) == (2, 0)


async def test_a_background_round_rolls_up_history_a_month_at_a_time(db, rid, client, base,
                                                                    server, menu):
    from server.keys import POOL
    from store import reports
    order = await ok(await client.post(base + "/orders", headers=server, json={
        "items": [{"menu_item_id": menu["Burger"]["id"]}]}), 201)
    await db.execute("UPDATE orders SET created_at = now() - interval '40 days' "
                     "WHERE restaurant_id = $1 AND id = $2", rid, order["id"])
    await db.execute("DELETE FROM daily_rollups")
    await reports.roll_up(client.app[POOL])
    counted = await db.fetchval("SELECT count(*) FROM daily_rollups WHERE restaurant_id = $1", rid)
    assert 31 <= counted <= 33  # yesterday and today, then the oldest month of history
    await reports.roll_up(client.app[POOL])
    assert await db.fetchval("SELECT count(*) FROM daily_rollups WHERE restaurant_id = $1",
                             rid) >= 41


async def test_closed_orders_past_retention_go_once_rolled_up_and_the_report_keeps_them(
        client, db, rid, base, server, tokens, menu):
    from server.keys import POOL
    from store import order_retention, reports
    manager = bearer(await tokens("manager"))
    placed = []
    for _ in range(3):
        order = await ok(await client.post(base + "/orders", headers=server, json={
            "items": [{"menu_item_id": menu["Burger"]["id"]}]}), 201)
        placed.append(order)
    for order in placed[:2]:  # two closed 40 days ago; the third stays open
        await ok(await client.post(base + f"/orders/{order['id']}/close", headers=server, json={
            "payment": {"method": "card", "amount_minor": order["total_minor"]}}))
    await db.execute("UPDATE orders SET created_at = now() - interval '40 days', closed_at = now() "
                     "- interval '40 days' WHERE restaurant_id = $1 AND status = 'closed'", rid)
    old_day = await db.fetchval("SELECT (now() - interval '40 days') AT TIME ZONE timezone "
                                "FROM restaurants WHERE id = $1", rid)
    pool = client.app[POOL]
    # Not yet rolled up: nothing goes.
    await db.execute("DELETE FROM daily_rollups")
    assert await order_retention.drop_closed_orders(pool, 30) == 0
    url = base + f"/reports/daily?from={old_day.date()}&to={old_day.date()}"
    before = await ok(await client.get(url, headers=manager))
    assert before["days"][0]["orders"] == 2
    assert await order_retention.drop_closed_orders(pool, 30) == 2
    left = await db.fetch("SELECT id, status FROM orders WHERE restaurant_id = $1", rid)
    assert [(r["id"], r["status"]) for r in left] == [(placed[2]["id"], "open")]
    assert await db.fetchval("SELECT count(*) FROM order_items WHERE restaurant_id = $1 AND "
                             "order_id <> $2", rid, placed[2]["id"]) == 0
    assert await db.fetchval("SELECT count(*) FROM tickets WHERE restaurant_id = $1 AND "
                             "order_id <> $2", rid, placed[2]["id"]) == 0
    # The day is final: a later write does not recompute it from the orders that are left.
    await ok(await client.post(base + "/orders", headers=server, json={
        "items": [{"menu_item_id": menu["Burger"]["id"]}]}), 201)
    async with pool.acquire() as conn:
        assert await reports.refresh(conn, rid, old_day.date(), old_day.date(), 30) == 0
    assert await ok(await client.get(url, headers=manager)) == before


async def test_a_report_of_past_days_reflects_the_latest_seq_once_fresh(client, db, rid, base,
                                                                        server, tokens, menu):
    manager = bearer(await tokens("manager"))
    url = base + "/reports/daily?from=2026-03-01&to=2026-03-07"
    first = await client.get(url, headers=manager)
    assert first.status == 200
    placed = await client.post(base + "/orders", headers=server, json={
        "items": [{"menu_item_id": menu["Burger"]["id"]}]})
    written = int(placed.headers["X-Serveline-Seq"])
    # Those days were rolled up before the write and are not recomputed; the answer is still
    # as fresh as the write (a client sending X-Serveline-Min-Seq gets what it asked for).
    again = await client.get(url, headers={**manager, "X-Serveline-Min-Seq": str(written)})
    assert again.status == 200 and int(again.headers["X-Serveline-Seq"]) >= written
    assert await again.json() == await first.json()


async def test_a_line_moved_to_a_kept_order_does_not_hold_back_its_first_orders_purge(
        client, db, rid, base, server, menu):
    """A merge or a transfer leaves a line on its first order's ticket: when that order goes,
    the kept line loses the ticket link and stays; the purge does not stall on it."""
    from server.keys import POOL
    from store import order_retention
    burger = menu["Burger"]["id"]
    first = await ok(await client.post(base + "/orders", headers=server, json={
        "items": [{"menu_item_id": burger}, {"menu_item_id": burger, "note": "moves"}]}), 201)
    kept = await ok(await client.post(base + "/orders", headers=server, json={
        "items": [{"menu_item_id": burger}]}), 201)
    moving = first["items"][1]
    assert moving["ticket_id"] is not None
    await ok(await client.post(base + f"/orders/{first['id']}/items/transfer", headers={
        **server, "If-Match": f'"{first["version"]}"'},
        json={"item_ids": [moving["id"]], "to_order_id": kept["id"]}))
    first = await ok(await client.get(base + f"/orders/{first['id']}", headers=server))
    await ok(await client.post(base + f"/orders/{first['id']}/close", headers=server, json={
        "payment": {"method": "card", "amount_minor": first["total_minor"]}}))
    await db.execute("UPDATE orders SET created_at = now() - interval '40 days', closed_at = now() "
                     "- interval '40 days' WHERE restaurant_id = $1 AND id = $2", rid, first["id"])
    day = await db.fetchval("SELECT ((now() - interval '40 days') AT TIME ZONE timezone)::date "
                            "FROM restaurants WHERE id = $1", rid)
    await db.execute("INSERT INTO daily_rollups (restaurant_id, day, through_seq, figures) VALUES ($1, $2, 0, "
                     "'{}') ON CONFLICT DO NOTHING", rid, day)
    assert await order_retention.drop_closed_orders(client.app[POOL], 30) == 1
    line = await db.fetchrow("SELECT order_id, ticket_id FROM order_items WHERE restaurant_id = $1 "
                             "AND id = $2", rid, moving["id"])
    assert (line["order_id"], line["ticket_id"]) == (kept["id"], None)
    assert await db.fetchval("SELECT count(*) FROM orders WHERE restaurant_id = $1 AND id = $2",
                             rid, first["id"]) == 0
