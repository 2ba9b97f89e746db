"""The host stand in a real browser: tables merged for one party show it on the map (a tag on each,
one outline colour, a line between them) and stop showing it when unmerged, live; a booking made
past the pacing limit shows "over pace" with the reason and who booked it."""
from __future__ import annotations

from datetime import datetime, timedelta

from conftest import bearer
from screens import SHOTS, needs_chromium
from test_screen_floor import block, book, evening_in, open_stand, table_ids

pytestmark = needs_chromium


def table(page, table_id: int):
    return page.locator(f'#floor .table[data-id="{table_id}"]')


async def step(client, base: str, host: dict[str, str], table_id: int, status: str, **extra) -> None:
    response = await client.post(f"{base}/tables/{table_id}/status", headers=host, json={"status": status, **extra})
    assert response.status == 200, await response.text()


async def outline(page, table_id: int) -> str:
    return await table(page, table_id).locator("rect, circle").first.evaluate("node => getComputedStyle(node).stroke")


async def merge_tags(page) -> dict[str, str]:
    """Each merged table's label → its tag, as shown."""
    return await page.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
        '#floor .table.lead, #floor .table.joined')].map((t) => [t.dataset.label, t.querySelector('.merge-tag text')
        .textContent]))""")


async def test_merged_tables_and_an_over_pace_booking_show_live_on_the_floor(browser, client, base, tokens,
                                                                              db, rid):
    host, manager = bearer(await tokens("host")), bearer(await tokens("manager"))
    zone = await evening_in(client, base, manager)
    tables = await table_ids(db, rid)
    now = datetime.now(zone).replace(second=0, microsecond=0)
    await step(client, base, host, tables["D1"], "seated", party_size=10)
    await step(client, base, host, tables["P1"], "seated", party_size=2)
    ada = await book(client, base, host, "Ada", 2, now + timedelta(minutes=40), tables["D5"])
    waiting = await client.post(base + "/waitlist", headers=host, json={"name": "Garcia", "size": 3,
                                                                       "quoted_minutes": 20})
    assert waiting.status == 201, await waiting.text()
    wall = await open_stand(browser, client, "wall")
    assert await merge_tags(wall) == {}
    assert await wall.locator("#links line").count() == 0
    assert await wall.locator(".booking .pace").count() == 0

    merged = await client.post(f"{base}/tables/{tables['D1']}/merge", headers=host,
                               json={"table_ids": [tables["D2"], tables["D3"]]})
    assert merged.status == 200, await merged.text()
    await wall.wait_for_function("() => document.querySelectorAll('#floor .table.joined').length === 2",
                                 timeout=10_000)  # no reload: over the socket
    assert await merge_tags(wall) == {"D1": "+ D2, D3", "D2": "with D1", "D3": "with D1"}
    assert await wall.locator("#links line").count() == 2
    colours = {await outline(wall, tables[label]) for label in ("D1", "D2", "D3")}
    assert len(colours) == 1 and colours != {await outline(wall, tables["D4"])}  # one colour, the merge's
    assert await table(wall, tables["D1"]).get_attribute("aria-label") == \
        "Table D1, 4 seats, seated, joined with D2, D3"
    assert await table(wall, tables["D2"]).get_attribute("aria-label") == \
        "Table D2, 4 seats, seated, joined to D1's party"
    for label in ("D1", "D2", "D3"):  # the tag is drawn inside the map, not clipped at its edge
        box, tag = await table(wall, tables[label]).bounding_box(), \
            await table(wall, tables[label]).locator(".merge-tag rect").bounding_box()
        svg = await wall.locator("#floor").bounding_box()
        assert tag["y"] >= svg["y"] and tag["width"] < box["width"] + 30

    await step(client, base, host, tables["D1"], "ordering")  # the joined tables follow, live
    await wall.wait_for_function(
        f"() => document.querySelector('.table[data-id=\"{tables['D3']}\"]').dataset.status === 'ordering'",
        timeout=10_000)
    assert await merge_tags(wall) == {"D1": "+ D2, D3", "D2": "with D1", "D3": "with D1"}

    response = await client.patch(base, headers=manager, json={"settings": {"pacing_covers_per_slot": 2}})
    assert response.status == 200, await response.text()
    vip = await book(client, base, host, "Moreau", 4, now + timedelta(minutes=40), tables["D7"],  # Ada's slot
                     pacing_override={"reason": "VIP birthday"})
    by = vip["pacing_override"]["by"]
    assert vip["pacing_override"]["reason"] == "VIP birthday" and by
    mark = block(wall, vip, tables["D7"]).locator(".pace")
    await mark.wait_for(timeout=10_000)
    why = f"Over pace: VIP birthday (booked by {by})"
    assert (await mark.inner_text(), await mark.get_attribute("title"), await mark.get_attribute("aria-label")) == \
        ("over pace", why, why)
    assert await wall.locator(".booking .pace").count() == 1  # only the booking past the limit
    assert await block(wall, ada, tables["D5"]).locator(".pace").count() == 0
    await wall.screenshot(path=str(SHOTS / "floor-merged.png"))

    await block(wall, vip, tables["D7"]).click()  # the booking's card says it too
    assert await wall.locator("#booking-pace").inner_text() == why
    await wall.locator("#booking-close").click()

    ipad = await open_stand(browser, client, "ipad", touch=True)  # a fresh page draws both as loaded
    assert await merge_tags(ipad) == {"D1": "+ D2, D3", "D2": "with D1", "D3": "with D1"}
    assert await block(ipad, vip, tables["D7"]).locator(".pace").get_attribute("aria-label") == why
    assert (await block(ipad, vip, tables["D7"]).bounding_box())["height"] >= 44

    unmerged = await client.post(f"{base}/tables/{tables['D1']}/unmerge", headers=host)
    assert unmerged.status == 200, await unmerged.text()
    for page in (wall, ipad):
        await page.wait_for_function("() => !document.querySelector('#floor .table.lead, #floor .table.joined')",
                                     timeout=10_000)
        assert await page.locator("#links line").count() == 0
        assert await merge_tags(page) == {}
        assert await table(page, tables["D2"]).get_attribute("data-status") == "dirty"
        assert await table(page, tables["D2"]).get_attribute("aria-label") == "Table D2, 4 seats, dirty"
        assert await outline(page, tables["D1"]) == await outline(page, tables["D4"])
    await wall.close()
    await ipad.close()
