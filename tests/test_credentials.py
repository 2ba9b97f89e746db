"""Device tokens and API keys: shown once, stored hashed, scoped, revocable."""
from __future__ import annotations

import asyncio

import msgspec
from conftest import PASSWORD, bearer, error_of, table_counts


async def register_device(client, rid, headers, role="kitchen"):
    response = await client.post(f"/api/v1/restaurants/{rid}/devices", headers=headers,
                                 json={"name": "Grill screen", "kind": "screen", "role": role})
    assert response.status == 201, await response.text()
    return await response.json()


async def test_device_token_acts_with_its_role_in_its_restaurant_only(client, db, rid, tokens):
    registered = await register_device(client, rid, bearer(await tokens("manager")))
    token = registered["token"]
    assert token.startswith("sld_")
    me = await client.get("/api/v1/auth/me", headers=bearer(token))
    assert (await me.json())["restaurants"] == [
        {"id": rid, "slug": "demo", "name": "Demo Bistro", "role": "kitchen"}]
    assert (await client.get(f"/api/v1/restaurants/{rid}", headers=bearer(token))).status == 200
    assert (await client.get(f"/api/v1/restaurants/{rid}/staff", headers=bearer(token))).status == 403
    other = await db.fetchval("SELECT id FROM restaurants WHERE slug = 'other'")
    assert (await client.get(f"/api/v1/restaurants/{other}", headers=bearer(token))).status == 404
    # Logging out is for staff sessions; a device is revoked by a manager.
    assert (await client.post("/api/v1/auth/logout", headers=bearer(token))).status == 403
    last_seen = await db.fetchval("SELECT last_seen_at FROM devices WHERE id = $1",
                                  registered["device"]["id"])
    assert last_seen is not None


async def test_device_token_is_shown_once_and_stored_hashed(client, db, rid, tokens):
    headers = bearer(await tokens("manager"))
    registered = await register_device(client, rid, headers)
    listing = await (await client.get(f"/api/v1/restaurants/{rid}/devices", headers=headers)).text()
    assert registered["token"] not in listing and "token" not in listing
    assert await db.fetchval("SELECT count(*) FROM devices WHERE token_hash = sha256($1::bytea)",
                             registered["token"].encode()) == 1


async def test_revoked_device_gets_401(client, db, rid, tokens):
    headers = bearer(await tokens("manager"))
    registered = await register_device(client, rid, headers)
    device_id = registered["device"]["id"]
    revoked = await client.delete(f"/api/v1/restaurants/{rid}/devices/{device_id}", headers=headers)
    assert revoked.status == 200
    assert (await revoked.json())["device"]["revoked_at"] is not None
    response = await client.get(f"/api/v1/restaurants/{rid}", headers=bearer(registered["token"]))
    assert response.status == 401
    names = [r["name"] for r in await db.fetch(
        "SELECT name FROM events WHERE restaurant_id = $1 ORDER BY seq DESC LIMIT 2", rid)]
    assert names == ["device.revoked", "device.registered"]


async def test_revoking_a_missing_device_is_404_and_writes_nothing(client, db, rid, tokens):
    headers = bearer(await tokens("manager"))
    before = await table_counts(db)
    response = await client.delete(f"/api/v1/restaurants/{rid}/devices/424242", headers=headers)
    assert response.status == 404
    assert (await error_of(response))["code"] == "not_found"
    assert await table_counts(db) == before


async def create_key(client, rid, headers, scopes):
    response = await client.post(f"/api/v1/restaurants/{rid}/api-keys", headers=headers,
                                 json={"name": "Accounting", "scopes": scopes})
    assert response.status == 201, await response.text()
    return await response.json()


async def test_api_key_is_limited_to_its_scopes(client, rid, tokens):
    headers = bearer(await tokens("owner"))
    reader = (await create_key(client, rid, headers, ["read"]))["key"]
    writer = (await create_key(client, rid, headers, ["write"]))["key"]
    assert reader.startswith("slk_")
    assert (await client.get(f"/api/v1/restaurants/{rid}", headers=bearer(reader))).status == 200
    denied = await client.get(f"/api/v1/restaurants/{rid}", headers=bearer(writer))
    assert denied.status == 403
    assert "read" in (await error_of(denied))["message"]
    # Keys never manage staff, devices or other keys.
    for path in ("staff", "devices", "api-keys"):
        assert (await client.get(f"/api/v1/restaurants/{rid}/{path}",
                                 headers=bearer(reader))).status == 403


async def test_revoked_api_key_gets_401(client, rid, tokens):
    headers = bearer(await tokens("manager"))
    created = await create_key(client, rid, headers, ["read", "events"])
    assert created["api_key"]["scopes"] == ["events", "read"]
    key_id = created["api_key"]["id"]
    assert (await client.delete(f"/api/v1/restaurants/{rid}/api-keys/{key_id}",
                                headers=headers)).status == 200
    assert (await client.get(f"/api/v1/restaurants/{rid}",
                             headers=bearer(created["key"]))).status == 401
    listing = await (await client.get(f"/api/v1/restaurants/{rid}/api-keys", headers=headers)).json()
    assert listing["items"][0]["revoked_at"] is not None
    assert created["key"] not in str(listing)


async def test_bad_scopes_are_rejected(client, db, rid, tokens):
    headers = bearer(await tokens("owner"))
    before = await table_counts(db)
    for scopes in ([], ["admin"], "read"):
        response = await client.post(f"/api/v1/restaurants/{rid}/api-keys", headers=headers,
                                     json={"name": "Bad", "scopes": scopes})
        assert response.status == 422, scopes
        assert (await error_of(response))["details"][0]["path"].startswith("$.scopes")
    assert await table_counts(db) == before


async def test_restaurant_reports_its_epoch_and_seq(client, db, rid, tokens):
    response = await client.get(f"/api/v1/restaurants/{rid}", headers=bearer(await tokens("host")))
    body = await response.json()
    row = await db.fetchrow("SELECT epoch, seq FROM restaurants WHERE id = $1", rid)
    assert body["restaurant"]["epoch"] == str(row["epoch"])
    assert body["restaurant"]["seq"] == row["seq"]
    assert body["role"] == "host"


async def until_status(client, path, headers, status, seconds=3.0):
    """Another instance hears of a revocation through the event stream: within moments."""
    for _ in range(int(seconds / 0.05)):
        response = await client.get(path, headers=headers)
        if response.status == status:
            return response
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never answered {status}")


async def test_a_known_token_is_refused_at_once_when_revoked_on_any_instance(make_client, config,
                                                                            rid, tokens):
    here, there = await make_client(config), await make_client(config)
    manager = bearer(await tokens("manager"))
    device = await register_device(here, rid, manager)
    screen = bearer(device["token"])
    tickets = f"/api/v1/restaurants/{rid}/kitchen/tickets"
    assert (await here.get(tickets, headers=screen)).status == 200  # known to both now
    assert (await there.get(tickets, headers=screen)).status == 200
    revoked = await here.delete(f"/api/v1/restaurants/{rid}/devices/{device['device']['id']}",
                                headers=manager)
    assert revoked.status == 200
    assert (await here.get(tickets, headers=screen)).status == 401  # the revoking instance: at once
    refused = await until_status(there, tickets, screen, 401)
    assert "revoked" in (await error_of(refused))["message"]


async def test_a_role_change_applies_to_a_known_session_at_once(client, rid, tokens, db):
    host = bearer(await tokens("host"))
    owner = bearer(await tokens("owner"))
    waitlist = f"/api/v1/restaurants/{rid}/waitlist"
    assert (await client.post(waitlist, headers=host, json={"name": "Ode", "size": 2})).status == 201
    host_id = await db.fetchval("SELECT id FROM users WHERE email = 'host@demo.test'")
    demoted = await client.patch(f"/api/v1/restaurants/{rid}/staff/{host_id}", headers=owner,
                                 json={"role": "kitchen"})
    assert demoted.status == 200
    refused = await client.post(waitlist, headers=host, json={"name": "Ode", "size": 2})
    assert refused.status == 403


async def test_a_known_session_still_ends_on_time(make_client, config, rid):
    short = await make_client(msgspec.structs.replace(config, session_hours=1.5 / 3600))
    login = await short.post("/api/v1/auth/login", json={"email": "host@demo.test",
                                                          "password": PASSWORD})
    session = bearer((await login.json())["token"])
    short.session.cookie_jar.clear()
    menu = f"/api/v1/restaurants/{rid}/menu"
    assert (await short.get(menu, headers=session)).status == 200  # resolved and kept
    await asyncio.sleep(1.7)
    expired = await short.get(menu, headers=session)
    assert expired.status == 401
    assert "expired" in (await error_of(expired))["message"]
