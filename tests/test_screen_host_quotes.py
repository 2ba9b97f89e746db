"""The host stand in a real browser: each party's quote counts down and turns red when missed, the
"table ready" message shows how its delivery went, and the quote for a new party follows the floor."""
from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
import test_webhooks
from conftest import PASSWORD, bearer
from screens import SHOTS, SIZES, needs_chromium, sign_in
from test_webhooks import FAST, register

pytestmark = needs_chromium
receive = test_webhooks.receive  # a webhook receiver on a real socket of 127.0.0.1
RED = "rgb(198, 40, 40)"  # --red


@pytest.fixture
def config(config):
    return msgspec.structs.replace(config, **FAST)


async def add(client, base, host, **body: Any) -> dict[str, Any]:
    response = await client.post(base + "/waitlist", headers=host, json={"size": 2, **body})
    assert response.status == 201, await response.text()
    return await response.json()


async def step(client, base, host, table_id: int, status: str, **extra: Any) -> None:
    response = await client.post(f"{base}/tables/{table_id}/status", headers=host,
                                 json={"status": status, **extra})
    assert response.status == 200, await response.text()


async def test_quotes_count_down_turn_red_and_notifications_show_their_delivery(
        browser, client, db, rid, base, tokens, receive) -> None:
    host, owner = bearer(await tokens("host")), bearer(await tokens("owner"))
    told_ok: set[int] = set()

    def answer(arrival, _seen) -> int:  # the receiver takes only the messages of `told_ok`
        return 200 if msgspec.json.decode(arrival.body)["data"]["party_id"] in told_ok else 500
    receiver = await receive(answer)
    await register(client, base, owner, receiver.url, ["guest.notify"])
    labels = {r["label"]: r["id"] for r in await db.fetch(
        "SELECT label, id FROM dining_tables WHERE restaurant_id = $1", rid)}
    for label in ("D3", "D6", "D9", "D12"):
        await step(client, base, host, labels[label], "seated", party_size=6)

    fresh = await add(client, base, host, name="Garcia", quoted_minutes=20)
    late = await add(client, base, host, name="Kim", quoted_minutes=10)
    await db.execute("UPDATE waitlist_parties SET joined_at = now() - interval '14 minutes' WHERE id = $1",
                     late["id"])
    delivered = await add(client, base, host, name="Okafor", phone="+1 555 0100", quoted_minutes=15)
    told_ok.add(delivered["id"])
    assert (await client.post(f"{base}/waitlist/{delivered['id']}/notify", headers=host)).status == 200
    retrying = await add(client, base, host, name="Moreau", size=3, phone="+1 555 0111")
    assert (await client.post(f"{base}/waitlist/{retrying['id']}/notify", headers=host)).status == 200
    await test_webhooks.until(lambda: len(receiver.arrivals) >= 3, what="both messages tried")

    page = await browser.new_page(viewport=dict(zip(("width", "height"), SIZES["wall"])))
    await sign_in(page, str(client.make_url("")), "host@demo.test", PASSWORD, "/r/demo/floor")
    await page.wait_for_function("() => document.getElementById('offline').hidden === true")
    party = lambda p: page.locator(f'.party[data-id="{p["id"]}"]')

    countdown = party(fresh).locator(".countdown")
    first = await countdown.inner_text()
    assert re.fullmatch(r"(19|20):\d\d left", first), first
    await page.wait_for_function(
        "([id, was]) => document.querySelector(`.party[data-id='${id}'] .countdown`).textContent !== was",
        arg=[fresh["id"], first], timeout=5000)  # it ticks, no reload
    assert not await party(fresh).evaluate("node => node.classList.contains('missed')")

    missed = party(late).locator(".countdown")
    assert re.fullmatch(r"4:\d\d over quote", await missed.inner_text())
    assert await party(late).evaluate("node => node.classList.contains('missed')")
    assert await missed.evaluate("node => getComputedStyle(node).backgroundColor") == RED

    await party(delivered).locator(".told.delivered").wait_for(timeout=10_000)
    assert await party(delivered).locator(".told").inner_text() == "✔ Told: table ready by webhook"
    assert await party(delivered).locator(".notify").inner_text() == "Notify again"
    await party(retrying).locator(".told.retrying").wait_for(timeout=10_000)
    assert "HTTP 500" in await party(retrying).locator(".told .why").inner_text()

    six = page.locator('#quotes .quote[data-size="6"] b')
    await page.wait_for_function(
        "() => document.querySelector('#quotes .quote[data-size=\"6\"] b').textContent.endsWith('min')")
    before = int((await six.inner_text()).split()[0])
    await step(client, base, host, labels["D6"], "ordering")
    await step(client, base, host, labels["D6"], "paying")
    await page.wait_for_function(  # the floor's events ask for the quote again
        "(was) => parseInt(document.querySelector('#quotes .quote[data-size=\"6\"] b').textContent) < was",
        arg=before, timeout=10_000)
    assert int((await six.inner_text()).split()[0]) < before
    await page.screenshot(path=str(SHOTS / "host-quotes.png"))

    # The receiver comes back: the held message goes, then one sent from another iPad; this
    # screen hears both outcomes over the socket (an endpoint's messages go in order).
    told_ok.update((retrying["id"], fresh["id"]))
    assert (await client.post(f"{base}/waitlist/{fresh['id']}/notify", headers=host)).status == 200
    await party(retrying).locator(".told.delivered").wait_for(timeout=10_000)
    await party(fresh).locator(".told.delivered").wait_for(timeout=10_000)
    assert re.fullmatch(r"✔ Told: table ready by webhook · [2-9]\d* tries",
                        await party(retrying).locator(".told").inner_text())
    await page.close()
