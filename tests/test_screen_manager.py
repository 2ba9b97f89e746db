"""The manager screen in a real browser: 86 an item with a tap, the day's charts follow the service
live, and a ticket past the red threshold raises an alert."""
from __future__ import annotations

from datetime import UTC, datetime, time

from conftest import PASSWORD, bearer, error_of
from screens import SHOTS, SIZES, needs_chromium, sign_in

pytestmark = needs_chromium
EVENING = 21  # the restaurant's local hour while the chart test runs

# An evening so far: (table, guests, seated at, minutes each of its tickets took).
SERVICE = [("P1", 2, "17:10", [6]), ("P3", 2, "17:35", [8]), ("D1", 4, "17:50", [9, 5]),
           ("D2", 4, "18:05", [11, 7]), ("D3", 6, "18:20", [13, 9]), ("P2", 3, "18:40", [10]),
           ("D4", 4, "18:55", [12]), ("D5", 4, "19:05", [14, 9]), ("D6", 6, "19:15", [17, 12]),
           ("P4", 4, "19:30", [16]), ("D7", 2, "19:45", [15]), ("D8", 4, "20:10", [12, 8]),
           ("P5", 2, "20:30", [10])]


async def ok(response, status=200):
    assert response.status == status, await response.text()
    return await response.json()


async def evening_in(client, base, owner):
    """Move the restaurant to a fixed-offset zone where it is now about 21:00, so the charts show
    17:00–23:00 and the service above lies in the past, whenever the tests run."""
    offset = (EVENING - datetime.now(UTC).hour + 12) % 24 - 12  # hours east of UTC
    await ok(await client.patch(base, headers=owner, json={"timezone": f"Etc/GMT{-offset:+d}"}))


async def tables_of(db, rid):
    return {r["label"]: r["id"] for r in await db.fetch(
        "SELECT label, id FROM dining_tables WHERE restaurant_id = $1", rid)}


async def seat_and_order(client, base, host, server, menu, table_id, guests, *dishes):
    await ok(await client.post(base + f"/tables/{table_id}/status", headers=host,
                               json={"status": "seated", "party_size": guests}))
    return await ok(await client.post(base + "/orders", headers=server, json={
        "table_id": table_id, "items": [{"menu_item_id": menu[d]["id"]} for d in dishes]}), 201)


async def serve_evening(client, db, rid, base, tokens, menu):
    """The service above through the API, then set back to the times it happened."""
    host, server, cook = [bearer(await tokens(role)) for role in ("host", "server", "kitchen")]
    tables = await tables_of(db, rid)
    for label, guests, clock, minutes in SERVICE:
        order = await seat_and_order(client, base, host, server, menu, tables[label], guests,
                                     *(["Burger", "Fries"] if len(minutes) == 2 else ["Salmon"]))
        seated = await db.fetchval(
            "SELECT ((now() AT TIME ZONE timezone)::date + $2::time) AT TIME ZONE timezone"
            " FROM restaurants WHERE id = $1", rid, time.fromisoformat(clock))
        await db.execute("UPDATE table_turns SET seated_at = $3 WHERE restaurant_id = $1 AND table_id = $2",
                         rid, tables[label], seated)
        tickets = await db.fetch("SELECT id FROM tickets WHERE order_id = $1 ORDER BY id", order["id"])
        for n, (ticket, took) in enumerate(zip(tickets, minutes)):
            await ok(await client.post(base + f"/kitchen/tickets/{ticket['id']}/bump", headers=cook))
            await db.execute(
                "UPDATE tickets SET bumped_at = $2::timestamptz + make_interval(mins => $3),"
                " fired_at = $2::timestamptz + make_interval(mins => $3 - $4) WHERE id = $1",
                ticket["id"], seated, 15 + 5 * n, took)


async def chart_texts(page, chart):
    """Each shown hour's column: {hour: [first row, second row]} as the page shows them."""
    return await page.evaluate("""(chart) => Object.fromEntries(
        [...document.querySelectorAll(`#${chart} .col`)].map((col) => [col.dataset.hour,
            [...col.querySelectorAll('.value')].map((t) => t.textContent)]))""", chart)


def whole(minutes):
    """Minutes as the charts print them: rounded half up, a dash for none."""
    return "–" if minutes is None else str(int(minutes + 0.5))


def expected_texts(day, shown):
    """What each shown hour's two rows should read, per chart, from an /hourly answer."""
    hours = [h for h in day["hours"] if str(h["hour"]) in shown]
    return ({str(h["hour"]): [str(h["covers"]), str(h["turns"])] for h in hours},
            {str(h["hour"]): [whole(h["ticket_avg_minutes"]), whole(h["ticket_p90_minutes"])] for h in hours})


async def test_eighty_sixing_on_the_manager_screen_makes_the_api_refuse_the_item(browser, client, base,
                                                                                server, menu):
    url = str(client.make_url(""))
    page = await browser.new_page(viewport={"width": 1920, "height": 1080})
    await sign_in(page, url, "manager@demo.test", PASSWORD, "/r/demo/manager")
    ribeye = menu["Ribeye"]["id"]
    await page.click(f'.item-toggle[data-item="{ribeye}"]')
    await page.wait_for_function(
        f"() => document.querySelector('.item-toggle[data-item=\"{ribeye}\"]').classList.contains('off')")
    refused = await client.post(base + "/orders", headers=server,
                                json={"items": [{"menu_item_id": ribeye, "qty": 1}]})
    assert refused.status == 409
    assert "86" in (await error_of(refused))["message"]
    assert "86'd" in await page.locator(f'.item-toggle[data-item="{ribeye}"]').inner_text()
    order = await client.post(base + "/orders", headers=server,
                              json={"items": [{"menu_item_id": menu["Burger"]["id"], "qty": 1}]})
    assert order.status == 201
    await page.wait_for_function("() => document.querySelector('[data-key=open_orders]').textContent === '1'",
                                 timeout=10_000)  # the numbers follow the events


async def test_the_charts_show_the_evening_by_hour_and_follow_new_orders_without_reload(
        browser, client, db, rid, base, tokens, menu):
    owner, manager = bearer(await tokens("owner")), bearer(await tokens("manager"))
    host, server, cook = [bearer(await tokens(role)) for role in ("host", "server", "kitchen")]
    await evening_in(client, base, owner)
    await serve_evening(client, db, rid, base, tokens, menu)
    # Something for the alerts panel: a ticket 22 minutes old, and an expected screen gone dark.
    late = await seat_and_order(client, base, host, server, menu, (await tables_of(db, rid))["P6"], 2,
                                "Half chicken")
    await db.execute("UPDATE tickets SET fired_at = now() - interval '22 minutes' WHERE order_id = $1",
                     late["id"])
    screen = await ok(await client.post(base + "/devices", headers=manager,
                                        json={"name": "Pass screen", "kind": "screen", "role": "kitchen"}), 201)
    await db.execute("UPDATE devices SET expected = true, alert = 'dark' WHERE id = $1", screen["device"]["id"])

    url = str(client.make_url(""))
    page = await browser.new_page(viewport={"width": SIZES["wall"][0], "height": SIZES["wall"][1]})
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    await sign_in(page, url, "manager@demo.test", PASSWORD, "/r/demo/manager")
    hours = await page.locator("#covers-chart .hour").all_text_contents()
    assert hours == [f"{h}:00" for h in range(17, 24)]  # the service hours, 17:00 to 23:00
    assert await page.locator("#ticket-chart .hour").all_text_contents() == hours
    day = await ok(await client.get(base + "/dashboard/hourly", headers=manager))
    covers, times = expected_texts(day, await chart_texts(page, "covers-chart"))
    assert await chart_texts(page, "covers-chart") == covers
    assert await chart_texts(page, "ticket-chart") == times
    assert [covers[h][0] for h in ("17", "18", "19", "20")] == ["8", "17", "16", "6"]
    assert "Table P6" in await page.locator("#late-tickets").inner_text()
    assert "Pass screen" in await page.locator("#device-alerts").inner_text()

    # A new party and a 12-minute ticket, through the API: the charts follow, the page stays.
    await page.evaluate("window.sameDocument = true")
    tables = await tables_of(db, rid)
    order = await seat_and_order(client, base, host, server, menu, tables["D9"], 5, "Ribeye")
    await db.execute("UPDATE tickets SET fired_at = now() - interval '12 minutes' WHERE order_id = $1",
                     order["id"])
    ticket = await db.fetchval("SELECT id FROM tickets WHERE order_id = $1", order["id"])
    await ok(await client.post(base + f"/kitchen/tickets/{ticket}/bump", headers=cook))
    day = await ok(await client.get(base + "/dashboard/hourly", headers=manager))
    now = str(day["current_hour"])
    covers, times = expected_texts(day, [now])
    assert int(covers[now][0]) >= 5 and times[now][0] != "–"
    await page.wait_for_function(
        """([hour, covers, avg]) => {
            const col = (chart) => [...document.querySelectorAll(`#${chart} .col[data-hour="${hour}"] .value`)];
            return col('covers-chart')[0]?.textContent === covers && col('ticket-chart')[0]?.textContent === avg;
        }""", arg=[now, covers[now][0], times[now][0]], timeout=15_000)
    assert await page.evaluate("window.sameDocument") is True  # updated in place, not reloaded
    height = await page.locator(f'#covers-chart .col[data-hour="{now}"] .amount').get_attribute("height")
    assert float(height) > 0
    assert "current" in await page.locator(f'#covers-chart .col[data-hour="{now}"]').get_attribute("class")

    await page.screenshot(path=str(SHOTS / "manager-wall.png"))
    await page.set_viewport_size({"width": SIZES["ipad"][0], "height": SIZES["ipad"][1]})
    await page.screenshot(path=str(SHOTS / "manager-ipad.png"), full_page=True)
    assert await page.locator("#covers-chart .hour").all_text_contents() == hours
    assert errors == []


async def test_a_ticket_past_the_red_threshold_shows_in_the_alerts_panel(browser, client, db, rid, base,
                                                                        tokens, menu):
    host, server, cook = [bearer(await tokens(role)) for role in ("host", "server", "kitchen")]
    url = str(client.make_url(""))
    page = await browser.new_page(viewport={"width": SIZES["ipad"][0], "height": SIZES["ipad"][1]})
    await sign_in(page, url, "manager@demo.test", PASSWORD, "/r/demo/manager")
    assert await page.locator("#alert-count").inner_text() == "all clear"
    order = await seat_and_order(client, base, host, server, menu, (await tables_of(db, rid))["D3"], 4,
                                 "Burger", "Fries")
    tickets = {r["station"]: r["id"] for r in await db.fetch(
        "SELECT station, id FROM tickets WHERE order_id = $1", order["id"])}
    await db.execute("UPDATE tickets SET fired_at = now() - interval '20 minutes' WHERE id = $1",
                     tickets["grill"])
    # The SQL sent no event; the cook starting the ticket does.
    await ok(await client.post(base + f"/kitchen/tickets/{tickets['grill']}/start", headers=cook))
    row = page.locator(f'#late-tickets a[data-id="{tickets["grill"]}"]')
    await row.wait_for(timeout=10_000)
    assert [t.strip() for t in await row.locator("span").all_text_contents()] == ["Table D3", "grill", "20 min"]
    assert await row.get_attribute("href") == "/r/demo/kitchen?station=grill"
    assert (await row.bounding_box())["height"] >= 44
    assert await page.locator("#alert-count").inner_text() == "1"
    assert await page.locator("#late-tickets li").count() == 1  # the fry ticket is not late
    await ok(await client.post(base + f"/kitchen/tickets/{tickets['grill']}/bump", headers=cook))
    await row.wait_for(state="detached", timeout=10_000)
    assert await page.locator("#late-tickets").inner_text() == "No late tickets."
    assert await page.locator("#alert-count").inner_text() == "all clear"
