"""The host stand in a real browser: seat a party on one screen, see the table change on another."""
from __future__ import annotations

from conftest import PASSWORD, bearer
from screens import SHOTS, needs_chromium, sign_in

pytestmark = needs_chromium


async def test_seating_a_party_shows_on_a_second_host_stand(browser, client, base, tokens, db, rid):
    url = str(client.make_url(""))
    host = bearer(await tokens("host"))
    party = await (await client.post(base + "/waitlist", headers=host,
                                     json={"name": "<script>window.pwned=1</script>Ada", "size": 4,
                                           "quoted_minutes": 15})).json()
    table_id = await db.fetchval("SELECT id FROM dining_tables WHERE restaurant_id = $1 AND label = 'D1'",
                                 rid)
    first, second = await browser.new_page(), await browser.new_page()
    for page, size in ((first, (1920, 1080)), (second, (1024, 768))):
        await page.set_viewport_size({"width": size[0], "height": size[1]})
        await sign_in(page, url, "host@demo.test", PASSWORD, "/r/demo/floor")
    entry = first.locator(f'.party[data-id="{party["id"]}"]')
    assert "<script>window.pwned=1</script>Ada" in await entry.inner_text()  # shown as text
    await first.screenshot(path=str(SHOTS / "floor-wall.png"))
    await second.screenshot(path=str(SHOTS / "floor-ipad.png"))
    await entry.locator("button.seat").click()
    await first.locator(f'.table[data-id="{table_id}"]').click()
    await second.wait_for_function(
        f"document.querySelector('.table[data-id=\"{table_id}\"]').dataset.status === 'seated'",
        timeout=10_000)
    await second.locator(f'.party[data-id="{party["id"]}"]').wait_for(state="detached", timeout=10_000)
    assert await first.evaluate("window.pwned === undefined")
    status = await db.fetchval("SELECT status FROM dining_tables WHERE id = $1", table_id)
    assert status == "seated"
