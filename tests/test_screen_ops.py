"""The ops page in a real browser: the figures follow the server by polling, warnings say so in words,
route latency and the slowest SQL are charted and the trend lines grow with each answer."""
from __future__ import annotations

import re

from conftest import PASSWORD, bearer
from screens import SHOTS, SIZES, needs_chromium, sign_in

from server.keys import POOL

pytestmark = needs_chromium
POLLS = 12_000  # ms: the page polls every 5 s, so two polls and some slack
QUICK_POLL_MS = 600  # what the latency test's page is told (data-poll-ms) instead of 5 s


def text_is(key: str, value: str) -> str:
    return f"() => document.querySelector('[data-key=\"{key}\"]').textContent === '{value}'"


async def subscribed(open_socket, rid: int, token: str, channels: list[str]) -> None:
    sock = await open_socket(rid, token)
    await sock.send(type="subscribe", channels=channels)
    await sock.until("subscribed")


async def test_the_ops_page_counts_a_new_socket_within_a_few_polls(browser, client, rid, base, tokens,
                                                                 open_socket):
    owner = bearer(await tokens("owner"))
    screens = {}
    for name, role in (("Grill screen", "kitchen"), ("Host iPad", "host")):
        answer = await client.post(base + "/devices", headers=owner,
                                   json={"name": name, "kind": "screen", "role": role})
        screens[name] = (await answer.json())["token"]
    await subscribed(open_socket, rid, await tokens("manager"), ["manager"])

    page = await browser.new_page(viewport={"width": SIZES["wall"][0], "height": SIZES["wall"][1]})
    await sign_in(page, str(client.make_url("")), "manager@demo.test", PASSWORD, "/r/demo/ops")
    count = page.locator('[data-key="connections.restaurant"]')
    assert await count.inner_text() == "1"  # the test's socket: the page polls and opens none
    assert await page.locator("#summary").inner_text() == "All clear"
    assert "Host iPad" in await page.locator("#devices-behind").inner_text()

    await subscribed(open_socket, rid, screens["Grill screen"], ["kitchen"])
    await page.wait_for_function(text_is("connections.restaurant", "2"), timeout=POLLS)
    assert await page.locator("#roles .chip").all_inner_texts() == ["kitchen 1", "manager 1"]
    assert await page.locator('[data-key="connections.devices"]').inner_text() == "1"
    await page.wait_for_function(  # its receipts are written; the iPad that never came stays behind
        "() => !document.getElementById('devices-behind').textContent.includes('Grill screen')", timeout=POLLS)
    assert "Host iPad" in await page.locator("#devices-behind").inner_text()


async def test_late_events_and_a_lost_connection_are_flagged_in_words(browser, client, rid, base, db,
                                                                     tokens, open_socket):
    await subscribed(open_socket, rid, await tokens("manager"), ["manager"])
    page = await browser.new_page(viewport={"width": SIZES["ipad"][0], "height": SIZES["ipad"][1]})
    await sign_in(page, str(client.make_url("")), "manager@demo.test", PASSWORD, "/r/demo/ops")
    card = page.locator('[data-concern="delivery_behind"]')
    assert not await card.locator(".flag").is_visible()

    # An event committed 10 s ago whose notification never came: the room has not delivered it.
    await db.execute("""
        WITH counter AS (UPDATE restaurants SET seq = seq + 1 WHERE id = $1 RETURNING seq, epoch)
        INSERT INTO events (restaurant_id, seq, epoch, channel, name, data, at)
        SELECT $1, seq, epoch, 'manager', 'test.lost', '{}', now() - interval '10 seconds' FROM counter""", rid)
    # (A moment's lag, like the sign-in's own event in flight, is shown but not flagged.)
    await page.wait_for_function(
        "() => document.querySelector('[data-concern=delivery_behind]').classList.contains('warn')",
        timeout=POLLS)
    assert await card.locator('[data-key="delivery.behind"]').inner_text() == "1"
    assert (await card.locator(".flag").inner_text()).lower() == "warning"
    assert "waited over 5 s" in await card.locator(".ops-alert").inner_text()
    assert "1 warning" in await page.locator("#summary").inner_text()

    # The next notified write wakes the room; the warning goes with the lag.
    await client.post(base + "/devices", headers=bearer(await tokens("owner")),
                      json={"name": "Bar", "kind": "ipad", "role": "server"})
    await page.wait_for_function(text_is("delivery.behind", "0"), timeout=POLLS)
    assert not await card.locator(".flag").is_visible()
    assert "All clear" in await page.locator("#summary").inner_text()

    # The server out of reach: the offline banner, then back.
    await page.route("**/ops", lambda route: route.abort())
    await page.locator("#offline").wait_for(state="visible", timeout=POLLS)
    await page.unroute("**/ops")
    await page.locator("#offline").wait_for(state="hidden", timeout=POLLS)


async def polling_quickly(page, url: str) -> None:
    """Open the ops page as served, but with a shorter data-poll-ms (ops.js reads it)."""
    async def quicker(route) -> None:
        served = await route.fetch()
        body = (await served.text()).replace('data-poll-ms="5000"', f'data-poll-ms="{QUICK_POLL_MS}"')
        await route.fulfill(response=served, body=body)
    await page.route(url, quicker)
    await page.goto(url)
    assert await page.locator("#screen").get_attribute("data-poll-ms") == str(QUICK_POLL_MS)


async def latency_rows(page) -> list[tuple[str, list[float]]]:
    """The latency chart's rows as (route, [p50, p95, p99]), checked: numbers in order, slowest first."""
    rows = []
    for text in await page.locator("#route-latency tbody tr").all_inner_texts():
        row = re.fullmatch(r"([A-Z]+) (\S+) ([\d,]+) ([\d.]+) ([\d.]+) ([\d.]+)", " ".join(text.split()))
        assert row, text
        p50, p95, p99 = (float(row[n]) for n in (4, 5, 6))
        assert p50 <= p95 <= p99, text
        rows.append((row[2], [p50, p95, p99]))
    assert 5 <= len(rows) <= 10
    assert [p99 for _, (*_, p99) in rows] == sorted((p99 for _, (*_, p99) in rows), reverse=True)
    return rows


def samples(series: str) -> str:
    return f"Number(document.querySelector('[data-series={series}] svg').dataset.samples)"


async def test_route_latency_the_slowest_sql_and_trend_lines(browser, client, db, rid, base, tokens, menu,
                                                            open_socket):
    manager, server = bearer(await tokens("manager")), bearer(await tokens("server"))
    await client.post(base + "/devices", headers=bearer(await tokens("owner")),
                      json={"name": "Host iPad", "kind": "ipad", "role": "host"})
    await subscribed(open_socket, rid, await tokens("manager"), ["manager"])
    for _ in range(6):
        await client.get(base + "/menu", headers=manager)
        await client.get(base + "/orders?status=open", headers=server)
    for dish in ("Burger", "Burger", "Fries"):
        order = await client.post(base + "/orders", headers=server,
                                  json={"items": [{"menu_item_id": menu[dish]["id"], "qty": 1}]})
        assert order.status == 201
    await client.get(base + "/dashboard", headers=manager)
    # A slow statement, and a search of a large table without an index (its plan: a sequential scan).
    for _ in range(2):
        await client.app[POOL].fetchval("SELECT pg_sleep(0.12)")
    await db.execute("CREATE TABLE guest_notes (id bigint, restaurant_id bigint, note text)")
    await db.execute("INSERT INTO guest_notes SELECT g, g % 50, 'prefers a quiet table, note ' || g"
                     " FROM generate_series(1, 300000) g")
    await db.execute("ANALYZE guest_notes")
    for _ in range(3):
        await client.app[POOL].fetch("SELECT id, note FROM guest_notes WHERE restaurant_id = $1 AND note ILIKE $2",
                                     rid, "%allerg%")

    page = await browser.new_page(viewport={"width": SIZES["wall"][0], "height": SIZES["wall"][1]})
    url = str(client.make_url("/r/demo/ops"))
    await sign_in(page, str(client.make_url("")), "manager@demo.test", PASSWORD, "/r/demo/ops")
    await polling_quickly(page, url)

    # The first answer is in the page as served: route templates with their numbers, the slow statement.
    routes = await latency_rows(page)
    assert {"…/menu", "…/orders", "…/dashboard", "…/devices"} & {route for route, _ in routes}
    slow = page.locator("#sql-patterns tbody tr", has_text="pg_sleep")
    assert await slow.locator(".tag").inner_text() == "slow ×2"
    assert float((await slow.locator("td.num").all_inner_texts())[1]) >= 120  # its p95, in ms
    assert "statements since start" in await page.locator(".ops-tally").inner_text()

    # Each answer is one more point on the trend lines, and the tables are rebuilt from it.
    await page.evaluate("document.querySelectorAll('#route-latency tbody tr').forEach((r) => r.dataset.served = 1)")
    for dish in ("Burger", "Fries"):
        await client.post(base + "/orders", headers=server,
                          json={"items": [{"menu_item_id": menu[dish]["id"], "qty": 1}]})
    await page.wait_for_function(f"() => {samples('p95')} >= 4 && {samples('eps')} >= 3", timeout=POLLS)
    assert not await page.locator("#route-latency tr[data-served]").count()
    await latency_rows(page)
    points = await page.locator("[data-series=p95] polyline").first.get_attribute("points")
    assert len(points.split()) >= 4
    assert re.fullmatch(r"[\d.]+ ms", await page.locator("[data-series=p95] [data-now]").inner_text())
    assert (await page.locator("[data-series=eps] [data-peak]").inner_text()).startswith("peak ")

    # The plan advice the server gives is listed; a pattern opened for its whole text stays open.
    answer = await (await client.get(base + "/ops", headers=manager)).json()
    advice = await page.locator("#sql-advice li").all_inner_texts()
    for suggestion in answer["queries"]["suggestions"]:
        assert any(suggestion["advice"] in item for item in advice)
    if not answer["queries"]["suggestions"]:
        assert advice[0].startswith("No sequential scans")
    await slow.locator("summary").click()
    assert await slow.locator("pre").inner_text() == "SELECT pg_sleep(?)"
    seen = await page.evaluate(samples("p95"))
    await page.wait_for_function(f"() => {samples('p95')} > {seen}", timeout=POLLS)
    assert await slow.locator("pre").is_visible()
    await slow.locator("summary").click()

    await page.screenshot(path=str(SHOTS / "ops-wall.png"))
    await page.set_viewport_size({"width": SIZES["ipad"][0], "height": SIZES["ipad"][1]})
    await page.screenshot(path=str(SHOTS / "ops-ipad.png"), full_page=True)
