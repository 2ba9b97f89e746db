"""The kitchen display in a real browser: sign in, tickets appear live, bump bar keys, resume."""
from __future__ import annotations

from conftest import PASSWORD
from screens import SHOTS, SIZES, needs_chromium, sign_in

from server.keys import HUB

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
    await page.screenshot(path=str(SHOTS / "kitchen-wall.png"))
    await page.set_viewport_size({"width": SIZES["ipad"][0], "height": SIZES["ipad"][1]})
    await page.screenshot(path=str(SHOTS / "kitchen-ipad.png"))
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
    await page.wait_for_function("document.getElementById('offline').hidden === true")
    # Cut every socket from the server side, then write while the screen is away.
    for room in client.app[HUB].rooms.values():
        for conn in list(room.connections):
            conn.transport.abort()
    await page.wait_for_function("document.getElementById('offline').hidden === false", timeout=10_000)
    for _ in range(2):
        await order_burger(client, base, server, menu)
    await page.wait_for_function("document.querySelectorAll('.ticket').length === 2", timeout=20_000)
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
