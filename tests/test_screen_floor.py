"""The host stand in a real browser: seat a party or a booking with a tap, see the floor and today's
reservations change live on every screen."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from conftest import PASSWORD, bearer
from screens import SHOTS, SIZES, cut_sockets, needs_chromium, sign_in

pytestmark = needs_chromium
EVENING = 19  # the restaurant's local hour while the timeline tests run


async def evening_in(client, base: str, manager: dict[str, str]) -> ZoneInfo:
    """Move the restaurant to a fixed-offset zone where it is now about 19:00, so bookings for today
    (which cannot start in the past) always fit before its midnight, whenever the tests run."""
    offset = (EVENING - datetime.now(UTC).hour + 12) % 24 - 12  # hours east of UTC, -12…11
    name = f"Etc/GMT{-offset:+d}"  # the POSIX sign: Etc/GMT-2 is two hours east
    response = await client.patch(base, headers=manager, json={"timezone": name})
    assert response.status == 200, await response.text()
    return ZoneInfo(name)


async def book(client, base: str, host: dict[str, str], name: str, size: int, starts_at: datetime,
               table_id: int | None = None, **extra: Any) -> dict[str, Any]:
    response = await client.post(base + "/reservations", headers=host, json={
        "name": name, "size": size, "starts_at": starts_at.isoformat(), "table_id": table_id, **extra})
    assert response.status == 201, await response.text()
    return await response.json()


async def table_ids(db, rid: int) -> dict[str, int]:
    rows = await db.fetch("SELECT label, id FROM dining_tables WHERE restaurant_id = $1", rid)
    return {r["label"]: r["id"] for r in rows}


def block(page, booking: dict[str, Any], table_id: int | None = None):
    """The booking's block on the timeline, in its table's row (or the row without a table)."""
    return page.locator(f'.row[data-table="{table_id or ""}"] .booking[data-id="{booking["id"]}"]')


async def open_stand(browser, client, size: str, touch: bool = False):
    page = await browser.new_page(viewport=dict(zip(("width", "height"), SIZES[size])), has_touch=touch)
    await sign_in(page, str(client.make_url("")), "host@demo.test", PASSWORD, "/r/demo/floor")
    await page.wait_for_function("() => document.getElementById('offline').hidden === true")
    return page


async def test_todays_reservations_show_in_their_tables_rows_at_local_time(browser, client, base, tokens,
                                                                           db, rid):
    host, manager = bearer(await tokens("host")), bearer(await tokens("manager"))
    zone = await evening_in(client, base, manager)
    tables = await table_ids(db, rid)
    now = datetime.now(zone).replace(second=0, microsecond=0)
    late = await book(client, base, host, "Lindqvist", 4, now - timedelta(minutes=3), tables["D5"])
    okafor = await book(client, base, host, "Okafor", 2, now - timedelta(minutes=2), tables["D2"])
    assert (await client.post(f"{base}/reservations/{okafor['id']}/seat", headers=host)).status == 200
    ada = await book(client, base, host, "Ada Lovelace", 4, now + timedelta(minutes=30), tables["D1"],
                     phone="+1 555 0100")
    assert (await client.post(f"{base}/reservations/{ada['id']}/status", headers=host,
                              json={"status": "confirmed"})).status == 200
    hostile = await book(client, base, host, "<script>alert(1)</script>", 2, now + timedelta(minutes=45),
                         tables["P1"])
    moreau = await book(client, base, host, "Moreau", 6, now + timedelta(minutes=60), tables["D3"],
                        note="Birthday: cake at dessert")
    later = await book(client, base, host, "Brennan", 2, now + timedelta(minutes=150), tables["D1"])
    chen = await book(client, base, host, "Chen", 2, now + timedelta(minutes=15))
    patel = await book(client, base, host, "Patel", 3, now + timedelta(minutes=20))  # overlaps Chen
    schmidt = await book(client, base, host, "Schmidt", 2, now + timedelta(minutes=100), tables["P3"])
    novak = await book(client, base, host, "Novak", 2, now + timedelta(minutes=60), tables["P2"])
    assert (await client.post(f"{base}/reservations/{novak['id']}/status", headers=host,
                              json={"status": "cancelled"})).status == 200
    tomorrow = await book(client, base, host, "Tomorrow", 2, now + timedelta(days=1), tables["D4"])
    party = await (await client.post(base + "/waitlist", headers=host, json={
        "name": "Garcia", "size": 3, "quoted_minutes": 20})).json()
    await client.post(base + "/waitlist", headers=host, json={"name": "Kim", "size": 2, "quoted_minutes": 10})
    for status in ("seated", "ordering", "eating"):
        await client.post(f"{base}/tables/{tables['D8']}/status", headers=host,
                          json={"status": status, "party_size": 4 if status == "seated" else None})

    alerts = []  # any alert() would be the hostile name run as script
    for size in ("wall", "ipad"):
        page = await open_stand(browser, client, size)
        page.on("dialog", lambda dialog: alerts.append(dialog.message))
        placed = [(late, "D5"), (okafor, "D2"), (ada, "D1"), (later, "D1"), (hostile, "P1"),
                  (moreau, "D3"), (schmidt, "P3"), (chen, None), (patel, None)]
        for booking, label in placed:
            shown = block(page, booking, tables[label] if label else None)
            starts = datetime.fromisoformat(booking["starts_at"]).astimezone(zone)
            assert await shown.locator(".when").inner_text() == starts.strftime("%H:%M")
            assert (await shown.bounding_box())["height"] >= 44  # a touch target
        for gone in (novak, tomorrow):  # cancelled, and not today
            assert await page.locator(f'.booking[data-id="{gone["id"]}"]').count() == 0
        assert await page.locator(".row").count() == 7  # six tables and the bookings without one
        assert await block(page, hostile, tables["P1"]).locator(".name").inner_text() == "<script>alert(1)</script>"
        assert await block(page, okafor, tables["D2"]).locator(".state").inner_text() == "● seated"
        assert await block(page, ada, tables["D1"]).locator(".state").inner_text() == "✓ confirmed"
        assert "min late" in await block(page, late, tables["D5"]).locator(".state").inner_text()
        assert await page.locator("#tally").inner_text() == "9 bookings · 27 guests · 1 seated · 8 to come"
        assert await page.locator("#now").is_visible()
        chen_box = await block(page, chen).bounding_box()
        patel_box = await block(page, patel).bounding_box()
        assert patel_box["y"] >= chen_box["y"] + chen_box["height"]  # overlapping bookings stack
        wait = page.locator(f'.party[data-id="{party["id"]}"] .wait')
        assert await wait.inner_text() == "waited 0 of 20 min quoted"
        await page.screenshot(path=str(SHOTS / f"floor-{size}.png"))
        rows = await page.locator(".row").first.bounding_box()
        assert rows["y"] + 2 * rows["height"] < SIZES[size][1]  # the timeline is on screen, not below the fold
        assert alerts == []
        await page.close()


async def test_a_booking_made_elsewhere_appears_moves_and_is_seated_with_a_tap(browser, client, base,
                                                                                tokens, db, rid):
    host, manager = bearer(await tokens("host")), bearer(await tokens("manager"))
    zone = await evening_in(client, base, manager)
    tables = await table_ids(db, rid)
    page = await open_stand(browser, client, "ipad", touch=True)
    now = datetime.now(zone)
    fox = await book(client, base, host, "Fox", 4, now + timedelta(minutes=20), tables["D4"])
    await block(page, fox, tables["D4"]).wait_for(timeout=10_000)  # no reload: over the socket

    moved = await client.patch(f"{base}/reservations/{fox['id']}", headers=host,
                               json={"table_id": tables["D7"]})
    assert moved.status == 200, await moved.text()
    await block(page, fox, tables["D7"]).wait_for(timeout=10_000)
    await page.locator(f'.row[data-table="{tables["D4"]}"]').wait_for(state="detached")
    await client.post(f"{base}/reservations/{fox['id']}/status", headers=host, json={"status": "confirmed"})
    await page.wait_for_function(
        f"() => document.querySelector('.booking[data-id=\"{fox['id']}\"] .state').textContent === '✓ confirmed'",
        timeout=10_000)

    await block(page, fox, tables["D7"]).tap()
    await page.locator("#seat-booked").tap()  # "Seat at D7"
    await page.wait_for_function(
        f"() => document.querySelector('.table[data-id=\"{tables['D7']}\"]').dataset.status === 'seated'",
        timeout=10_000)  # the map hears it from the socket
    assert await block(page, fox, tables["D7"]).locator(".state").inner_text() == "● seated"

    walk_in = await book(client, base, host, "Gray", 2, now + timedelta(minutes=5))
    await block(page, walk_in).tap()
    assert await page.locator("#seat-booked").inner_text() == "Seat · pick a table"
    await page.locator("#seat-booked").tap()
    assert await page.locator("#hint-name").inner_text() == "Gray"
    await page.locator(f'.table[data-id="{tables["D7"]}"]').tap()  # taken: the host is told why
    await page.locator("#problem").wait_for(timeout=10_000)
    assert "Could not seat Gray at D7" in await page.locator("#problem").inner_text()
    await block(page, walk_in).tap()
    await page.locator("#seat-booked").tap()
    await page.locator(f'.table[data-id="{tables["P4"]}"]').tap()
    await block(page, walk_in, tables["P4"]).wait_for(timeout=10_000)
    await page.wait_for_function(
        f"() => document.querySelector('.table[data-id=\"{tables['P4']}\"]').dataset.status === 'seated'",
        timeout=10_000)
    rows = await db.fetch("SELECT id, status, table_id FROM reservations WHERE restaurant_id = $1 ORDER BY id",
                          rid)
    assert [(r["status"], r["table_id"]) for r in rows] == [("seated", tables["D7"]), ("seated", tables["P4"])]
    assert await db.fetchval("SELECT count(*) FROM dining_tables WHERE restaurant_id = $1 AND status = 'seated'",
                             rid) == 2


async def test_a_reset_redraws_the_timeline_from_the_snapshot(browser, client, base, tokens, db, rid):
    host, manager = bearer(await tokens("host")), bearer(await tokens("manager"))
    zone = await evening_in(client, base, manager)
    tables = await table_ids(db, rid)
    now = datetime.now(zone)
    before = await book(client, base, host, "Before", 2, now + timedelta(minutes=30), tables["D1"])
    page = await open_stand(browser, client, "wall")
    await block(page, before, tables["D1"]).wait_for()
    # Cut the socket and give the restaurant a new history (as a restore would): the screen must reset.
    await cut_sockets(client)
    await page.wait_for_function("() => document.getElementById('offline').hidden === false", timeout=10_000)
    await db.execute("UPDATE restaurants SET epoch = gen_random_uuid() WHERE id = $1", rid)
    await client.post(f"{base}/reservations/{before['id']}/status", headers=host, json={"status": "no_show"})
    after = await book(client, base, host, "After", 3, now + timedelta(minutes=40), tables["D2"])
    await block(page, after, tables["D2"]).wait_for(timeout=20_000)
    await page.locator(f'.booking[data-id="{before["id"]}"]').wait_for(state="detached")
    assert await page.locator(".row").count() == 1
    assert await page.locator("#tally").inner_text() == "1 booking · 3 guests · 0 seated · 1 to come"


async def test_seating_a_party_shows_on_a_second_host_stand(browser, client, base, tokens, db, rid):
    host = bearer(await tokens("host"))
    party = await (await client.post(base + "/waitlist", headers=host,
                                     json={"name": "<script>window.pwned=1</script>Ada", "size": 4,
                                           "quoted_minutes": 15})).json()
    table_id = (await table_ids(db, rid))["D1"]
    first, second = await open_stand(browser, client, "wall"), await open_stand(browser, client, "ipad")
    entry = first.locator(f'.party[data-id="{party["id"]}"]')
    assert "<script>window.pwned=1</script>Ada" in await entry.inner_text()  # shown as text
    assert await entry.locator(".wait").inner_text() == "waited 0 of 15 min quoted"
    await entry.locator("button.seat").click()
    await first.locator(f'.table[data-id="{table_id}"]').click()
    await second.wait_for_function(
        f"() => document.querySelector('.table[data-id=\"{table_id}\"]').dataset.status === 'seated'",
        timeout=10_000)
    await second.locator(f'.party[data-id="{party["id"]}"]').wait_for(state="detached", timeout=10_000)
    assert await first.evaluate("window.pwned === undefined")
    status = await db.fetchval("SELECT status FROM dining_tables WHERE id = $1", table_id)
    assert status == "seated"
