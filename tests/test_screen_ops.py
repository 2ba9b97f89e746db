"""The ops page in a real browser: the figures follow the server by polling, warnings say so in words."""
from __future__ import annotations

from conftest import PASSWORD, bearer
from screens import SHOTS, SIZES, needs_chromium, sign_in

pytestmark = needs_chromium
POLLS = 12_000  # ms: the page polls every 5 s, so two polls and some slack


def text_is(key: str, value: str) -> str:
    return f"document.querySelector('[data-key=\"{key}\"]').textContent === '{value}'"


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
        "!document.getElementById('devices-behind').textContent.includes('Grill screen')", timeout=POLLS)
    assert "Host iPad" in await page.locator("#devices-behind").inner_text()
    await page.screenshot(path=str(SHOTS / "ops-wall.png"))
    await page.set_viewport_size({"width": SIZES["ipad"][0], "height": SIZES["ipad"][1]})
    await page.screenshot(path=str(SHOTS / "ops-ipad.png"), full_page=True)


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
        "document.querySelector('[data-concern=delivery_behind]').classList.contains('warn')",
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
