"""The kitchen display in a real browser: sign in, tickets appear live, bump bar keys, resume."""
from __future__ import annotations

from conftest import PASSWORD
from screens import SHOTS, SIZES, cut_sockets, needs_chromium, sign_in

pytestmark = needs_chromium


async def order_burger(client, base, server, menu, note=""):
    response = await client.post(base + "/orders", headers=server, json={"items": [
        {"menu_item_id": menu["Burger"]["id"], "qty": 2, "note": note,
         "modifiers": [menu["Burger"]["modifiers"][0]["id"]]}]})
    assert response.status == 201, await response.text()
    return await response.json()


async def test_a_new_order_appears_live_and_the_bump_bar_sends_it_on(browser, client, base, server,
                                                                   menu, tokens):
    url = str(client.make_url(""))
    page = await browser.new_page(viewport={"width": 1920, "height": 1080})
    await sign_in(page, url, "kitchen@demo.test", PASSWORD, "/r/demo/kitchen?station=grill")
    assert await page.locator(".ticket").count() == 0
    order = await order_burger(client, base, server, menu, note="no sesame")
    ticket = page.locator(".ticket").first
    await ticket.wait_for(timeout=10_000)  # no reload: it came over the socket
    assert "2×" in await ticket.inner_text() and "no sesame" in await ticket.inner_text()
    await page.keyboard.press("1")
    await page.keyboard.press("Enter")
    await page.locator(".ticket").first.wait_for(state="detached", timeout=10_000)
    ready = await (await client.get(base + f"/orders/{order['id']}", headers=server)).json()
    assert {item["status"] for item in ready["items"]} == {"ready"}
    await page.keyboard.press("r")  # recall the last bumped
    await page.locator(".ticket").first.wait_for(timeout=10_000)


async def test_a_dropped_socket_resumes_with_both_orders_none_twice(browser, client, base, server,
                                                                  menu):
    url = str(client.make_url(""))
    page = await browser.new_page(viewport={"width": 1024, "height": 768})
    await sign_in(page, url, "kitchen@demo.test", PASSWORD, "/r/demo/kitchen?station=grill")
    await page.wait_for_function("() => document.getElementById('offline').hidden === true")
    # Cut every socket from the server side, then write while the screen is away.
    await cut_sockets(client)
    await page.wait_for_function("() => document.getElementById('offline').hidden === false", timeout=10_000)
    for _ in range(2):
        await order_burger(client, base, server, menu)
    await page.wait_for_function("() => document.querySelectorAll('.ticket').length === 2", timeout=20_000)
    await page.wait_for_timeout(500)
    assert await page.locator(".ticket").count() == 2


async def test_user_text_is_escaped(browser, client, base, server, menu):
    url = str(client.make_url(""))
    page = await browser.new_page()
    await sign_in(page, url, "kitchen@demo.test", PASSWORD, "/r/demo/kitchen?station=grill")
    await order_burger(client, base, server, menu, note="<script>window.pwned=1</script><b>x</b>")
    await page.locator(".ticket").first.wait_for(timeout=10_000)
    await page.reload()  # rendered by the server this time
    text = await page.locator(".ticket").first.inner_text()
    assert "<script>window.pwned=1</script>" in text
    assert await page.evaluate("window.pwned === undefined")


async def test_signing_in_with_a_wrong_password_shows_an_error(browser, client):
    page = await browser.new_page()
    await page.goto(str(client.make_url("/r/demo/kitchen")))
    await page.fill("input[name=email]", "kitchen@demo.test")
    await page.fill("input[name=password]", "wrong")
    await page.click("button[type=submit]")
    assert "Wrong email or password" in await page.locator(".error").inner_text()
    await page.screenshot(path=str(SHOTS / "login.png"))


async def test_expo_shows_the_order_once_the_grill_bumps_it_and_counts_show_all_day(
        browser, client, base, server, menu):
    url = str(client.make_url(""))
    grill = await browser.new_page(viewport={"width": 1920, "height": 1080})
    await sign_in(grill, url, "manager@demo.test", PASSWORD, "/r/demo/kitchen?station=grill")
    expo = await browser.new_page(viewport={"width": 1024, "height": 768})  # its own cookies
    await sign_in(expo, url, "server@demo.test", PASSWORD, "/r/demo/kitchen?station=expo")
    await order_burger(client, base, server, menu)
    await order_burger(client, base, server, menu)
    await grill.locator(".ticket").nth(1).wait_for(timeout=10_000)
    assert "4 Burger" in await grill.locator("#all-day").inner_text()  # 2 + 2 still to cook
    await grill.keyboard.press("1")
    await grill.keyboard.press("Enter")
    card = expo.locator(".ticket.pass").first
    await card.wait_for(timeout=10_000)  # left the grill, now at the pass
    assert "Burger" in await card.inner_text()
    assert "2 Burger" in await grill.locator("#all-day").inner_text()
    await expo.screenshot(path=str(SHOTS / "expo-ipad.png"))
    await card.locator("button.serve").click()
    await card.wait_for(state="detached", timeout=10_000)


async def test_by_touch_a_cook_starts_readies_an_item_bumps_and_recalls(browser, client, base, server,
                                                                       menu):
    url = str(client.make_url(""))
    page = await browser.new_page(viewport={"width": 1024, "height": 768}, has_touch=True)
    await sign_in(page, url, "kitchen@demo.test", PASSWORD, "/r/demo/kitchen?station=grill")
    await page.click("#chime")  # the cook asks for a chime on new tickets
    assert await page.get_attribute("#chime", "aria-pressed") == "true"
    order = await client.post(base + "/orders", headers=server, json={"items": [
        {"menu_item_id": menu["Burger"]["id"], "qty": 1},
        {"menu_item_id": menu["Ribeye"]["id"], "qty": 1}]})
    assert order.status == 201
    ticket = page.locator(".ticket").first
    await ticket.wait_for(timeout=10_000)
    await page.wait_for_function("() => document.getElementById('screen').dataset.chimes === '1'")
    box = await ticket.locator("button.bump").bounding_box()
    assert box["height"] >= 44  # a finger, not a mouse

    await ticket.locator("button.start").tap()
    await page.wait_for_function("() => document.querySelector('.ticket .meta').textContent.includes('cooking')")
    await ticket.locator("li.item", has_text="Burger").tap()  # one item is ready
    await page.wait_for_function("() => document.querySelector('li.item.ready') !== null")
    burger = page.locator("li.item", has_text="Burger")
    assert await burger.get_attribute("data-status") == "ready"
    assert "ready" in await burger.evaluate("node => getComputedStyle(node, '::after').content")
    items = (await (await client.get(base + f"/orders/{(await order.json())['id']}", headers=server)).json())["items"]
    assert sorted(item["status"] for item in items) == ["cooking", "ready"]

    assert await page.is_disabled("#recall")
    await page.locator(".ticket button.bump").first.tap()
    await page.locator(".ticket").first.wait_for(state="detached", timeout=10_000)
    await page.tap("#recall")
    await page.locator(".ticket").first.wait_for(timeout=10_000)
    assert await page.is_disabled("#recall")
    assert await page.get_attribute("#screen", "data-chimes") == "1"  # a recall is no new ticket


async def test_a_server_watching_the_pass_sees_tickets_but_no_bump_buttons(browser, client, base,
                                                                           server, menu):
    url = str(client.make_url(""))
    page = await browser.new_page()
    await sign_in(page, url, "server@demo.test", PASSWORD, "/r/demo/kitchen?station=grill")
    await order_burger(client, base, server, menu)
    await page.locator(".ticket").first.wait_for(timeout=10_000)
    assert await page.locator(".ticket button").count() == 0
    assert await page.locator("#recall").count() == 0


async def test_a_busy_grill_at_both_sizes(browser, client, base, server, menu, db):
    """Screenshots of a rush: tickets of several tables, modifiers and notes, timers past amber and red."""
    tables = {t["label"]: t["id"] for t in (await (await client.get(
        base + "/tables?limit=200", headers=server)).json())["items"]}
    lines = [
        [("Ribeye", 1, 1, ""), ("Burger", 2, 0, "no sesame")],
        [("Half chicken", 1, None, ""), ("Salmon", 1, 0, "")],
        [("Burger", 3, 2, ""), ("Lamb skewers", 2, None, "nut allergy")],
        [("Pork chop", 1, None, ""), ("Swordfish", 1, None, "")],
        [("Grilled vegetables", 2, None, "vegan"), ("Ribeye", 1, 3, "")],
    ]
    for n, (order, label) in enumerate(zip(lines, sorted(tables)[:5])):
        items = [{"menu_item_id": menu[name]["id"], "qty": qty, "note": note,
                  "modifiers": [] if mod is None else [menu[name]["modifiers"][mod]["id"]]}
                 for name, qty, mod, note in order]
        created = await client.post(base + "/orders", headers=server, json={
            "items": items, "table_id": tables[label], "guests": 2 + n,
            "note": "birthday table" if n == 2 else ""})
        assert created.status == 201, await created.text()
    # Fired a while ago: the first ticket is red, the second amber.
    await db.execute("UPDATE tickets SET fired_at = now() - make_interval(mins => CASE id % 5 "
                     "WHEN 1 THEN 17 WHEN 2 THEN 9 ELSE 2 END)")
    url = str(client.make_url(""))
    page = await browser.new_page(viewport={"width": 1920, "height": 1080})
    await sign_in(page, url, "kitchen@demo.test", PASSWORD, "/r/demo/kitchen?station=grill")
    await page.wait_for_function("() => document.querySelectorAll('.ticket').length === 5")
    await page.wait_for_function("() => document.querySelector('.ticket.red') && document.querySelector('.ticket.amber')")
    assert "17:" in await page.locator(".ticket.red .timer").inner_text()  # minutes, not colour alone
    await page.screenshot(path=str(SHOTS / "kitchen-wall.png"))
    await page.set_viewport_size({"width": SIZES["ipad"][0], "height": SIZES["ipad"][1]})
    await page.screenshot(path=str(SHOTS / "kitchen-ipad.png"))
