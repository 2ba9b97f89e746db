"""Pairing a screen: a code on the screen, a manager's claim, and a browser that stays signed in."""
from __future__ import annotations

import re

import aiohttp
import pytest
from conftest import error_of, table_counts

from server.auth import SESSION_COOKIE

PAGE = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture
async def screen(client):
    """A second browser, with its own cookies: the wall screen being paired."""
    async with aiohttp.ClientSession(str(client.make_url("")),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def shown_code(screen) -> str:
    response = await screen.get("/pair", headers=PAGE)
    assert response.status == 200
    return re.search(r'id="code">([A-Z0-9]{3}-[A-Z0-9]{3})<', await response.text()).group(1)


async def pair(client, base, manager, code, **fields):
    body = {"code": code, "name": "Grill screen", "screen": "kitchen", "station": "grill"} | fields
    return await client.post(base + "/devices/pair", headers=manager, json=body)


async def test_a_claimed_code_signs_the_screen_in_as_a_device_that_opens_its_station(
        client, base, db, screen, manager, rid):
    code = await shown_code(screen)
    assert await shown_code(screen) == code  # a reload shows the same code, not a new one
    waiting = await screen.post("/pair/collect")
    assert waiting.status == 202 and (await waiting.json())["state"] == "waiting"

    # Staff type it however they read it: lower case, without the dash.
    claimed = await pair(client, base, manager, code.replace("-", "").lower(), expected=True)
    assert claimed.status == 201, await claimed.text()
    body = await claimed.json()
    assert body["screen"] == "/r/demo/kitchen?station=grill"
    device = body["device"]
    assert (device["name"], device["kind"], device["role"], device["expected"]) == \
        ("Grill screen", "screen", "kitchen", True)
    assert int(claimed.headers["X-Serveline-Seq"]) == await db.fetchval(
        "SELECT seq FROM events WHERE restaurant_id = $1 AND name = 'device.registered'", rid)

    paired = await screen.post("/pair/collect")
    assert paired.status == 200
    assert await paired.json() == {"state": "paired", "next": "/r/demo/kitchen?station=grill"}
    cookie = paired.cookies[SESSION_COOKIE]
    assert cookie.value.startswith("sld_") and cookie["httponly"]
    assert int(cookie["max-age"]) > 300 * 24 * 3600  # stays signed in, not for a shift

    kitchen = await screen.get("/r/demo/kitchen?station=grill", headers=PAGE, allow_redirects=False)
    assert kitchen.status == 200
    assert "Grill screen" in await kitchen.text()
    # The device's own socket: the same cookie opens the restaurant's room.
    async with screen.ws_connect(f"/api/v1/restaurants/{rid}/ws") as ws:
        welcome = await ws.receive_json(timeout=5)
        assert (welcome["type"], welcome["role"], welcome["device_id"]) == \
            ("welcome", "kitchen", device["id"])
        await ws.send_json({"type": "subscribe", "channels": ["kitchen:grill"]})
        assert (await ws.receive_json(timeout=5))["type"] == "subscribed"

    assert (await screen.post("/pair/collect")).status == 410  # the pairing is spent
    assert await db.fetchval("SELECT count(*) FROM pairings") == 0

    # Revoking the device signs the screen out.
    revoked = await client.delete(base + f"/devices/{device['id']}", headers=manager)
    assert revoked.status == 200
    after = await screen.get("/r/demo/kitchen?station=grill", headers=PAGE, allow_redirects=False)
    assert after.status == 303 and after.headers["Location"].startswith("/login")


async def test_a_paired_kitchen_screen_may_not_open_the_manager_screen(client, base, screen, manager):
    await pair(client, base, manager, await shown_code(screen))
    await screen.post("/pair/collect")
    refused = await screen.get("/r/demo/manager", headers=PAGE)
    assert refused.status == 403
    assert refused.content_type == "text/html"
    assert "A kitchen may not open this screen." in await refused.text()


@pytest.mark.parametrize("fields,status,words", [
    ({"code": "ZZZ-ZZZ"}, 404, "no screen is showing the code"),
    ({"station": "fry", "screen": "floor"}, 422, "only a kitchen screen has a station"),
    ({"station": "wok"}, 422, "no menu item is cooked at a station named 'wok'"),
    ({"screen": "bar"}, 422, "screen"),
    ({"name": ""}, 422, "name"),
    ({"colour": "red"}, 422, "colour"),
])
async def test_a_bad_claim_is_refused_clearly_and_writes_nothing(client, base, db, screen, manager,
                                                                 fields, status, words):
    code = await shown_code(screen)
    before = await table_counts(db)
    refused = await pair(client, base, manager, **({"code": code} | fields))
    assert refused.status == status
    error = await error_of(refused)
    assert words in error["message"] + str(error["details"])
    assert await table_counts(db) == before
    assert (await screen.post("/pair/collect")).status == 202  # the screen still waits


async def test_a_code_pairs_one_screen_once(client, base, db, screen, manager):
    code = await shown_code(screen)
    assert (await pair(client, base, manager, code)).status == 201
    before = await table_counts(db)
    again = await pair(client, base, manager, code, name="Another")
    assert again.status == 409
    assert "already paired" in (await error_of(again))["message"]
    assert await table_counts(db) == before


async def test_an_expired_code_can_be_neither_claimed_nor_collected(client, base, db, screen, manager):
    code = await shown_code(screen)
    await db.execute("UPDATE pairings SET expires_at = now() - interval '1 second'")
    refused = await pair(client, base, manager, code)
    assert refused.status == 404
    assert "ten minutes" in (await error_of(refused))["message"]
    gone = await screen.post("/pair/collect")
    assert gone.status == 410 and (await error_of(gone))["code"] == "gone"
    assert await shown_code(screen) != code  # the page offers a fresh one


async def test_collecting_without_a_pairing_is_gone(screen):
    gone = await screen.post("/pair/collect")
    assert gone.status == 410
    assert "expired" in (await error_of(gone))["message"]


async def test_one_address_cannot_flood_the_pairing_table(client, db):
    for _ in range(20):  # each request without cookies is a new screen
        assert (await client.get("/pair", headers=PAGE)).status == 200
        client.session.cookie_jar.clear()
    flood = await client.get("/pair")
    assert flood.status == 429 and flood.headers["Retry-After"] == "600"
    assert (await error_of(flood))["code"] == "rate_limited"
    assert await db.fetchval("SELECT count(*) FROM pairings") == 20


async def test_screens_get_error_pages_and_the_api_keeps_json(client, tokens):
    token = await tokens("kitchen")
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: token})
    missing = await client.get("/r/nowhere/kitchen", headers=PAGE)
    assert missing.status == 404 and missing.content_type == "text/html"
    text = await missing.text()
    assert "No such restaurant, or it is not yours." in text and "Pair this screen" in text
    route = await client.get("/no/such/page", headers=PAGE)
    assert route.status == 404 and "No such route." in await route.text()
    api = await client.get("/api/v1/nothing", headers=PAGE)
    assert api.status == 404 and (await error_of(api))["code"] == "not_found"
    scripted = await client.get("/r/nowhere/kitchen")  # a script's fetch: the JSON shape
    assert (await error_of(scripted))["code"] == "not_found"
