"""Pairing a wall screen in a real browser: it shows a code, a manager claims it, the screen opens by itself."""
from __future__ import annotations

from conftest import bearer
from screens import SHOTS, SIZES, needs_chromium

pytestmark = needs_chromium


async def test_a_screen_shows_a_code_and_opens_its_station_once_a_manager_claims_it(
        browser, client, base, server, menu, tokens):
    url = str(client.make_url(""))
    page = await browser.new_page(viewport={"width": SIZES["wall"][0], "height": SIZES["wall"][1]})
    await page.goto(url + "/login")
    await page.click("text=Pair it with a code")
    code = (await page.locator("#code").inner_text()).strip()
    assert len(code) == 7 and code[3] == "-"
    await page.screenshot(path=str(SHOTS / "pair-wall.png"))

    claimed = await client.post(base + "/devices/pair", headers=bearer(await tokens("manager")), json={
        "code": code, "name": "Grill pass", "screen": "kitchen", "station": "grill"})
    assert claimed.status == 201
    await page.wait_for_url("**/r/demo/kitchen?station=grill", timeout=10_000)  # by itself
    assert "Grill pass" in await page.locator("header.bar").inner_text()

    order = await client.post(base + "/orders", headers=server,
                              json={"items": [{"menu_item_id": menu["Burger"]["id"], "qty": 1}]})
    assert order.status == 201
    await page.locator(".ticket").first.wait_for(timeout=10_000)  # live, as the device
    await page.reload()  # and still signed in after a reload
    assert await page.locator(".ticket").count() == 1


async def test_an_expired_code_says_so_and_offers_a_new_one(browser, client, db):
    page = await browser.new_page(viewport={"width": SIZES["ipad"][0], "height": SIZES["ipad"][1]})
    await page.goto(str(client.make_url("/pair")))
    code = await page.locator("#code").inner_text()
    await db.execute("UPDATE pairings SET expires_at = now() - interval '1 second'")
    await page.locator("#expired").wait_for(timeout=10_000)
    await page.click("#again")
    await page.wait_for_function(f"() => document.getElementById('code').textContent !== {code!r}")
    await page.screenshot(path=str(SHOTS / "pair-ipad.png"))


async def test_a_screen_that_is_not_allowed_gets_a_page_not_json(browser, client):
    page = await browser.new_page(viewport={"width": SIZES["ipad"][0], "height": SIZES["ipad"][1]})
    answer = await page.goto(str(client.make_url("/r/nowhere/kitchen")))
    assert answer.status == 303 or "/login" in page.url  # not signed in: to the sign-in page first
    missing = await page.goto(str(client.make_url("/no/such/screen")))
    assert missing.status == 404
    assert "No such route." in await page.locator("h1").inner_text()
    await page.screenshot(path=str(SHOTS / "error-ipad.png"))


async def test_a_manager_pairs_a_screen_from_the_manager_screen(browser, client):
    from conftest import PASSWORD
    from screens import sign_in
    url = str(client.make_url(""))
    wall = await browser.new_page(viewport={"width": SIZES["wall"][0], "height": SIZES["wall"][1]})
    await wall.goto(url + "/pair")
    code = await wall.locator("#code").inner_text()

    manager = await browser.new_page(viewport={"width": SIZES["ipad"][0], "height": SIZES["ipad"][1]})
    await sign_in(manager, url, "manager@demo.test", PASSWORD, "/r/demo/manager")
    await manager.fill("#pair input[name=code]", "nope-00")
    await manager.fill("#pair input[name=name]", "Fry screen")
    await manager.select_option("#pair select[name=screen]", "kitchen:fry")
    await manager.click("#pair button[type=submit]")
    await manager.locator("#pair-result.error").wait_for()
    assert "No screen is showing the code" in await manager.locator("#pair-result").inner_text()

    await manager.fill("#pair input[name=code]", code.lower())
    await manager.click("#pair button[type=submit]")
    await manager.locator("#pair-result.ok").wait_for()
    await manager.locator("#devices td", has_text="Fry screen").wait_for(timeout=10_000)
    await wall.wait_for_url("**/r/demo/kitchen?station=fry", timeout=10_000)
    await manager.locator("section[aria-label='Pair a screen']").screenshot(
        path=str(SHOTS / "manager-pair-ipad.png"))
