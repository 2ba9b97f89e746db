"""The kitchen screen in a real browser: changed tickets flash and say what changed, held lines
count down, the recently bumped list recalls any ticket, per-station colours; and the
"last event N s ago" indicator of every live screen, red when the stream goes quiet."""
from __future__ import annotations

import msgspec
from conftest import PASSWORD, bearer
from screens import SHOTS, cut_sockets, needs_chromium, sign_in

pytestmark = needs_chromium

GRILL = "/r/demo/kitchen?station=grill"
# A network that keeps the socket open but delivers nothing while `window.dropStream` is set.
DROPPING_SOCKET = """{
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    set onmessage(handler) { super.onmessage = (message) => { if (!window.dropStream) handler(message); }; }
    get onmessage() { return super.onmessage; }
  };
}"""


async def order(client, base, server, menu, *names, **extra):
    response = await client.post(base + "/orders", headers=server, json={
        "items": [{"menu_item_id": menu[name]["id"]} for name in names], **extra})
    assert response.status == 201, await response.text()
    return await response.json()


async def grill_page(browser, client, viewport=(1920, 1080), email="kitchen@demo.test", path=GRILL):
    page = await browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    await sign_in(page, str(client.make_url("")), email, PASSWORD, path)
    await page.wait_for_function("() => document.getElementById('offline').hidden === true")
    return page


async def test_a_ticket_changed_after_it_was_sent_flashes_and_shows_what_changed(
        browser, client, base, server, cook, menu):
    page = await grill_page(browser, client)
    placed = await order(client, base, server, menu, "Burger", "Ribeye")
    ticket = page.locator(".ticket").first
    await ticket.wait_for(timeout=10_000)
    assert await page.locator(".ticket.changed, .ticket .changes").count() == 0  # nothing changed yet
    burger = next(i for i in placed["items"] if i["name"] == "Burger")
    response = await client.post(base + f"/orders/{placed['id']}/items/{burger['id']}/void",
                                 headers=server, json={"reason": "guest changed their mind"})
    assert response.status == 200, await response.text()
    await page.wait_for_selector(".ticket.changed.flash", timeout=10_000)  # came with the event
    assert "Burger" in await ticket.locator(".changes").inner_text()
    assert "VOID" in (await ticket.locator(".changes").inner_text()).upper()
    style = await ticket.evaluate("node => { const s = getComputedStyle(node); "
                                  "return [s.animationName, s.animationIterationCount, s.animationDuration]; }")
    assert style == ["ticket-changed", "10", "1s"]  # ~10 s of flashing, then the steady mark
    line = ticket.locator("li.item", has_text="Burger")
    assert await line.get_attribute("data-status") == "void"
    assert "line-through" in await line.evaluate("node => getComputedStyle(node).textDecorationLine")
    # Redrawn by a later event mid-flash, it keeps flashing and keeps its changes.
    response = await client.post(base + f"/kitchen/tickets/{burger['ticket_id']}/start", headers=cook)
    assert response.status == 200
    await page.wait_for_function("() => document.querySelector('.ticket .meta').textContent.includes('cooking')")
    assert await page.locator(".ticket.changed.flash .changes").count() == 1
    # Drawn again by the server, the mark stays.
    await page.reload()
    assert await page.locator(".ticket.changed .changes").count() == 1


async def test_a_held_line_is_greyed_and_counts_down_to_its_fire_time(browser, client, db, base,
                                                                        server, cook, menu):
    page = await browser.new_page(viewport={"width": 1920, "height": 1080})
    await page.clock.install()  # the screen's own clock, moved on below; it runs as usual till then
    await sign_in(page, str(client.make_url("")), "kitchen@demo.test", PASSWORD, GRILL)
    placed = await order(client, base, server, menu, "Burger", "Ribeye")
    await page.locator(".ticket").first.wait_for(timeout=10_000)
    ribeye = next(i for i in placed["items"] if i["name"] == "Ribeye")
    await db.execute("UPDATE order_items SET status = 'held', fire_at = now() + interval '95 seconds' "
                     "WHERE id = $1", ribeye["id"])
    ticket_id = ribeye["ticket_id"]
    response = await client.post(base + f"/kitchen/tickets/{ticket_id}/start", headers=cook)
    assert response.status == 200  # its event redraws the ticket
    await page.locator("li.item.held .hold").wait_for(timeout=10_000)
    await page.wait_for_function("() => /^hold 1:3\\d$/.test(document.querySelector('li.item.held .hold').textContent)")
    assert await page.locator("li.item.held").evaluate("node => getComputedStyle(node).color") != \
        await page.locator("li.item", has_text="Burger").evaluate("node => getComputedStyle(node).color")
    assert await page.locator("li.item.held").get_attribute("data-status") == "held"
    # When its time comes it says FIRE ...
    await page.clock.fast_forward("01:40")
    await page.wait_for_function("() => document.querySelector('li.item.held .hold').textContent === 'FIRE'",
                                 timeout=5_000)
    await page.locator("li.item.held .hold.due").wait_for()
    # ... and the server fires it: the redraw comes with its event.
    await db.execute("UPDATE order_items SET fire_at = now() WHERE id = $1", ribeye["id"])
    await page.locator("li.item[data-status='fired']", has_text="Ribeye").wait_for(timeout=10_000)
    assert await page.locator("li.item.held").count() == 0


async def test_tap_an_item_ready_bump_the_ticket_and_recall_any_from_the_recent_list(
        browser, client, db, base, server, menu):
    page = await grill_page(browser, client, viewport=(1024, 768))
    first = await order(client, base, server, menu, "Burger", "Ribeye")
    second = await order(client, base, server, menu, "Salmon")
    await page.locator(".ticket").nth(1).wait_for(timeout=10_000)
    assert await page.text_content("#recent-count") == "0"
    card = page.locator(f".ticket[data-id='{first['items'][0]['ticket_id']}']")
    await card.locator("li.item", has_text="Burger").click()  # item-level: one line ready
    await page.wait_for_selector("li.item.ready", timeout=10_000)
    assert await card.locator("li.item", has_text="Burger").get_attribute("data-status") == "ready"
    statuses = await db.fetch("SELECT name, status FROM order_items WHERE order_id = $1", first["id"])
    assert {r["name"]: r["status"] for r in statuses} == {"Burger": "ready", "Ribeye": "fired"}
    for _ in range(2):  # ticket-level: the Bump button
        await page.locator(".ticket button.bump").first.click()
        await page.wait_for_function("n => document.querySelectorAll('.ticket').length === n",
                                     arg=1 if _ == 0 else 0, timeout=10_000)
    await page.wait_for_function("() => document.getElementById('recent-count').textContent === '2'")
    await page.click("#recent-toggle")
    rows = page.locator("#recent-list .recent-ticket")
    await page.wait_for_function("() => document.querySelectorAll('#recent-list .recent-ticket').length === 2")
    ids = [await rows.nth(n).get_attribute("data-id") for n in range(2)]
    assert ids == [str(second["items"][0]["ticket_id"]), str(first["items"][0]["ticket_id"])]  # newest first
    assert "Ribeye" in await rows.nth(1).inner_text()
    await rows.nth(1).locator("button.recall").click()  # not the last bumped: the one before
    await page.locator(f".ticket[data-id='{ids[1]}']").wait_for(timeout=10_000)
    await page.wait_for_function("() => document.querySelectorAll('#recent-list .recent-ticket').length === 1")
    # Past the window (the screen still lists it): the refusal is shown, nothing comes back.
    await db.execute("UPDATE tickets SET bumped_at = now() - interval '11 minutes' WHERE id = $1", int(ids[0]))
    await rows.first.locator("button.recall").click()
    error = page.locator("#recent-error")
    await error.wait_for(timeout=10_000)
    assert "10 minutes" in await error.inner_text()
    assert await page.locator(f".ticket[data-id='{ids[0]}']").count() == 0
    assert await db.fetchval("SELECT status FROM tickets WHERE id = $1", int(ids[0])) == "bumped"
    assert await rows.count() == 0
    await page.click("#recent-close")
    assert await page.is_hidden("#recent")


async def test_the_recent_list_drops_tickets_as_their_window_passes(browser, client, db, base,
                                                                    server, cook, menu):
    placed = await order(client, base, server, menu, "Burger")
    ticket_id = placed["items"][0]["ticket_id"]
    assert (await client.post(base + f"/kitchen/tickets/{ticket_id}/bump", headers=cook)).status == 200
    # Bumped 10 minutes ago less 3 seconds: listed at first, gone once the window passes.
    await db.execute("UPDATE tickets SET bumped_at = now() - interval '597 seconds' WHERE id = $1", ticket_id)
    page = await grill_page(browser, client)
    await page.wait_for_function("() => document.getElementById('recent-count').textContent === '1'")
    await page.click("#recent-toggle")
    await page.locator("#recent-list .recent-ticket").wait_for()
    await page.wait_for_function("() => document.getElementById('recent-count').textContent === '0'",
                                 timeout=10_000)
    assert await page.locator("#recent-list .recent-ticket").count() == 0
    assert await page.is_visible("#recent-empty")


async def test_each_station_colours_its_tickets_by_its_own_thresholds(browser, client, db, base,
                                                                      server, menu, tokens):
    owner = bearer(await tokens("owner"))
    response = await client.patch(base, headers=owner, json={"settings": {"station_thresholds": {
        "grill": {"amber_minutes": 20, "red_minutes": 30}, "fry": {"amber_minutes": 1, "red_minutes": 2}}}})
    assert response.status == 200, await response.text()
    await order(client, base, server, menu, "Burger", "Fries", "Espresso")
    # Ten minutes for the grill (amber by the restaurant's 8, not by its own 20), five for the
    # fryer (past its red 2), nine for the bar (the restaurant's 8/15: amber).
    await db.execute("UPDATE tickets SET fired_at = now() - make_interval(mins => CASE station "
                     "WHEN 'grill' THEN 10 WHEN 'fry' THEN 5 ELSE 9 END)")
    page = await grill_page(browser, client, email="manager@demo.test", path="/r/demo/kitchen")
    await page.wait_for_function("() => document.querySelectorAll('.ticket').length === 3")
    await page.wait_for_function("() => document.querySelector('.ticket.red') !== null")
    colour = {station: await page.locator(f".ticket[data-station='{station}']").get_attribute("class")
              for station in ("grill", "fry", "bar")}
    assert "amber" not in colour["grill"] and "red" not in colour["grill"]
    assert "red" in colour["fry"].split()
    assert "amber" in colour["bar"].split()


async def test_the_kitchen_flow_screenshot(browser, client, db, base, server, cook, menu):
    """A changed ticket flashing with its changes, a held line counting down, the recent drawer."""
    tables = {t["label"]: t["id"] for t in (await (await client.get(
        base + "/tables?limit=200", headers=server)).json())["items"]}
    labels = sorted(tables)
    changed = await order(client, base, server, menu, "Burger", "Ribeye", "Salmon",
                          table_id=tables[labels[0]], guests=3)
    held = await order(client, base, server, menu, "Half chicken", "Pork chop",
                       table_id=tables[labels[1]], guests=2)
    gone = await order(client, base, server, menu, "Lamb skewers", table_id=tables[labels[2]], guests=4)
    page = await grill_page(browser, client)
    await page.wait_for_function("() => document.querySelectorAll('.ticket').length === 3")
    chicken = next(i for i in held["items"] if i["name"] == "Half chicken")
    await db.execute("UPDATE order_items SET status = 'held', fire_at = now() + interval '4 minutes 12 seconds' "
                     "WHERE id = $1", chicken["id"])
    assert (await client.post(base + f"/kitchen/tickets/{chicken['ticket_id']}/start", headers=cook)).status == 200
    assert (await client.post(base + f"/kitchen/tickets/{gone['items'][0]['ticket_id']}/bump",
                              headers=cook)).status == 200
    burger = next(i for i in changed["items"] if i["name"] == "Burger")
    response = await client.post(base + f"/orders/{changed['id']}/items/{burger['id']}/void",
                                 headers=server, json={"reason": "guest changed their mind"})
    assert response.status == 200, await response.text()
    await page.wait_for_selector(".ticket.changed.flash", timeout=10_000)
    await page.wait_for_selector("li.item.held .hold", timeout=10_000)
    await page.click("#recent-toggle")
    await page.locator("#recent-list .recent-ticket").wait_for(timeout=10_000)
    await page.wait_for_timeout(500)  # mid-flash
    await page.screenshot(path=str(SHOTS / "kitchen-flow.png"))


async def live_indicator(page):
    indicator = page.locator("#freshness")
    await page.wait_for_function("() => document.getElementById('freshness')?.dataset.state === 'live'",
                                 timeout=10_000)
    return indicator


async def test_the_freshness_indicator_turns_red_when_the_stream_goes_quiet_or_drops(
        browser, make_client, config):
    client = await make_client(msgspec.structs.replace(config, ws_heartbeat_seconds=1.0))
    context = await browser.new_context(viewport={"width": 1024, "height": 768})
    await context.add_init_script(DROPPING_SOCKET)
    page = await context.new_page()
    await sign_in(page, str(client.make_url("")), "kitchen@demo.test", PASSWORD, GRILL)
    indicator = await live_indicator(page)
    await page.wait_for_timeout(3500)  # longer than the 2 s bound: the pongs keep it alive
    assert await indicator.get_attribute("data-state") == "live"
    assert "stale" not in await indicator.get_attribute("class")
    assert (await indicator.inner_text()).startswith("last event ")
    await page.evaluate("window.dropStream = true")  # the socket stays open; nothing arrives
    await page.wait_for_function("() => document.getElementById('freshness').dataset.state === 'stale'",
                                 timeout=4_500)  # 2 × the 1 s ping interval, counted in whole seconds
    assert "stale" in await indicator.get_attribute("class")
    assert await indicator.evaluate("node => getComputedStyle(node).backgroundColor") == "rgb(198, 40, 40)"
    await page.screenshot(path=str(SHOTS / "freshness-stale.png"))
    await page.evaluate("window.dropStream = false")
    await live_indicator(page)
    await cut_sockets(client)  # the server drops every socket
    await page.wait_for_function("() => document.getElementById('freshness').dataset.state === 'offline'",
                                 timeout=5_000)
    assert await indicator.inner_text() == "offline — reconnecting"
    await live_indicator(page)  # and back once it reconnects


async def test_every_live_screen_shows_how_fresh_its_stream_is(browser, client):
    page = await browser.new_page(viewport={"width": 1024, "height": 768})
    await sign_in(page, str(client.make_url("")), "manager@demo.test", PASSWORD, "/r/demo/manager")
    for path in ("/r/demo/manager", "/r/demo/floor", "/r/demo/kitchen", "/r/demo/kitchen?station=expo",
                 "/r/demo/ops"):
        await page.goto(str(client.make_url(path)))
        indicator = await live_indicator(page)
        assert (await indicator.inner_text()).startswith("last event "), path
        assert await indicator.is_visible(), path
