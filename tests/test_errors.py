"""Bad input gets the one JSON error shape, a request id, and leaves the database as it was."""
from __future__ import annotations

import msgspec
import pytest
from conftest import bearer, error_of, login, table_counts

DEVICE = {"name": "Grill screen", "kind": "screen", "role": "kitchen"}


BAD_BODIES = [
    # (raw body, content type, status, code, path in details)
    (b'{"name": "Grill screen", "kind": ', "application/json", 400, "invalid_json", None),
    (b"not json at all", "application/json", 400, "invalid_json", None),
    (b"", "application/json", 400, "invalid_json", None),
    (b"[1, 2, 3]", "application/json", 422, "validation_failed", "$"),
    (b'{"name": 42, "kind": "screen", "role": "kitchen"}', "application/json", 422,
     "validation_failed", "$.name"),
    (b'{"name": "A", "kind": "toaster", "role": "kitchen"}', "application/json", 422,
     "validation_failed", "$.kind"),
    (b'{"name": "A", "kind": "screen", "role": "owner"}', "application/json", 422,
     "validation_failed", "$.role"),
    (b'{"name": "", "kind": "screen", "role": "kitchen"}', "application/json", 422,
     "validation_failed", "$.name"),
    (b'{"kind": "screen", "role": "kitchen"}', "application/json", 422, "validation_failed", "$"),
    (b'{"name": "A", "kind": "screen", "role": "kitchen", "admin": true}', "application/json", 422,
     "validation_failed", "$"),
    (b'\xff\xfe{"name": "A"}', "application/json", 400, "invalid_json", None),
    (b"name=A&kind=screen", "application/x-www-form-urlencoded", 415, "unsupported_media_type", None),
]


@pytest.mark.parametrize("body,content_type,status,code,path", BAD_BODIES)
async def test_bad_body_gets_a_clear_error_and_writes_nothing(client, db, rid, manager, body,
                                                              content_type, status, code, path):
    before = await table_counts(db)
    response = await client.post(f"/api/v1/restaurants/{rid}/devices", data=body,
                                 headers={**manager, "Content-Type": content_type})
    assert response.status == status, await response.text()
    error = await error_of(response)
    assert error["code"] == code
    if path is not None:
        assert error["details"][0]["path"] == path
    assert response.headers["X-Request-Id"]
    assert await table_counts(db) == before


async def test_unknown_field_is_named_in_the_error(client, rid, manager):
    response = await client.post(f"/api/v1/restaurants/{rid}/devices",
                                 json={**DEVICE, "colour": "red"}, headers=manager)
    assert "colour" in (await error_of(response))["message"]


async def test_body_over_the_limit_gets_413_and_writes_nothing(make_client, config, db, rid):
    client = await make_client(msgspec.structs.replace(config, max_body_bytes=4096))
    headers = bearer((await login(client, "manager@demo.test"))["token"])
    before = await table_counts(db)
    body = msgspec.json.encode({**DEVICE, "name": "x" * 10_000})
    response = await client.post(f"/api/v1/restaurants/{rid}/devices", data=body,
                                 headers={**headers, "Content-Type": "application/json"})
    assert response.status == 413
    assert (await error_of(response))["code"] == "payload_too_large"
    assert await table_counts(db) == before


async def test_unknown_route_is_a_json_404(client):
    response = await client.get("/api/v1/no-such-thing")
    assert response.status == 404
    assert (await error_of(response))["code"] == "not_found"


async def test_wrong_method_is_a_json_405_listing_allowed_methods(client, rid, manager):
    response = await client.put(f"/api/v1/restaurants/{rid}/devices", json=DEVICE, headers=manager)
    assert response.status == 405
    error = await error_of(response)
    assert error["code"] == "method_not_allowed"
    assert "POST" in error["details"][0]["allowed"]
    assert "POST" in response.headers["Allow"]


async def test_login_with_wrong_types_is_422_with_the_path(client, db):
    before = await table_counts(db)
    response = await client.post("/api/v1/auth/login", json={"email": ["a"], "password": 1})
    assert response.status == 422
    assert (await error_of(response))["details"][0]["path"] == "$.email"
    assert await table_counts(db) == before


async def test_request_id_is_echoed_when_sane_and_made_up_otherwise(client):
    given = await client.get("/api/health", headers={"X-Request-Id": "ipad-7.req-42"})
    assert given.headers["X-Request-Id"] == "ipad-7.req-42"
    hostile = await client.get("/api/health", headers={"X-Request-Id": "a\tb" + "x" * 100})
    assert len(hostile.headers["X-Request-Id"]) == 32


async def test_bad_path_ids_are_not_found(client, rid, manager):
    for bad in ("abc", "-1", "1e3", "9" * 40):
        response = await client.delete(f"/api/v1/restaurants/{rid}/devices/{bad}", headers=manager)
        assert response.status == 404, bad
        assert (await error_of(response))["code"] == "not_found"


async def test_unexpected_failure_is_a_logged_500_with_the_request_id_and_no_trace(
        client, db, rid, manager, caplog):
    # A real fault, not a mock: the table the query needs is gone.
    await db.execute("ALTER TABLE api_keys RENAME TO api_keys_elsewhere")
    response = await client.get(f"/api/v1/restaurants/{rid}/api-keys", headers=manager)
    assert response.status == 500
    error = await error_of(response)
    assert error["code"] == "internal"
    request_id = response.headers["X-Request-Id"]
    assert request_id in error["message"]
    text = await response.text()
    assert "Traceback" not in text and "api_keys" not in text and "asyncpg" not in text
    logged = [r for r in caplog.records if r.levelname == "ERROR" and request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None


async def test_cursors_we_did_not_give_out_are_400(client, rid, manager):
    import base64
    for raw in (b"[99999999999999999999]", b"[-1]", b'["x"]', b"{}", b"\xff"):
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        for path in ("/orders", "/tables", "/reservations"):
            response = await client.get(f"/api/v1/restaurants/{rid}{path}?cursor={cursor}",
                                        headers=manager)
            assert response.status == 400, (raw, path, await response.text())
            assert (await error_of(response))["code"] == "invalid_cursor"
