"""Hostile text in every name and note, on every screen, in real Chromium: shown as text, never run —
when the page is rendered and when it arrives live over the socket. Also: the Content-Security-Policy
blocks inline script, and the browser fixture sees what it blocks (tests/screens.py)."""
from __future__ import annotations

from datetime import timedelta

from conftest import bearer, login
from playwright.async_api import TimeoutError as PlaywrightTimeout
from screens import needs_chromium, sign_in
from test_screen_floor import evening_in

pytestmark = needs_chromium
PASSWORD = "a hostile but long password"
# Each would set window.__xss if it ever reached the page as markup or script.
RESTAURANT = "<script>window.__xss=1</script> Bistro"
STAFF = "\"><img src=x onerror=window.__xss=1> Sam"
TABLE = "<svg onload=__xss=1>"  # labels are at most 20 characters
TABLE_2 = "<svg onload=__xss=3>"  # a table has one open order: the live ticket's table
AREA = "</title><script>window.__xss=1</script>"
CATEGORY = "</textarea><img src=x onerror=window.__xss=1>"
ITEM = "<img src=x onerror=window.__xss=1> Burger"
MODIFIER = "'><svg onload=window.__xss=1> no bun"
ORDER_NOTE = "</textarea><script>window.__xss=1</script> allergy"
ITEM_NOTE = "javascript:window.__xss=1 \"><img src=x onerror=window.__xss=1>"
PARTY = "<img src=x onerror=window.__xss=1> Ode"
PARTY_NOTE = "<iframe src=javascript:window.__xss=1>"
BOOKING = "\"><svg/onload=window.__xss=1> Fox"
BOOKING_NOTE = "' onmouseover='window.__xss=1"
DEVICE = "<script>window.__xss=1</script> iPad"
SCREEN = "<img src=x onerror=window.__xss=1> pass"
# Elements a payload would have become: event-handler attributes, inline scripts, frames.
INJECTED = """() => [...document.querySelectorAll('*')].filter((e) =>
    [...e.attributes].some((a) => a.name.startsWith('on')) || (e.tagName === 'SCRIPT' && !e.src)
    || e.tagName === 'IFRAME' || (e.tagName === 'IMG' && e.getAttribute('src') === 'x')
  ).map((e) => e.outerHTML)"""


async def created(client, path: str, headers: dict, body: dict, method: str = "POST") -> dict:
    response = await client.request(method, path, headers=headers, json=body)
    assert response.status in (200, 201), (path, await response.text())
    return await response.json()


async def hostile_restaurant(client, base: str, owner: dict, db, rid: int) -> dict:
    """Every name and note a person or an integration can type, set to markup."""
    await evening_in(client, base, owner)  # a booking made now still falls on today's timeline
    await created(client, base, owner, {"name": RESTAURANT}, "PATCH")
    await created(client, base + "/staff", owner, {"email": "sam@demo.test", "name": STAFF,
                                                   "role": "manager", "password": PASSWORD})
    area = await created(client, base + "/areas", owner, {"name": AREA})
    table = await created(client, base + "/tables", owner, {
        "label": TABLE, "seats": 4, "area_id": area["area"]["id"] if "area" in area else area["id"]})
    table_id = table["table"]["id"] if "table" in table else table["id"]
    second = await created(client, base + "/tables", owner, {
        "label": TABLE_2, "seats": 4, "area_id": area["area"]["id"] if "area" in area else area["id"]})
    category = await created(client, base + "/menu/categories", owner, {"name": CATEGORY})
    item = await created(client, base + "/menu/items", owner, {
        "category_id": category["category"]["id"] if "category" in category else category["id"],
        "name": ITEM, "price_minor": 1500, "station": "grill", "modifiers": [{"name": MODIFIER}]})
    item = item.get("item", item)
    sam = bearer((await login(client, "sam@demo.test", PASSWORD))["token"])
    client.session.cookie_jar.clear()
    line = {"menu_item_id": item["id"], "qty": 1, "note": ITEM_NOTE,
            "modifiers": [item["modifiers"][0]["id"]]}
    at_pass = await created(client, base + "/orders", sam, {"table_id": table_id, "note": ORDER_NOTE,
                                                            "items": [line]})
    await created(client, base + "/orders", sam, {"table_id": second.get("table", second)["id"],
                                                  "note": ORDER_NOTE, "items": [line]})
    ticket = await db.fetchval("SELECT id FROM tickets WHERE order_id = $1", at_pass["id"])
    await created(client, f"{base}/kitchen/tickets/{ticket}/bump", owner, {})
    await created(client, base + "/waitlist", owner, {"name": PARTY, "size": 2, "note": PARTY_NOTE})
    now = await db.fetchval("SELECT now()")
    await created(client, base + "/reservations", owner, {
        "name": BOOKING, "size": 2, "note": BOOKING_NOTE, "table_id": table_id,
        "starts_at": (now + timedelta(minutes=30)).isoformat()})
    await created(client, base + "/devices", owner, {"name": DEVICE, "kind": "ipad", "role": "host"})
    return {"sam": sam, "item": item, "table": table_id}


async def assert_clean(page, *texts: str) -> None:
    """No payload ran or became an element, and each text shows as typed."""
    assert await page.evaluate("() => window.__xss") is None, page.url
    assert await page.evaluate(INJECTED) == [], page.url
    shown = await page.evaluate("() => document.title + document.body.textContent")
    for text in texts:
        assert text in shown, (page.url, text)


async def shows(page, text: str) -> None:
    try:
        await page.wait_for_function("(text) => document.body.textContent.includes(text)", arg=text,
                                     timeout=10_000)
    except PlaywrightTimeout:
        raise AssertionError(f"{page.url} never showed {text!r}") from None


async def open_screen(browser, url: str, path: str):
    page = await browser.new_page(viewport={"width": 1920, "height": 1080})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await sign_in(page, url, "sam@demo.test", PASSWORD, path)
    page.dialogs = dialogs
    return page


async def test_hostile_names_and_notes_show_as_text_on_every_screen_and_live(
        browser, client, base, tokens, db, rid):
    owner = bearer(await tokens("owner"))
    made = await hostile_restaurant(client, base, owner, db, rid)
    url = str(client.make_url(""))
    expected = {
        "/r/demo/kitchen": (RESTAURANT, STAFF, TABLE_2, ITEM, MODIFIER, ORDER_NOTE, ITEM_NOTE),
        "/r/demo/kitchen?station=grill": (RESTAURANT, STAFF, TABLE_2, ITEM, MODIFIER, ITEM_NOTE),
        "/r/demo/kitchen?station=expo": (RESTAURANT, STAFF, TABLE, ITEM, MODIFIER),
        "/r/demo/floor": (RESTAURANT, STAFF, TABLE, PARTY, PARTY_NOTE, BOOKING),
        "/r/demo/manager": (RESTAURANT, STAFF, CATEGORY, ITEM, DEVICE),
        "/r/demo/reports": (RESTAURANT, STAFF),
        "/r/demo/ops": (RESTAURANT, STAFF),
    }
    pages = {}
    for path, texts in expected.items():
        page = pages[path] = await open_screen(browser, url, path)
        await assert_clean(page, *texts)

    # Live: the same kinds of text arrive as events while the screens are open.
    live_order = ORDER_NOTE.replace("allergy", "live")
    await created(client, base + "/orders", made["sam"], {"note": live_order,
                                                          "items": [{"menu_item_id": made["item"]["id"],
                                                                     "note": ITEM_NOTE + " live"}]})
    live_party = PARTY.replace("Ode", "Fenn")
    await created(client, base + "/waitlist", owner, {"name": live_party, "size": 3,
                                                      "note": PARTY_NOTE + " live"})
    live_label = "<svg/onload=__xss=2>"
    await created(client, f"{base}/tables/{made['table']}", owner, {"label": live_label}, "PATCH")
    live_device = DEVICE.replace("iPad", "till")
    await created(client, base + "/devices", owner, {"name": live_device, "kind": "ipad",
                                                     "role": "server"})
    await created(client, f"{base}/menu/items/{made['item']['id']}/availability", owner,
                  {"available": False})
    for path, texts in {"/r/demo/kitchen": (live_order, ITEM_NOTE + " live"),
                        "/r/demo/floor": (live_party, PARTY_NOTE + " live", live_label),
                        "/r/demo/manager": (live_device,)}.items():
        for text in texts:
            await shows(pages[path], text)
        await assert_clean(pages[path], *texts)
    await pages["/r/demo/manager"].locator(".item-toggle.off").first.wait_for(timeout=10_000)
    await assert_clean(pages["/r/demo/manager"], ITEM)
    for page in pages.values():
        assert page.dialogs == [], page.url


async def test_a_paired_screen_shows_a_hostile_device_name_as_text(browser, client, base, tokens):
    page = await browser.new_page()
    await page.goto(str(client.make_url("/pair")))
    code = (await page.locator("#code").inner_text()).strip()
    await created(client, base + "/devices/pair", bearer(await tokens("manager")), {
        "code": code, "name": SCREEN, "screen": "kitchen", "station": "grill"})
    await page.wait_for_url("**/r/demo/kitchen?station=grill", timeout=10_000)
    await assert_clean(page, SCREEN)


async def test_a_webhook_url_must_be_http(client, base, tokens):
    response = await client.post(base + "/webhooks", headers=bearer(await tokens("owner")), json={
        "url": "javascript:alert(1)", "events": ["order.*"]})
    assert response.status == 422
    assert (await response.json())["error"]["details"][0]["path"] == "$.url"


async def test_the_policy_blocks_inline_script_and_the_browser_fixture_sees_it(browser, client):
    page = await browser.new_page()
    await page.goto(str(client.make_url("/login")))
    await page.evaluate("""() => {
        const script = document.createElement('script');
        script.textContent = 'window.__inline = 1';
        document.body.append(script);
        const img = document.createElement('img');
        img.setAttribute('onerror', 'window.__inline = 2');
        img.src = 'x';
        document.body.append(img);
    }""")
    await page.wait_for_timeout(300)
    assert await page.evaluate("() => window.__inline") is None
    for _ in range(20):  # console messages arrive a moment later
        if browser.csp_violations:
            break
        await page.wait_for_timeout(100)
    assert any("script-src" in v for v in browser.csp_violations), browser.csp_violations
    browser.csp_violations.clear()  # seen, and expected here
