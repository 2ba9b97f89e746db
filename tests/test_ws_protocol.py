"""The protocol as docs/protocol.md writes it: sign-in, channels, reset, receipts, bad input."""
from __future__ import annotations

import asyncio

from conftest import bearer, error_of
from test_ws_basics import create_order

from server.keys import HUB, POOL
from server.realtime import const, presence


async def test_cookie_signs_in_a_browser_screen(client, rid):
    await client.post("/api/v1/auth/login", json={"email": "kitchen@demo.test",
                                                   "password": "correct horse battery"})
    ws = await client.ws_connect(f"/api/v1/restaurants/{rid}/ws")
    welcome = await ws.receive_json()
    assert welcome["type"] == "welcome" and welcome["role"] == "kitchen"
    await ws.close()


async def test_first_message_auth_within_five_seconds(client, rid, tokens, open_socket):
    sock = await open_socket(rid, None, welcome=False)
    await sock.send(type="auth", token=await tokens("host"))
    assert (await sock.next())["role"] == "host"


async def test_no_auth_message_closes_with_4001(client, rid, open_socket):
    sock = await open_socket(rid, None, welcome=False)
    await sock.send(type="subscribe", channels=["floor"])
    assert await sock.closed() == const.CLOSE_UNAUTHORIZED


async def test_bad_token_in_auth_message_closes_with_4001(client, rid, open_socket):
    sock = await open_socket(rid, None, welcome=False)
    await sock.send(type="auth", token="sls_nonsense")
    assert await sock.closed() == const.CLOSE_UNAUTHORIZED


async def test_another_restaurants_credential_is_not_found(client, restaurant_ids, tokens, open_socket):
    other_token = await tokens("manager", "other")
    response = await client.get(f"/api/v1/restaurants/{restaurant_ids['demo']}/ws",
                                headers={**bearer(other_token), "Upgrade": "websocket",
                                         "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                                         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert response.status == 404
    assert (await error_of(response))["code"] == "not_found"
    sock = await open_socket(restaurant_ids["demo"], None, welcome=False)
    await sock.send(type="auth", token=other_token)
    assert await sock.closed() == const.CLOSE_NOT_FOUND


async def test_bad_bearer_token_is_401_before_the_upgrade(client, rid):
    response = await client.get(f"/api/v1/restaurants/{rid}/ws", headers=bearer("sld_nope"))
    assert response.status == 401
    assert (await error_of(response))["code"] == "unauthorized"


async def test_api_key_needs_the_events_scope(client, rid, tokens):
    owner = bearer(await tokens("owner"))
    keys = {}
    for scope in ("read", "events"):
        response = await client.post(f"/api/v1/restaurants/{rid}/api-keys", headers=owner,
                                     json={"name": scope, "scopes": [scope]})
        keys[scope] = (await response.json())["key"]
    denied = await client.get(f"/api/v1/restaurants/{rid}/ws", headers=bearer(keys["read"]))
    assert denied.status == 403
    ws = await client.ws_connect(f"/api/v1/restaurants/{rid}/ws", headers=bearer(keys["events"]))
    assert (await ws.receive_json())["type"] == "welcome"
    await ws.close()


async def test_channels_follow_the_role(rid, tokens, open_socket):
    cook = await open_socket(rid, await tokens("kitchen"))
    await cook.send(type="subscribe", channels=["manager"])
    error = await cook.until("error")
    assert error["code"] == const.FORBIDDEN_CHANNEL
    await cook.send(type="subscribe", channels=["kitchen:grill", "nonsense"])
    assert (await cook.until("error"))["code"] == const.UNKNOWN_CHANNEL
    await cook.send(type="subscribe", channels=["kitchen:grill"])  # still open, still works
    assert (await cook.until("subscribed"))["channels"] == ["kitchen:grill"]


async def test_bad_messages_get_errors_and_the_connection_stays(rid, tokens, open_socket):
    sock = await open_socket(rid, await tokens("manager"))
    for raw, code in (("not json", const.INVALID_FORMAT), ("[1, 2]", const.INVALID_FORMAT),
                      ('{"type": "dance"}', const.UNKNOWN_TYPE),
                      ('{"type": "subscribe", "channels": "floor"}', const.INVALID_FORMAT),
                      ('{"type": "ack", "seq": 3}', const.NOT_SUBSCRIBED),
                      ('{"type": "ack", "seq": -1}', const.INVALID_FORMAT)):
        await sock.ws.send_str(raw)
        assert (await sock.until("error"))["code"] == code, raw
    await sock.send(type="ping")
    assert (await sock.until("pong"))["type"] == "pong"


async def test_binary_frames_close_with_1003(rid, tokens, open_socket):
    sock = await open_socket(rid, await tokens("manager"))
    await sock.ws.send_bytes(b"\x00\x01")
    assert await sock.closed() == const.CLOSE_BINARY


async def test_oversize_frames_close_with_1009_and_others_carry_on(client, rid, tokens, open_socket):
    token = await tokens("manager")
    big, bystander = await open_socket(rid, token), await open_socket(rid, token)
    await bystander.send(type="subscribe", channels=["orders"])
    await bystander.until("subscribed")
    await big.ws.send_str('{"type": "ping", "pad": "' + "x" * 70_000 + '"}')
    assert await big.closed() == const.CLOSE_TOO_BIG
    await create_order(client, rid, token)
    assert (await bystander.until("event", "order.created"))["channel"] == "orders"


async def test_other_epoch_gets_a_reset_equal_to_the_rest_reads(client, rid, tokens, open_socket):
    token = await tokens("manager")
    order, _ = await create_order(client, rid, token, table_id=None)
    sock = await open_socket(rid, token)
    await sock.send(type="subscribe", channels=["kitchen", "floor", "orders", "menu", "manager"],
                    epoch="00000000-0000-0000-0000-000000000000", since=1)
    await sock.until("subscribed")
    reset = await sock.until("reset")
    base, headers = f"/api/v1/restaurants/{rid}", bearer(token)
    reads = {}
    for key, path in (("tickets", "/kitchen/tickets?limit=200"), ("tables", "/tables?limit=200"),
                      ("waitlist", "/waitlist?limit=200"), ("orders", "/orders?status=open&limit=200")):
        response = await client.get(base + path, headers=headers)
        assert int(response.headers["X-Serveline-Seq"]) == reset["seq"]
        reads[key] = (await response.json())["items"]
    menu = await client.get(base + "/menu", headers=headers)
    for key in reads:
        assert reset["snapshot"][key] == reads[key], key
    assert reset["snapshot"]["menu"] == await menu.json()
    assert any(o["id"] == order["id"] for o in reset["snapshot"]["orders"])
    assert set(reset["snapshot"]) == {"tickets", "tables", "waitlist", "reservations", "orders",
                                      "menu", "dashboard"}


async def test_since_in_the_future_or_too_old_gets_a_reset(client, db, rid, tokens, open_socket):
    token = await tokens("manager")
    sock = await open_socket(rid, token)
    await sock.send(type="subscribe", channels=["orders"])
    start = await sock.until("subscribed")
    await sock.send(type="subscribe", channels=["orders"], epoch=start["epoch"],
                    since=start["seq"] + 1000)
    assert (await sock.until("reset"))["seq"] == start["seq"]
    for _ in range(3):
        await create_order(client, rid, token)
    await db.execute("DELETE FROM events WHERE restaurant_id = $1 AND seq <= $2", rid, start["seq"] + 1)
    await sock.send(type="subscribe", channels=["orders"], epoch=start["epoch"], since=start["seq"])
    reset = await sock.until("reset")
    assert len(reset["snapshot"]["orders"]) == 3  # the whole open state, never a partial replay


async def test_receipts_show_as_device_lag_and_online(client, rid, tokens, open_socket):
    manager = bearer(await tokens("manager"))
    device = await (await client.post(f"/api/v1/restaurants/{rid}/devices", headers=manager,
                                      json={"name": "Pass", "kind": "screen", "role": "kitchen"})).json()
    sock = await open_socket(rid, device["token"])
    await sock.send(type="subscribe", channels=["orders"])
    await sock.until("subscribed")
    for _ in range(3):
        await create_order(client, rid, await tokens("server"))
    received = await sock.events(3)
    hub = client.app[HUB]

    async def listed() -> dict:
        await hub._flush_acks()
        page = await (await client.get(f"/api/v1/restaurants/{rid}/devices", headers=manager)).json()
        return next(d for d in page["items"] if d["id"] == device["device"]["id"])
    behind = await listed()
    assert behind["online"] and behind["lag"] >= 3
    await sock.send(type="ack", seq=received[-1]["seq"])
    await asyncio.sleep(0.05)
    caught_up = await listed()
    assert caught_up["lag"] == 0 and caught_up["last_ack_seq"] >= received[-1]["seq"]


async def test_expected_device_going_dark_alerts_the_manager(client, db, rid, tokens, open_socket):
    manager = bearer(await tokens("manager"))
    await client.patch(f"/api/v1/restaurants/{rid}", headers=manager, json={"settings": {
        "service_start": "00:00", "service_end": "23:59"}})
    device = await (await client.post(f"/api/v1/restaurants/{rid}/devices", headers=manager,
                                      json={"name": "Grill", "kind": "screen", "role": "kitchen"})).json()
    device_id = device["device"]["id"]
    patched = await client.patch(f"/api/v1/restaurants/{rid}/devices/{device_id}", headers=manager,
                                 json={"expected": True})
    assert patched.status == 200
    watcher = await open_socket(rid, await tokens("manager"))
    await watcher.send(type="subscribe", channels=["manager"])
    await watcher.until("subscribed")
    assert await presence.check(client.app[POOL]) == ["device.dark"]  # never seen
    alert = await watcher.until("event", "device.dark")
    assert alert["data"]["device_id"] == device_id
    assert await presence.check(client.app[POOL]) == []  # raised once, not every round
    screen = await open_socket(rid, device["token"])
    await screen.send(type="subscribe", channels=["kitchen"])
    await screen.until("subscribed")
    await client.app[HUB]._flush_acks()
    assert await presence.check(client.app[POOL]) == ["device.back"]
    listed = await (await client.get(f"/api/v1/restaurants/{rid}/devices", headers=manager)).json()
    assert next(d for d in listed["items"] if d["id"] == device_id)["alert"] is None


async def test_realtime_health_counts_rooms_and_sockets(client, rid, tokens, open_socket):
    manager = bearer(await tokens("manager"))
    sock = await open_socket(rid, await tokens("kitchen"))
    await sock.send(type="subscribe", channels=["kitchen"])
    await sock.until("subscribed")
    health = await (await client.get("/api/health/realtime", headers=manager)).json()
    assert health["rooms"] == 1 and health["connections"] == 1
    assert (await client.get("/api/health/realtime", headers=bearer(await tokens("kitchen")))).status == 403
