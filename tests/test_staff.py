"""Staff management: who may grant which role, new and existing users, and the last owner."""
from __future__ import annotations

from conftest import PASSWORD, bearer, error_of, login, table_counts


async def test_manager_adds_a_server_who_can_then_sign_in(client, db, rid, tokens):
    response = await client.post(f"/api/v1/restaurants/{rid}/staff",
                                 headers=bearer(await tokens("manager")),
                                 json={"email": "New.Server@Demo.test", "name": "Nia Server",
                                       "role": "server", "password": "a-long-password"})
    assert response.status == 201, await response.text()
    member = (await response.json())["staff_member"]
    assert (member["email"], member["role"]) == ("new.server@demo.test", "server")
    body = await login(client, "new.server@demo.test", "a-long-password")
    assert [(r["id"], r["role"]) for r in body["restaurants"]] == [(rid, "server")]
    event = await db.fetchrow("SELECT name FROM events WHERE restaurant_id = $1 AND name = 'staff.added'", rid)
    assert event is not None


async def test_manager_may_not_grant_manager_or_owner(client, db, rid, tokens):
    headers = bearer(await tokens("manager"))
    before = await table_counts(db)
    for role in ("manager", "owner"):
        response = await client.post(f"/api/v1/restaurants/{rid}/staff", headers=headers,
                                     json={"email": f"x-{role}@demo.test", "name": "X", "role": role,
                                           "password": "a-long-password"})
        assert response.status == 403
        assert (await error_of(response))["code"] == "forbidden"
    assert await table_counts(db) == before


async def test_owner_adds_someone_from_another_restaurant_without_a_password(client, rid, tokens):
    response = await client.post(f"/api/v1/restaurants/{rid}/staff",
                                 headers=bearer(await tokens("owner")),
                                 json={"email": "manager@other.test", "name": "ignored",
                                       "role": "manager"})
    assert response.status == 201
    body = await login(client, "manager@other.test", PASSWORD)
    assert sorted(r["slug"] for r in body["restaurants"]) == ["demo", "other"]


async def test_new_email_without_password_is_422_and_writes_nothing(client, db, rid, tokens):
    headers = bearer(await tokens("owner"))
    before = await table_counts(db)
    response = await client.post(f"/api/v1/restaurants/{rid}/staff",
                                 headers=headers,
                                 json={"email": "fresh@demo.test", "name": "Fresh", "role": "host"})
    assert response.status == 422
    assert (await error_of(response))["details"][0]["path"] == "$.password"
    assert await table_counts(db) == before


async def test_short_password_is_rejected(client, db, rid, tokens):
    headers = bearer(await tokens("owner"))
    before = await table_counts(db)
    response = await client.post(f"/api/v1/restaurants/{rid}/staff",
                                 headers=headers,
                                 json={"email": "fresh@demo.test", "name": "Fresh", "role": "host",
                                       "password": "short"})
    assert response.status == 422
    assert (await error_of(response))["details"][0]["path"] == "$.password"
    assert await table_counts(db) == before


async def test_roles_change_and_staff_are_removed(client, db, rid, tokens):
    headers = bearer(await tokens("owner"))
    host_id = await db.fetchval("SELECT id FROM users WHERE email = 'host@demo.test'")
    changed = await client.patch(f"/api/v1/restaurants/{rid}/staff/{host_id}", headers=headers,
                                 json={"role": "manager"})
    assert changed.status == 200
    assert (await changed.json())["staff_member"]["role"] == "manager"
    removed = await client.delete(f"/api/v1/restaurants/{rid}/staff/{host_id}", headers=headers)
    assert removed.status == 204
    listing = await client.get(f"/api/v1/restaurants/{rid}/staff", headers=headers)
    assert host_id not in [m["user_id"] for m in (await listing.json())["items"]]
    names = [r["name"] for r in await db.fetch(
        "SELECT name FROM events WHERE restaurant_id = $1 ORDER BY seq DESC LIMIT 2", rid)]
    assert names == ["staff.removed", "staff.role_changed"]


async def test_manager_cannot_touch_the_owner(client, db, rid, tokens):
    owner_id = await db.fetchval("SELECT id FROM users WHERE email = 'owner@demo.test'")
    headers = bearer(await tokens("manager"))
    before = await table_counts(db)
    assert (await client.patch(f"/api/v1/restaurants/{rid}/staff/{owner_id}", headers=headers,
                               json={"role": "kitchen"})).status == 403
    assert (await client.delete(f"/api/v1/restaurants/{rid}/staff/{owner_id}",
                                headers=headers)).status == 403
    assert await table_counts(db) == before


async def test_the_last_owner_cannot_leave_or_be_demoted(client, db, rid, tokens):
    owner_id = await db.fetchval("SELECT id FROM users WHERE email = 'owner@demo.test'")
    headers = bearer(await tokens("owner"))
    before = await table_counts(db)
    demote = await client.patch(f"/api/v1/restaurants/{rid}/staff/{owner_id}", headers=headers,
                                json={"role": "manager"})
    assert demote.status == 409
    leave = await client.delete(f"/api/v1/restaurants/{rid}/staff/{owner_id}", headers=headers)
    assert leave.status == 409
    assert "owner" in (await error_of(leave))["message"]
    assert await table_counts(db) == before


async def test_staff_of_another_restaurant_is_not_found(client, db, rid, tokens):
    other_host = await db.fetchval("SELECT id FROM users WHERE email = 'host@other.test'")
    response = await client.patch(f"/api/v1/restaurants/{rid}/staff/{other_host}",
                                  headers=bearer(await tokens("owner")), json={"role": "server"})
    assert response.status == 404
