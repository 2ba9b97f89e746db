"""The manager screen in a real browser: 86 an item with a tap, and the API refuses it."""
from __future__ import annotations

from conftest import PASSWORD, error_of
from screens import SHOTS, SIZES, needs_chromium, sign_in

pytestmark = needs_chromium


async def test_eighty_sixing_on_the_manager_screen_makes_the_api_refuse_the_item(browser, client, base,
                                                                                server, menu):
    url = str(client.make_url(""))
    page = await browser.new_page(viewport={"width": 1920, "height": 1080})
    await sign_in(page, url, "manager@demo.test", PASSWORD, "/r/demo/manager")
    await page.screenshot(path=str(SHOTS / "manager-wall.png"))
    await page.set_viewport_size({"width": SIZES["ipad"][0], "height": SIZES["ipad"][1]})
    await page.screenshot(path=str(SHOTS / "manager-ipad.png"), full_page=True)
    ribeye = menu["Ribeye"]["id"]
    await page.click(f'.item-toggle[data-item="{ribeye}"]')
    await page.wait_for_function(
        f"document.querySelector('.item-toggle[data-item=\"{ribeye}\"]').classList.contains('off')")
    refused = await client.post(base + "/orders", headers=server,
                                json={"items": [{"menu_item_id": ribeye, "qty": 1}]})
    assert refused.status == 409
    assert "86" in (await error_of(refused))["message"]
    assert "86'd" in await page.locator(f'.item-toggle[data-item="{ribeye}"]').inner_text()
    order = await client.post(base + "/orders", headers=server,
                              json={"items": [{"menu_item_id": menu["Burger"]["id"], "qty": 1}]})
    assert order.status == 201
    await page.wait_for_function("document.querySelector('[data-key=open_orders]').textContent === '1'",
                                 timeout=10_000)  # the numbers follow the events
