"""The socket: sign-in, subscribe, live events in order, errors and close codes (docs/protocol.md)."""
from __future__ import annotations

from conftest import bearer


async def create_order(client, rid, token, item_name="Burger", table_id=None):
    base = f"/api/v1/restaurants/{rid}"
    menu = await (await client.get(base + "/menu", headers=bearer(token))).json()
    item = next(i for c in menu["categories"] for i in c["items"] if i["name"] == item_name)
    response = await client.post(base + "/orders", headers=bearer(token), json={
        "table_id": table_id, "items": [{"menu_item_id": item["id"], "qty": 1}]})
    assert response.status == 201, await response.text()
    return await response.json(), int(response.headers["X-Serveline-Seq"])


async def test_kitchen_screen_gets_the_ticket_of_a_new_order(client, rid, tokens, open_socket):
    cook = await open_socket(rid, await tokens("kitchen"))
    await cook.send(type="subscribe", channels=["kitchen:grill", "orders"])
    subscribed = await cook.until("subscribed")
    order, seq = await create_order(client, rid, await tokens("server"))
    fired = await cook.until("event", "ticket.fired")
    created = [m for m in cook.seen if m.get("name") == "order.created"]
    assert created and created[0]["seq"] < fired["seq"] <= seq
    assert created[0]["data"]["order"]["id"] == order["id"]
    assert fired["channel"] == "kitchen:grill" and fired["data"]["ticket"]["order_id"] == order["id"]
    assert subscribed["seq"] < created[0]["seq"]


async def test_floor_gets_table_status(client, rid, tokens, open_socket):
    host = await open_socket(rid, await tokens("host"))
    await host.send(type="subscribe", channels=["floor"])
    await host.until("subscribed")
    tables = await (await client.get(f"/api/v1/restaurants/{rid}/tables",
                                     headers=bearer(await tokens("host")))).json()
    table_id = tables["items"][0]["id"]
    await client.post(f"/api/v1/restaurants/{rid}/tables/{table_id}/status",
                      headers=bearer(await tokens("host")), json={"status": "seated", "party_size": 2})
    event = await host.until("event", "table.status")
    assert event["data"]["table"]["id"] == table_id and event["data"]["table"]["status"] == "seated"


async def test_resume_after_being_offline_replays_everything_in_order(client, rid, tokens, open_socket):
    token = await tokens("manager")
    first = await open_socket(rid, token)
    await first.send(type="subscribe", channels=["orders"])
    start = await first.until("subscribed")
    await first.close()
    for _ in range(30):
        await create_order(client, rid, token)
    again = await open_socket(rid, token)
    await again.send(type="subscribe", channels=["orders"], epoch=start["epoch"], since=start["seq"])
    await again.until("subscribed")
    replayed = await again.events(30)
    seqs = [e["seq"] for e in replayed]
    assert seqs == sorted(set(seqs)) and all(e["name"] == "order.created" for e in replayed)
    # And live after the seam, with no gap or duplicate.
    await create_order(client, rid, token)
    live = await again.until("event", "order.created")
    assert live["seq"] > seqs[-1]
