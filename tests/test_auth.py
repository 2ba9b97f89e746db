"""Sign-in, sessions, cookies, expiry, revocation and the failed-login throttle."""
from __future__ import annotations

import time

import msgspec
import pytest
from conftest import PASSWORD, ROLES, bearer, error_of, login, table_counts


@pytest.mark.parametrize("role", ROLES)
async def test_each_demo_role_signs_in_and_sees_its_restaurant(client, db, role):
    body = await login(client, f"{role}@demo.test")
    assert body["token"].startswith("sls_")
    assert body["user"]["email"] == f"{role}@demo.test"
    assert [(r["slug"], r["role"]) for r in body["restaurants"]] == [("demo", role)]
    # Only the hash is stored, never the token itself.
    stored = await db.fetchval("SELECT count(*) FROM sessions WHERE token_hash = sha256($1::bytea)",
                               body["token"].encode())
    assert stored == 1
    assert await db.fetchval("SELECT count(*) FROM sessions WHERE token_hash = $1::bytea",
                             body["token"].encode()) == 0

    me = await client.get("/api/v1/auth/me", headers=bearer(body["token"]))
    assert me.status == 200
    assert (await me.json())["restaurants"][0]["role"] == role


async def test_login_emits_an_event_in_the_users_restaurant(client, db, rid):
    body = await login(client, "host@demo.test")
    event = await db.fetchrow("SELECT channel, name, data FROM events WHERE restaurant_id = $1 "
                              "ORDER BY seq DESC LIMIT 1", rid)
    assert (event["channel"], event["name"]) == ("manager", "staff.logged_in")
    assert msgspec.json.decode(event["data"])["user_id"] == body["user"]["id"]


async def test_wrong_password_and_unknown_email_get_the_same_401(client, db):
    before = await table_counts(db)
    wrong = await client.post("/api/v1/auth/login",
                              json={"email": "owner@demo.test", "password": "nope"})
    unknown = await client.post("/api/v1/auth/login",
                                json={"email": "nobody@demo.test", "password": "nope"})
    assert wrong.status == unknown.status == 401
    assert (await error_of(wrong))["message"] == (await error_of(unknown))["message"]
    assert await table_counts(db) == before


async def test_email_is_matched_without_regard_to_case_or_spaces(client):
    body = await login(client, "  Manager@Demo.TEST ")
    assert body["user"]["email"] == "manager@demo.test"


async def test_logout_revokes_the_session(client, db):
    token = (await login(client, "server@demo.test"))["token"]
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status == 200
    out = await client.post("/api/v1/auth/logout", headers=bearer(token))
    assert out.status == 204
    after = await client.get("/api/v1/auth/me", headers=bearer(token))
    assert after.status == 401
    assert "revoked" in (await error_of(after))["message"]
    assert await db.fetchval("SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL") == 1
    names = [r["name"] for r in await db.fetch("SELECT name FROM events ORDER BY seq")]
    assert names[-1] == "staff.logged_out"


async def test_expired_session_gets_401(client, db):
    token = (await login(client, "kitchen@demo.test"))["token"]
    await db.execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
    response = await client.get("/api/v1/auth/me", headers=bearer(token))
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "expired" in (await error_of(response))["message"]


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer sls_made-up", "Basic dXNlcjpwdw==",
                                    "Bearer " + "x" * 5000])
async def test_missing_or_bogus_credentials_get_401(client, rid, header):
    headers = {"Authorization": header} if header else {}
    response = await client.get(f"/api/v1/restaurants/{rid}", headers=headers)
    assert response.status == 401
    assert (await error_of(response))["code"] == "unauthorized"


async def test_session_cookie_works_for_pages_and_is_httponly_lax(client, rid):
    response = await client.post("/api/v1/auth/login",
                                 json={"email": "host@demo.test", "password": PASSWORD})
    cookie = response.cookies["serveline_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert cookie.value == (await response.json())["token"]
    # The client's cookie jar now carries the session.
    assert (await client.get(f"/api/v1/restaurants/{rid}")).status == 200
    assert (await client.post("/api/v1/auth/logout")).status == 204
    assert (await client.get(f"/api/v1/restaurants/{rid}")).status == 401


async def test_cookie_authenticated_write_from_another_site_is_refused(client, db, rid):
    await login(client, "manager@demo.test")  # sets the cookie
    before = await table_counts(db)
    response = await client.post(f"/api/v1/restaurants/{rid}/devices",
                                 json={"name": "Evil", "kind": "ipad", "role": "kitchen"},
                                 headers={"Origin": "https://evil.example"})
    assert response.status == 403
    assert await table_counts(db) == before


async def test_repeated_failures_are_slowed_then_refused_with_429(make_client, config, db):
    config = msgspec.structs.replace(config, login_failure_limit="4/15 minutes",
                                     login_failures_before_delay=2)
    client = await make_client(config)
    bad = {"email": "owner@demo.test", "password": "wrong-password"}
    timings = []
    for _ in range(4):
        started = time.monotonic()
        response = await client.post("/api/v1/auth/login", json=bad)
        timings.append(time.monotonic() - started)
        assert response.status == 401
    assert timings[2] >= 0.25 and timings[3] >= 0.5  # third and fourth answers were held back
    before = await table_counts(db)
    refused = await client.post("/api/v1/auth/login", json=bad)
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert (await error_of(refused))["code"] == "rate_limited"
    # Even the right password is refused while the email is locked out, and nothing is written.
    locked = await client.post("/api/v1/auth/login",
                               json={"email": "owner@demo.test", "password": PASSWORD})
    assert locked.status == 429
    assert await table_counts(db) == before
    # Another email from the same address is unaffected below the address limit.
    assert (await client.post("/api/v1/auth/login",
                              json={"email": "host@demo.test", "password": PASSWORD})).status == 200


async def test_a_successful_login_resets_the_email_counter(make_client, config):
    config = msgspec.structs.replace(config, login_failure_limit="3/15 minutes")
    client = await make_client(config)
    for _ in range(2):
        await client.post("/api/v1/auth/login", json={"email": "host@demo.test", "password": "x"})
    await login(client, "host@demo.test")
    for _ in range(2):
        await client.post("/api/v1/auth/login", json={"email": "host@demo.test", "password": "x"})
    await login(client, "host@demo.test")


async def test_outdated_password_hash_is_upgraded_on_login(make_client, config, db):
    stronger = msgspec.structs.replace(config, argon2_time_cost=2)
    client = await make_client(stronger)
    old = await db.fetchval("SELECT password_hash FROM users WHERE email = 'owner@demo.test'")
    await login(client, "owner@demo.test")
    new = await db.fetchval("SELECT password_hash FROM users WHERE email = 'owner@demo.test'")
    assert old != new and ",t=2," in new
    await login(client, "owner@demo.test")
