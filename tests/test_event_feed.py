"""The events feed: an integration polls `GET …/events?since=N` and never misses an event."""
from __future__ import annotations

import pytest
from conftest import bearer, error_of


async def place_orders(client, base, server, menu, count):
    for _ in range(count):
        response = await client.post(base + "/orders", headers=server, json={
            "items": [{"menu_item_id": menu["Burger"]["id"]}, {"menu_item_id": menu["Burrata"]["id"]}]})
        assert response.status == 201, await response.text()


async def poll(client, base, headers, query):
    response = await client.get(base + "/events?" + query, headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_paging_from_zero_returns_every_event_once_in_order_as_the_socket_sends_it(
        client, db, rid, base, server, menu, feed_key, open_socket, tokens):
    await place_orders(client, base, server, menu, 4)
    seen, since, pages = [], 0, 0
    while True:
        page = await poll(client, base, feed_key, f"since={since}&limit=3")
        seen += page["items"]
        since, pages = page["next_since"], pages + 1
        if not page["more"]:
            break
    rows = await db.fetch("SELECT seq, channel, name FROM events WHERE restaurant_id = $1 "
                          "ORDER BY seq", rid)
    assert [(e["seq"], e["channel"], e["name"]) for e in seen] == [tuple(r) for r in rows]
    assert pages == -(-len(rows) // 3) and since == rows[-1]["seq"] == page["seq"]
    # The same bodies the socket replays for the same seqs.
    sock = await open_socket(rid, await tokens("manager"))
    await sock.send(type="subscribe", channels=["orders", "kitchen", "floor", "menu", "manager"],
                    since=0, epoch=page["epoch"])
    replayed = await sock.events(len(rows))
    assert replayed == seen


async def test_a_channel_filter_returns_only_those_events_and_still_moves_on(
        client, base, server, menu, feed_key):
    await place_orders(client, base, server, menu, 2)
    page = await poll(client, base, feed_key, "since=0&channels=kitchen")
    assert page["items"] and all(e["channel"].startswith("kitchen:") for e in page["items"])
    assert page["next_since"] == page["seq"]  # nothing else on kitchen up to here
    quiet = await poll(client, base, feed_key, f"since={page['next_since']}&channels=kitchen")
    assert quiet["items"] == [] and quiet["next_since"] == page["seq"]


async def test_events_no_longer_kept_or_another_epoch_are_410_reset_required(
        client, db, rid, base, server, menu, feed_key):
    await place_orders(client, base, server, menu, 3)
    page = await poll(client, base, feed_key, "since=0")
    await db.execute("DELETE FROM events WHERE restaurant_id = $1 AND seq <= 2", rid)  # purged
    gone = await client.get(base + "/events?since=1", headers=feed_key)
    assert gone.status == 410
    error = await error_of(gone)
    assert error["code"] == "reset_required" and error["details"][0]["oldest_seq"] == 3
    assert (await poll(client, base, feed_key, "since=2"))["items"][0]["seq"] == 3  # still whole
    other = await client.get(base + "/events?since=2&epoch=00000000-0000-0000-0000-000000000000",
                             headers=feed_key)
    assert other.status == 410 and (await error_of(other))["details"][0]["epoch"] == page["epoch"]


@pytest.mark.parametrize("query,status,code", [
    ("", 400, "invalid_query"),  # since is required
    ("since=-1", 400, "invalid_query"),
    ("since=abc", 400, "invalid_query"),
    ("since=0&limit=0", 400, "invalid_query"),
    ("since=0&limit=1001", 400, "invalid_query"),
    ("since=0&channels=kitchen:Grill!", 422, "unknown_channel"),
    ("since=0&channels=payments", 422, "unknown_channel"),
])
async def test_bad_queries_are_clear_errors(client, base, feed_key, query, status, code):
    response = await client.get(base + "/events?" + query, headers=feed_key)
    assert response.status == status
    assert (await error_of(response))["code"] == code


async def test_keys_without_the_events_scope_and_staff_below_manager_are_refused(
        client, base, tokens):
    owner = bearer(await tokens("owner"))
    read_key = await (await client.post(base + "/api-keys", headers=owner,
                                        json={"name": "r", "scopes": ["read"]})).json()
    assert (await client.get(base + "/events?since=0", headers=bearer(read_key["key"]))).status == 403
    assert (await client.get(base + "/events?since=0",
                             headers=bearer(await tokens("server")))).status == 403
    assert (await client.get(base + "/events?since=0", headers=owner)).status == 200
