"""Daily reports: a hand-built set of days in a time zone with a DST change, JSON and CSV."""
from __future__ import annotations

import csv
import io
from datetime import datetime

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
    assert by_day["2026-03-10"] == {"date": "2026-03-10", "orders": 0, "covers": 0,
                                    "gross_minor": 0, "void_minor": 0, "average_check_minor": 0,
                                    "by_category": []}


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
