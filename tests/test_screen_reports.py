"""The reports screen: two weeks of service built through the API and dated by hand, read in a real
browser (every printed figure is the API's), and over plain HTTP (roles, bad spans, the CSV)."""
from __future__ import annotations

import csv
import io
import re
from datetime import date, time, timedelta

import pytest
from conftest import PASSWORD, bearer
from screens import SHOTS, SIZES, needs_chromium, sign_in

PAGE = {"Accept": "text/html,application/xhtml+xml"}
DAYS = 14
DISHES = (["Burger", "Fries"], ["Salmon"], ["Ribeye", "Burrata"])


async def ok(response, status=200):
    assert response.status == status, await response.text()
    return await response.json()


# The figures as the screen prints them (templates/reports.html): keep the two in step.
def money(minor):
    return f"{minor / 100:,.2f}"


def units(minor):
    return f"{minor / 100:,.0f}"


def whole(minutes):
    return str(int(minutes + 0.5))


def tenths(seconds):
    return f"{seconds / 60:.1f}"


def percent(rate):
    return f"{int(rate * 100 + 0.5)}%"


async def local(db, rid, day, clock, minutes=0):
    """The instant of `clock` (+ minutes) on the restaurant's local `day`."""
    return await db.fetchval(
        "SELECT ($2::date + $3::time) AT TIME ZONE timezone + make_interval(mins => $4)"
        " FROM restaurants WHERE id = $1", rid, day, clock, minutes)


@pytest.fixture
async def fortnight(client, db, rid, base, tokens, menu):
    """Two weeks ending today, closed on Mondays: parties seated and freed, orders closed (some
    with a void), tickets bumped (some past the red threshold), waitlist parties and bookings."""
    host, server, cook, manager = [bearer(await tokens(role))
                                   for role in ("host", "server", "kitchen", "manager")]
    today = await db.fetchval("SELECT (now() AT TIME ZONE timezone)::date FROM restaurants "
                              "WHERE id = $1", rid)
    first = today - timedelta(days=DAYS - 1)
    tables = [r["id"] for r in await db.fetch(
        "SELECT id FROM dining_tables WHERE restaurant_id = $1 AND seats >= 6 ORDER BY id", rid)]
    for i in range(DAYS):
        day = first + timedelta(days=i)
        if day.weekday() == 0:
            continue  # closed on Mondays: an empty column
        for p in range(1 + i % 3):
            table, guests, dishes = tables[(i + p) % len(tables)], 2 + (i + p) % 4, DISHES[(i + p) % 3]
            seated = await local(db, rid, day, time(18, 0), 40 * p)
            stay = 45 + (i * 11 + p * 17) % 60
            await ok(await client.post(base + f"/tables/{table}/status", headers=host,
                                       json={"status": "seated", "party_size": guests}))
            order = await ok(await client.post(base + "/orders", headers=server, json={
                "table_id": table, "guests": guests,
                "items": [{"menu_item_id": menu[d]["id"]} for d in dishes]}), 201)
            if i % 4 == 1 and p == 0 and len(dishes) == 2:
                order = await ok(await client.post(
                    base + f"/orders/{order['id']}/items/{order['items'][1]['id']}/void",
                    headers=manager, json={"reason": "sent back"}))
            tickets = await db.fetch("SELECT id FROM tickets WHERE order_id = $1 AND status <> 'bumped'"
                                     " ORDER BY id", order["id"])  # a void may have closed one
            for n, ticket in enumerate(tickets):
                await ok(await client.post(base + f"/kitchen/tickets/{ticket['id']}/bump", headers=cook))
                took = 6 + (i * 7 + p * 5 + n * 3) % 13  # 6 to 18 minutes: some late
                await db.execute("UPDATE tickets SET fired_at = $2::timestamptz + interval '10 minutes',"
                                 " bumped_at = $2::timestamptz + make_interval(mins => 10 + $3)"
                                 " WHERE id = $1", ticket["id"], seated, took)
            await ok(await client.post(base + f"/orders/{order['id']}/close", headers=server, json={
                "payment": {"method": "card", "amount_minor": order["total_minor"]}}))
            await db.execute("UPDATE orders SET closed_at = $2::timestamptz + make_interval(mins => $3)"
                             " WHERE id = $1", order["id"], seated, stay - 5)
            await ok(await client.post(base + f"/tables/{table}/status", headers=host,
                                       json={"status": "free"}))
            await db.execute(
                "UPDATE table_turns SET seated_at = $3, freed_at = $3::timestamptz + make_interval(mins => $4)"
                " WHERE id = (SELECT max(id) FROM table_turns WHERE restaurant_id = $1 AND table_id = $2)",
                rid, table, seated, stay)
        for quoted, waited in ((15, 10 + i), (25, 20 + 2 * i))[:1 + i % 2]:
            joined = await local(db, rid, day, time(19, 0))
            await db.execute(
                "INSERT INTO waitlist_parties (restaurant_id, name, size, quoted_minutes, status,"
                " joined_at, seated_at) VALUES ($1, 'Guest', 2, $2, 'seated', $3,"
                " $3::timestamptz + make_interval(mins => $4))", rid, quoted, joined, waited)
        for b in range(3 + i % 3):
            status = "no_show" if b == 0 and i % 3 == 2 else "cancelled" if b == 1 else "completed"
            starts = await local(db, rid, day, time(19, 30), 15 * b)
            await db.execute(
                "INSERT INTO reservations (restaurant_id, name, size, starts_at, ends_at, status) "
                "VALUES ($1, 'Booking', 2, $2, $2::timestamptz + interval '90 minutes', $3)",
                rid, starts, status)
    span = f"from={first.isoformat()}&to={today.isoformat()}"
    report = await ok(await client.get(base + f"/reports/daily?{span}", headers=manager))
    return {"first": first, "today": today, "span": span, "report": report, "manager": manager}


def expected_columns(days):
    """Each chart's columns, {chart id: {date: [rows]}}, as the screen should print them."""
    def column(d, *rows):
        return d["date"], list(rows)
    return {
        "sales-chart": dict(column(d, units(d["gross_minor"]), units(d["void_minor"]),
                                   units(d["average_check_minor"]) if d["orders"] else "–") for d in days),
        "covers-chart": dict(column(d, str(d["covers"]), str(d["orders"])) for d in days),
        "ticket-chart": dict(column(d, *([tenths(d["ticket_p50_seconds"]), tenths(d["ticket_p90_seconds"]),
                                          str(d["late_tickets"])] if d["tickets"] else ["–", "–", "0"]))
                             for d in days),
        "turns-chart": dict(column(d, whole(d["average_turn_minutes"]) if d["turns"] else "–",
                                   str(d["turns"])) for d in days),
        "wait-chart": dict(column(d, *([whole(d["quoted_minutes"]), whole(d["waited_minutes"]),
                                        str(d["waited_past_quote"])] if d["waitlist_seated"] else
                                       ["–", "–", "0"])) for d in days),
        "no-show-chart": dict(column(d, percent(d["no_show_rate"]) if d["reservations"] else "–",
                                     str(d["no_shows"]), str(d["reservations"])) for d in days),
    }


def weighted(rows, name, count):
    n = sum(r[count] for r in rows)
    return sum(r[name] * r[count] for r in rows) / n if n else 0.0


def expected_totals(days):
    total = {k: sum(d[k] for d in days) for k in ("gross_minor", "void_minor", "orders", "covers",
                                                  "tickets", "late_tickets", "reservations", "no_shows")}
    return {"gross_minor": money(total["gross_minor"]), "orders": str(total["orders"]),
            "covers": str(total["covers"]),
            "average_check_minor": money(int(total["gross_minor"] / total["orders"] + 0.5)),
            "late_tickets": str(total["late_tickets"]),
            "no_show_rate": percent(total["no_shows"] / total["reservations"])}


def expected_stations(days):
    """Per station over the span: tickets, ticket-weighted means of the daily p50/p90, late."""
    rows = {}
    for s in (s for d in days for s in d["by_station"]):
        rows.setdefault(s["station"], []).append(s)
    return [[station, str(sum(r["tickets"] for r in rows[station])),
             tenths(weighted(rows[station], "p50_seconds", "tickets")),
             tenths(weighted(rows[station], "p90_seconds", "tickets")),
             str(sum(r["late"] for r in rows[station]))] for station in sorted(rows)]


async def columns_of(page, chart):
    return await page.evaluate("""(chart) => Object.fromEntries(
        [...document.querySelectorAll(`#${chart} .col`)].map((col) => [col.dataset.date,
            [...col.querySelectorAll('.value')].map((t) => t.textContent)]))""", chart)


async def table_rows(page, table):
    return await page.evaluate("""(table) => [...document.querySelectorAll(`#${table} tbody tr`)]
        .map((tr) => [...tr.cells].map((td) => td.textContent.trim()))""", table)


@needs_chromium
async def test_the_reports_screen_prints_the_apis_figures_a_column_a_day(browser, client, fortnight):
    days = fortnight["report"]["days"]
    assert len(days) == DAYS and sum(d["orders"] for d in days) > 10
    assert sum(d["late_tickets"] for d in days) and sum(d["void_minor"] for d in days)
    url = str(client.make_url(""))
    page = await browser.new_page(viewport={"width": SIZES["wall"][0], "height": SIZES["wall"][1]})
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    await sign_in(page, url, "manager@demo.test", PASSWORD, f"/r/demo/reports?{fortnight['span']}")

    expected = expected_columns(days)
    for chart, columns in expected.items():
        assert await page.locator(f"#{chart} .col").count() == DAYS, chart
        assert await columns_of(page, chart) == columns, chart
    dates = await page.locator("#sales-chart .day").all_text_contents()
    assert dates == [f"{date.fromisoformat(d['date']).day} {date.fromisoformat(d['date']).strftime('%b')}"
                     for d in days]
    today = page.locator(f'#covers-chart .col[data-date="{fortnight["today"].isoformat()}"]')
    assert "today" in await today.get_attribute("class")
    busiest = max(days, key=lambda d: d["covers"])
    bar = page.locator(f'#covers-chart .col[data-date="{busiest["date"]}"] .amount')
    assert float(await bar.get_attribute("height")) > 0
    assert await page.locator("#ticket-chart .limit text").text_content() == "late at 15 min"

    totals = {key: await page.locator(f'#totals [data-key="{key}"]').inner_text()
              for key in ("gross_minor", "orders", "covers", "average_check_minor", "late_tickets",
                          "no_show_rate")}
    assert totals == expected_totals(days)
    assert await table_rows(page, "by-station") == expected_stations(days)
    categories = {}
    for c in (c for d in days for c in d["by_category"]):
        categories[c["category"]] = categories.get(c["category"], 0) + c["gross_minor"]
    assert {row[0]: row[1] for row in await table_rows(page, "by-category")} == {
        name: money(gross) for name, gross in categories.items()}
    assert sum(int(row[1]) for row in await table_rows(page, "by-table")) == sum(d["turns"] for d in days)
    assert sum(int(row[1]) for row in await table_rows(page, "by-party-size")) == sum(
        p["stays"] for d in days for p in d["by_party_size"])
    assert await page.locator("#csv").get_attribute("href") == f"/r/demo/reports.csv?{fortnight['span']}"
    assert await page.locator("#screen").get_attribute("data-seq")

    await page.screenshot(path=str(SHOTS / "reports-wall.png"), full_page=True)
    await page.set_viewport_size({"width": SIZES["ipad"][0], "height": SIZES["ipad"][1]})
    await page.screenshot(path=str(SHOTS / "reports-ipad.png"), full_page=True)
    for chart in expected:  # on the iPad too, every day's column keeps its room
        box = await page.locator(f"#{chart}").bounding_box()
        assert box["width"] >= 900 and box["x"] >= 0, chart

    # A quarter scrolls sideways, a column a day: the charts open at the latest days, keep their
    # row labels in view, and scroll together.
    quarter = fortnight["today"] - timedelta(days=91)
    await page.goto(f"{url}/r/demo/reports?from={quarter.isoformat()}&to={fortnight['today'].isoformat()}")
    assert await page.locator("#ticket-chart .col").count() == 92
    latest = page.locator(f'#ticket-chart .col[data-date="{fortnight["today"].isoformat()}"] .band')
    assert (await latest.bounding_box())["x"] + 60 <= SIZES["ipad"][0]
    assert await page.locator(".chart-axis .row-label").first.is_visible()
    sales = page.locator("#sales-chart").locator("xpath=..")
    await sales.evaluate("(box) => { box.scrollLeft = 0; }")
    await page.wait_for_function("() => document.querySelector('#no-show-chart').parentElement.scrollLeft === 0")
    assert errors == []


@needs_chromium
async def test_the_span_form_and_the_manager_link_work_without_script(browser, client, fortnight):
    url = str(client.make_url(""))
    context = await browser.new_context(java_script_enabled=False,
                                        viewport={"width": SIZES["ipad"][0], "height": SIZES["ipad"][1]})
    page = await context.new_page()
    await sign_in(page, url, "manager@demo.test", PASSWORD, "/r/demo/manager")
    await page.get_by_role("link", name="Reports").click()
    await page.wait_for_url("**/r/demo/reports")
    assert await page.locator("#sales-chart .col").count() == DAYS  # two weeks ending today
    week = fortnight["today"] - timedelta(days=6)
    await page.fill("input[name=from]", week.isoformat())
    await page.click(".span-form button")
    await page.wait_for_url(f"**/r/demo/reports?from={week.isoformat()}&to={fortnight['today'].isoformat()}")
    assert await page.locator("#sales-chart .col").count() == 7
    await context.close()


async def signed_in(client, email):
    page = await (await client.get("/login")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', page)[1]
    response = await client.post("/login", allow_redirects=False, data={
        "csrf": token, "email": email, "password": PASSWORD, "next": "/r/demo/manager"})
    assert response.status == 303


async def test_reports_without_a_session_go_to_sign_in_and_a_host_gets_a_403_page(client):
    response = await client.get("/r/demo/reports?from=2026-11-01&to=2026-11-07", headers=PAGE,
                                allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/login?next=/r/demo/reports?from=2026-11-01%26to=2026-11-07"
    await signed_in(client, "host@demo.test")
    for path in ("/r/demo/reports", "/r/demo/reports.csv"):
        refused = await client.get(path, headers=PAGE, allow_redirects=False)
        assert refused.status == 403 and refused.content_type == "text/html"
        assert "may not open this screen" in await refused.text()


@pytest.mark.parametrize("query, says", [
    ("from=yesterday", "from must be a date"),
    ("from=2026-11-01&to=2026-13-01", "to must be a date"),
    ("from=2026-11-08&to=2026-11-07", "at most 92 days"),
    ("from=2026-01-01&to=2026-04-03", "at most 92 days"),  # 92 days and one
])
async def test_a_bad_span_is_a_400_page(client, query, says):
    await signed_in(client, "manager@demo.test")
    response = await client.get(f"/r/demo/reports?{query}", headers=PAGE)
    assert response.status == 400 and response.content_type == "text/html"
    text = await response.text()
    assert says in text.lower() and "invalid_query" in text
    longest = await client.get("/r/demo/reports?from=2026-01-01&to=2026-04-02", headers=PAGE)
    assert longest.status == 200  # 92 days, the most a screen shows


async def test_the_default_span_is_the_last_two_weeks_in_the_restaurants_time_zone(client, db, rid):
    await signed_in(client, "owner@demo.test")
    today = await db.fetchval("SELECT (now() AT TIME ZONE timezone)::date FROM restaurants "
                              "WHERE id = $1", rid)
    html = await (await client.get("/r/demo/reports", headers=PAGE)).text()
    assert f'data-from="{(today - timedelta(days=13)).isoformat()}"' in html
    assert f'data-to="{today.isoformat()}"' in html
    assert html.count('<g class="col') == 6 * DAYS
    assert all(" src=" in tag for tag in re.findall(r"<script[^>]*>", html))  # no inline script
    week = await (await client.get(f"/r/demo/reports?from={today.isoformat()}", headers=PAGE)).text()
    assert f'data-to="{(today + timedelta(days=13)).isoformat()}"' in week
    desk = await (await client.get("/r/demo/manager", headers=PAGE)).text()
    assert 'href="/r/demo/reports">Reports</a>' in desk


async def test_the_csv_download_has_the_json_figures(client, fortnight):
    await signed_in(client, "manager@demo.test")
    response = await client.get(f"/r/demo/reports.csv?{fortnight['span']}")
    assert response.status == 200 and response.content_type == "text/csv"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="daily-{fortnight["first"].isoformat()}-{fortnight["today"].isoformat()}.csv"')
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    days = fortnight["report"]["days"]
    assert [row["date"] for row in rows] == [d["date"] for d in days]
    for column in ("orders", "covers", "gross_minor", "void_minor", "average_check_minor", "turns",
                   "tickets", "late_tickets", "waitlist_seated", "reservations", "no_shows"):
        assert [int(row[column]) for row in rows] == [d[column] for d in days], column
    for column in ("average_turn_minutes", "ticket_p50_seconds", "ticket_p90_seconds",
                   "quoted_minutes", "waited_minutes", "no_show_rate"):
        assert [float(row[column]) for row in rows] == [d[column] for d in days], column
