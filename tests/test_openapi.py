"""The OpenAPI document is the contract: valid, complete, and what the server really answers."""
from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from conftest import bearer
from openapi_spec_validator import validate

META_ROUTES = {("GET", "/api/v1/openapi.json"), ("GET", "/api/v1/docs")}


@pytest.fixture
async def spec(client) -> dict[str, Any]:
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    return await response.json()


async def test_spec_is_valid_openapi_3_1(spec):
    assert spec["openapi"] == "3.1.0"
    validate(spec)


async def test_every_route_is_in_the_spec(client, spec):
    routes = {(r.method, r.resource.canonical) for r in client.app.router.routes()
              if r.method != "HEAD" and r.resource is not None
              and r.resource.canonical.startswith("/api/")}  # screens and assets are not the API
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assert routes - META_ROUTES == documented


async def test_reference_page_lists_every_operation_and_loads_nothing_from_outside(client, spec):
    response = await client.get("/api/v1/docs")
    assert response.status == 200 and response.content_type == "text/html"
    html = await response.text()
    for ops in spec["paths"].values():
        for op in ops.values():
            assert f'id="{op["operationId"]}"' in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    stylesheet = re.search(r'href="(/static/[^"]+)"', html)[1]
    assert (await client.get(stylesheet)).status == 200


class Contract:
    """Calls the API and validates every answer against the served spec."""

    def __init__(self, client, spec: dict[str, Any]) -> None:
        self.client, self.spec, self.seen = client, spec, set()

    def schema_for(self, method: str, template: str, status: int) -> dict[str, Any]:
        responses = self.spec["paths"][template][method.lower()]["responses"]
        answer = responses.get(str(status)) or responses[f"{str(status)[0]}XX"]
        return answer.get("content", {}).get("application/json", {}).get("schema")

    async def __call__(self, method: str, template: str, headers: dict, expect: int = 200,
                       **kwargs: Any) -> Any:
        path = template.format(**kwargs.pop("ids", {}))
        response = await self.client.request(method, path, headers=headers, **kwargs)
        assert response.status == expect, (method, path, await response.text())
        schema = self.schema_for(method, template, response.status)
        body = await response.json() if schema else None
        if schema:
            jsonschema.validate(body, {**schema, "components": self.spec["components"]},
                                cls=jsonschema.Draft202012Validator)
        self.seen.add((method, template))
        return body


async def test_every_operation_answers_as_the_spec_says(client, spec, tokens, rid):
    call = Contract(client, spec)
    owner, host = bearer(await tokens("owner")), bearer(await tokens("host"))
    server, cook = bearer(await tokens("server")), bearer(await tokens("kitchen"))
    R = "/api/v1/restaurants/{rid}"
    ids: dict[str, Any] = {"rid": rid}

    await call("GET", "/api/health", {})
    await call("GET", "/api/health/db", owner)
    await call("GET", "/api/health/realtime", owner)
    await call("GET", "/api/health/performance", owner)
    login = await call("POST", "/api/v1/auth/login", {},
                       json={"email": "manager@demo.test", "password": "correct horse battery"})
    await call("GET", "/api/v1/auth/me", owner)
    await call("GET", R, owner, ids=ids)
    await call("PATCH", R, owner, ids=ids, json={"settings": {"slot_minutes": 30}})

    member = await call("POST", R + "/staff", owner, 201, ids=ids, json={
        "email": "new@demo.test", "name": "New Person", "role": "server", "password": "long-enough-1"})
    ids["user_id"] = member["staff_member"]["user_id"]
    await call("GET", R + "/staff", owner, ids=ids)
    await call("PATCH", R + "/staff/{user_id}", owner, ids=ids, json={"role": "host"})
    await call("DELETE", R + "/staff/{user_id}", owner, 204, ids=ids)
    device = await call("POST", R + "/devices", owner, 201, ids=ids,
                        json={"name": "Grill", "kind": "screen", "role": "kitchen"})
    ids["device_id"] = device["device"]["id"]
    await call("GET", R + "/devices", owner, ids=ids)
    await call("PATCH", R + "/devices/{device_id}", owner, ids=ids, json={"expected": True})
    shown = await (await client.get("/pair", headers={"Accept": "text/html"})).text()
    code = re.search(r'id="code">([A-Z0-9-]{7})<', shown).group(1)
    await call("POST", R + "/devices/pair", owner, 201, ids=ids,
               json={"code": code, "name": "Expo", "screen": "expo"})
    await call("POST", R + "/devices/pair", owner, 409, ids=ids,
               json={"code": code, "name": "Expo", "screen": "expo"})
    await call("GET", R + "/settings", host, ids=ids)
    await call("GET", "/api/health/cache", owner)
    await call("POST", "/api/health/cache/clear", owner, json={"namespace": f"r{rid}:menu"})
    await call("DELETE", R + "/devices/{device_id}", owner, ids=ids)
    key = await call("POST", R + "/api-keys", owner, 201, ids=ids, json={"name": "Books", "scopes": ["read"]})
    ids["key_id"] = key["api_key"]["id"]
    await call("GET", R + "/api-keys", owner, ids=ids)
    await call("DELETE", R + "/api-keys/{key_id}", owner, ids=ids)
    hook = await call("POST", R + "/webhooks", owner, 201, ids=ids,
                      json={"url": "https://hooks.example.com/serveline", "events": ["*"]})
    ids["webhook_id"] = hook["webhook"]["id"]
    await call("GET", R + "/webhooks", owner, ids=ids)
    await call("GET", R + "/webhooks/{webhook_id}", owner, ids=ids)
    await call("PATCH", R + "/webhooks/{webhook_id}", owner, ids=ids, json={"description": "books"})
    await call("POST", R + "/webhooks/{webhook_id}/rotate-secret", owner, ids=ids)

    area = await call("POST", R + "/areas", owner, 201, ids=ids, json={"name": "Bar"})
    await call("GET", R + "/areas", host, ids=ids)
    table = await call("POST", R + "/tables", owner, 201, ids=ids,
                       json={"label": "B1", "seats": 2, "area_id": area["id"]})
    ids["table_id"] = table["id"]
    await call("GET", R + "/tables", host, ids=ids, params={"limit": "5"})
    await call("GET", R + "/tables/{table_id}", host, ids=ids)
    await call("PATCH", R + "/tables/{table_id}", {**owner, "If-Match": str(table["version"])},
               ids=ids, json={"x": 40})

    party = await call("POST", R + "/waitlist", host, 201, ids=ids, json={"name": "Ada", "size": 2})
    ids["party_id"] = party["id"]
    await call("GET", R + "/waitlist", host, ids=ids)
    await call("GET", R + "/waitlist/estimate", host, ids=ids, params={"size": "2"})
    await call("GET", R + "/waitlist/{party_id}", host, ids=ids)
    await call("PATCH", R + "/waitlist/{party_id}", host, ids=ids, json={"note": "window"})
    await call("POST", R + "/waitlist/{party_id}/notify", host, ids=ids)
    await call("POST", R + "/waitlist/{party_id}/seat", host, ids=ids, json={"table_id": ids["table_id"]})
    other = await call("POST", R + "/waitlist", host, 201, ids=ids, json={"name": "Bo", "size": 4})
    await call("POST", R + "/waitlist/{party_id}/leave", host, ids={**ids, "party_id": other["id"]})
    await call("POST", R + "/tables/{table_id}/status", server, ids=ids, json={"status": "ordering"})

    zone = ZoneInfo("America/New_York")
    start = datetime.combine(datetime.now(zone).date() + timedelta(days=2),
                             datetime.min.time().replace(hour=19), zone)
    booking = await call("POST", R + "/reservations", host, 201, ids=ids, json={
        "name": "Cy", "size": 2, "starts_at": start.isoformat(), "table_id": ids["table_id"]})
    ids["reservation_id"] = booking["id"]
    await call("GET", R + "/reservations", host, ids=ids, params={"date": start.date().isoformat()})
    await call("GET", R + "/reservations/{reservation_id}", host, ids=ids)
    await call("PATCH", R + "/reservations/{reservation_id}", host, ids=ids, json={"size": 1})
    await call("POST", R + "/reservations/{reservation_id}/status", host, ids=ids,
               json={"status": "confirmed"})
    walk_in = await call("POST", R + "/reservations", host, 201, ids=ids, json={
        "name": "Di", "size": 2, "starts_at": datetime.now(zone).isoformat(), "duration_min": 30})
    await call("POST", R + "/reservations/{reservation_id}/seat", host,
               ids={**ids, "reservation_id": walk_in["id"]})
    await call("GET", R + "/availability", host, ids=ids,
               params={"date": start.date().isoformat(), "size": "2"})

    menu = await call("GET", R + "/menu", cook, ids=ids)
    category = await call("POST", R + "/menu/categories", owner, 201, ids=ids, json={"name": "Specials"})
    item = await call("POST", R + "/menu/items", owner, 201, ids=ids, json={
        "category_id": category["id"], "name": "Soup", "price_minor": 700, "station": "cold",
        "modifiers": [{"name": "Bread", "price_delta_minor": 150}]})
    ids["item_id"] = item["id"]
    await call("PATCH", R + "/menu/items/{item_id}", owner, ids=ids, json={"price_minor": 750})
    await call("POST", R + "/menu/items/{item_id}/availability", cook, ids=ids, json={"available": True})

    burger = next(i for c in menu["categories"] for i in c["items"] if i["name"] == "Burger")
    order = await call("POST", R + "/orders", server, 201, ids=ids, json={
        "table_id": ids["table_id"], "items": [
            {"menu_item_id": burger["id"], "qty": 1, "modifiers": [burger["modifiers"][0]["id"]]},
            {"menu_item_id": item["id"], "qty": 2, "course": 2}]})
    ids["order_id"] = order["id"]
    await call("GET", R + "/orders", server, ids=ids, params={"status": "open"})
    await call("GET", R + "/orders/{order_id}", server, ids=ids)
    added = await call("POST", R + "/orders/{order_id}/items", server, ids=ids,
                       json={"items": [{"menu_item_id": burger["id"]}]})
    await call("POST", R + "/orders/{order_id}/items/{item_id}/void", server,
               ids={**ids, "item_id": added["items"][-1]["id"]}, json={"reason": "mistake"})
    await call("PATCH", R + "/orders/{order_id}/items/{item_id}",
               {**server, "If-Match": str(added["items"][0]["version"])},
               ids={**ids, "item_id": added["items"][0]["id"]}, json={"qty": 2, "note": "no onions"})
    await call("POST", R + "/orders/{order_id}/fire", server, ids=ids, json={"course": 2})
    await call("POST", R + "/orders/{order_id}/courses/{course}/hold", server, ids={**ids, "course": 3})
    await call("POST", R + "/orders/{order_id}/courses/{course}/fire", server, ids={**ids, "course": 3})
    tickets = await call("GET", R + "/kitchen/tickets", cook, ids=ids, params={"station": "grill"})
    ticket = tickets["items"][0]
    ticket_ids = {**ids, "ticket_id": ticket["id"]}
    await call("POST", R + "/kitchen/tickets/{ticket_id}/start", cook, ids=ticket_ids)
    await call("POST", R + "/kitchen/tickets/{ticket_id}/items/{item_id}/ready", cook,
               ids={**ticket_ids, "item_id": ticket["items"][0]["id"]})
    await call("POST", R + "/kitchen/tickets/{ticket_id}/bump", cook, ids=ticket_ids)
    await call("POST", R + "/kitchen/tickets/{ticket_id}/recall", cook, ids=ticket_ids)
    await call("POST", R + "/kitchen/tickets/{ticket_id}/bump", cook, ids=ticket_ids)
    await call("GET", R + "/kitchen/tickets/recent", cook, ids=ids, params={"station": "grill"})
    await call("POST", R + "/orders/{order_id}/items/{item_id}/serve", server,
               ids={**ids, "item_id": ticket["items"][0]["id"]})
    cold = (await call("GET", R + "/kitchen/tickets", cook, ids=ids, params={"station": "cold"}))["items"]
    await call("POST", R + "/kitchen/tickets/{ticket_id}/bump", cook, ids={**ids, "ticket_id": cold[0]["id"]})
    assert (await call("GET", R + "/kitchen/expo", cook, ids=ids))["items"]
    spare = await call("POST", R + "/tables", owner, 201, ids=ids,
                       json={"label": "B2", "seats": 2, "area_id": area["id"]})
    moved = await call("POST", R + "/tables/{table_id}/move", server, ids=ids,
                       json={"to_table_id": spare["id"]})
    assert moved["order_ids"] == [ids["order_id"]]
    joining = await call("POST", R + "/tables", owner, 201, ids=ids,
                         json={"label": "B3", "seats": 2, "area_id": area["id"]})
    party_table = {**ids, "table_id": spare["id"]}
    await call("POST", R + "/tables/{table_id}/merge", server, ids=party_table,
               json={"table_ids": [joining["id"]]})
    await call("POST", R + "/tables/{table_id}/unmerge", server, ids=party_table)
    elsewhere = await call("POST", R + "/tables", owner, 201, ids=ids,
                           json={"label": "B4", "seats": 2, "area_id": area["id"]})
    await call("POST", R + "/orders/{order_id}/transfer", server, ids=ids,
               json={"table_id": elsewhere["id"]})
    side = await call("POST", R + "/orders", server, 201, ids=ids,
                      json={"items": [{"menu_item_id": burger["id"]}, {"menu_item_id": burger["id"]}]})
    await call("POST", R + "/orders/{order_id}/items/transfer", server, ids={**ids, "order_id": side["id"]},
               json={"item_ids": [side["items"][0]["id"]], "to_order_id": ids["order_id"]})
    side_ids = {**ids, "order_id": side["id"]}
    split = await call("POST", R + "/orders/{order_id}/checks/split", server, ids=side_ids,
                       json={"by": "even", "count": 2})
    await call("GET", R + "/orders/{order_id}/checks", server, ids=side_ids)
    await call("POST", R + "/orders/{order_id}/checks/{check_id}/pay", server,
               ids={**side_ids, "check_id": split["checks"][0]["id"]}, json={"method": "card"})
    await call("POST", R + "/orders/{order_id}/close", server, ids=ids,
               json={"payment": {"method": "cash", "amount_minor": 10_000}})
    await call("GET", R + "/dashboard", owner, ids=ids)
    await call("GET", R + "/ops", owner, ids=ids)
    await call("GET", R + "/dashboard/hourly", owner, ids=ids)
    await call("GET", R + "/alerts", owner, ids=ids, params={"state": "all"})
    assert (await call("GET", R + "/events", owner, ids=ids, params={"since": "0", "limit": "5"}))["more"]
    await call("GET", R + "/reports/daily", owner, ids=ids, params={"from": "2026-03-07", "to": "2026-03-09"})
    await call("GET", R + "/reports/hourly", owner, ids=ids, params={"date": "2026-03-08"})
    await call("POST", R + "/orders", server, 422, ids=ids, json={"items": [{"menu_item_id": 10**9}]})
    for _ in range(100):  # the webhook's deliveries are queued within a poll
        sent = await call("GET", R + "/webhooks/{webhook_id}/deliveries", owner, ids=ids,
                          params={"limit": "2"})
        if sent["items"]:
            break
        await asyncio.sleep(0.1)
    await call("POST", R + "/webhooks/{webhook_id}/deliveries/{delivery_id}/replay", owner, 202,
               ids={**ids, "delivery_id": sent["items"][0]["id"]})
    await call("DELETE", R + "/webhooks/{webhook_id}", owner, 204, ids=ids)
    await call("POST", "/api/v1/auth/logout", bearer(login["token"]), 204)
    sock = await client.ws_connect(R.format(rid=rid) + "/ws", headers=owner)  # 101, then the protocol
    assert (await sock.receive_json())["type"] == "welcome"
    await sock.close()
    call.seen.add(("GET", R + "/ws"))

    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert documented - call.seen == set()
