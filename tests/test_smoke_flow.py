"""A whole service in one go: seat, order, fire, cook, bump, serve, pay, free the table."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conftest import bearer


async def test_a_table_from_seat_to_free(client, rid, tokens):
    host = bearer(await tokens("host"))
    server = bearer(await tokens("server"))
    cook = bearer(await tokens("kitchen"))
    manager = bearer(await tokens("manager"))
    base = f"/api/v1/restaurants/{rid}"

    tables = await (await client.get(base + "/tables", headers=host)).json()
    assert len(tables["items"]) == 20 and tables["next"] is None
    party = await client.post(base + "/waitlist", headers=host, json={"name": "Ada", "size": 3})
    assert party.status == 201, await party.text()
    party = await party.json()
    est = await client.get(base + "/waitlist/estimate?size=3", headers=host)
    assert est.status == 200, await est.text()
    seated = await client.post(base + f"/waitlist/{party['id']}/seat", headers=host)
    assert seated.status == 200, await seated.text()
    table_id = (await seated.json())["table_id"]

    menu = await (await client.get(base + "/menu", headers=server)).json()
    burger = next(i for c in menu["categories"] for i in c["items"] if i["name"] == "Burger")
    fries = next(i for c in menu["categories"] for i in c["items"] if i["name"] == "Fries")
    order = await client.post(base + "/orders", headers=server, json={
        "table_id": table_id, "items": [
            {"menu_item_id": burger["id"], "qty": 2, "modifiers": [burger["modifiers"][0]["id"]]},
            {"menu_item_id": fries["id"], "qty": 1, "course": 2}]})
    assert order.status == 201, await order.text()
    order = await order.json()
    assert order["total_minor"] == 2 * (1800 + 300) + 600

    tickets = await (await client.get(base + "/kitchen/tickets?station=grill", headers=cook)).json()
    assert len(tickets["items"]) == 1, tickets
    ticket = tickets["items"][0]
    for action in ("start", "bump"):
        response = await client.post(base + f"/kitchen/tickets/{ticket['id']}/{action}", headers=cook)
        assert response.status == 200, await response.text()
    fired = await client.post(base + f"/orders/{order['id']}/fire", headers=server, json={"course": 2})
    assert fired.status == 200, await fired.text()
    fry = (await (await client.get(base + "/kitchen/tickets?station=fry", headers=cook)).json())["items"]
    assert (await client.post(base + f"/kitchen/tickets/{fry[0]['id']}/bump", headers=cook)).status == 200
    order = await (await client.get(base + f"/orders/{order['id']}", headers=server)).json()
    for item in order["items"]:
        served = await client.post(base + f"/orders/{order['id']}/items/{item['id']}/serve", headers=server)
        assert served.status == 200, await served.text()
    closed = await client.post(base + f"/orders/{order['id']}/close", headers=server,
                               json={"payment": {"method": "card", "amount_minor": 4800, "tip_minor": 500}})
    assert closed.status == 200, await closed.text()
    for status in ("paying", "dirty", "free"):
        moved = await client.post(base + f"/tables/{table_id}/status", headers=server, json={"status": status})
        assert moved.status in (200, 409), await moved.text()

    dash = await client.get(base + "/dashboard", headers=manager)
    assert dash.status == 200, await dash.text()
    numbers = await dash.json()
    assert numbers["revenue_minor"] == 4800 and numbers["covers"] == 3

    starts = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    booked = await client.post(base + "/reservations", headers=host, json={
        "name": "Bo", "size": 2, "starts_at": starts.isoformat(), "table_id": table_id})
    assert booked.status == 201, await booked.text()
    again = await client.post(base + "/reservations", headers=host, json={
        "name": "Cy", "size": 2, "starts_at": starts.isoformat(), "table_id": table_id})
    assert again.status == 409, await again.text()
    day = (starts.date()).isoformat()
    slots = await client.get(base + f"/availability?date={day}&size=2", headers=host)
    assert slots.status == 200, await slots.text()
    listing = await client.get(base + f"/reservations?date={day}", headers=host)
    assert listing.status == 200, await listing.text()
