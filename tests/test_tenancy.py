"""The tenant matrix: every route × each role × another restaurant's credentials."""
from __future__ import annotations

import pytest
from conftest import ROLES, bearer, error_of

from server.app import create_app

ALL = frozenset(ROLES)
MANAGERS = frozenset({"owner", "manager"})
FRONT = MANAGERS | {"host", "server"}
HOSTS = MANAGERS | {"host"}
SERVERS = MANAGERS | {"server"}
KITCHEN = MANAGERS | {"kitchen"}
TICKETS = KITCHEN | {"server"}
R = "/api/v1/restaurants/{rid}"

# The documented access of every route under a restaurant (docs/api.md). A new
# route must be added here, or test_every_restaurant_route_is_in_the_matrix fails.
MATRIX: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/api/v1/restaurants/{rid}"): ALL,
    ("PATCH", "/api/v1/restaurants/{rid}"): MANAGERS,
    ("GET", R + "/settings"): ALL,
    ("GET", R + "/areas"): FRONT,
    ("POST", R + "/areas"): MANAGERS,
    ("GET", R + "/tables"): FRONT,
    ("POST", R + "/tables"): MANAGERS,
    ("GET", R + "/tables/{table_id}"): FRONT,
    ("PATCH", R + "/tables/{table_id}"): MANAGERS,
    ("POST", R + "/tables/{table_id}/status"): FRONT,
    ("POST", R + "/tables/{table_id}/move"): FRONT,
    ("GET", R + "/waitlist"): FRONT,
    ("POST", R + "/waitlist"): HOSTS,
    ("GET", R + "/waitlist/estimate"): FRONT,
    ("GET", R + "/waitlist/{party_id}"): FRONT,
    ("PATCH", R + "/waitlist/{party_id}"): HOSTS,
    ("POST", R + "/waitlist/{party_id}/notify"): HOSTS,
    ("POST", R + "/waitlist/{party_id}/seat"): HOSTS,
    ("POST", R + "/waitlist/{party_id}/leave"): HOSTS,
    ("GET", R + "/reservations"): FRONT,
    ("POST", R + "/reservations"): HOSTS,
    ("GET", R + "/reservations/{reservation_id}"): FRONT,
    ("PATCH", R + "/reservations/{reservation_id}"): HOSTS,
    ("POST", R + "/reservations/{reservation_id}/status"): HOSTS,
    ("POST", R + "/reservations/{reservation_id}/seat"): HOSTS,
    ("GET", R + "/availability"): FRONT,
    ("GET", R + "/menu"): ALL,
    ("POST", R + "/menu/categories"): MANAGERS,
    ("POST", R + "/menu/items"): MANAGERS,
    ("PATCH", R + "/menu/items/{item_id}"): MANAGERS,
    ("POST", R + "/menu/items/{item_id}/availability"): KITCHEN,
    ("GET", R + "/orders"): SERVERS,
    ("POST", R + "/orders"): SERVERS,
    ("GET", R + "/orders/{order_id}"): SERVERS,
    ("POST", R + "/orders/{order_id}/items"): SERVERS,
    ("POST", R + "/orders/{order_id}/fire"): SERVERS,
    ("POST", R + "/orders/{order_id}/items/{item_id}/void"): SERVERS,
    ("POST", R + "/orders/{order_id}/items/{item_id}/serve"): SERVERS,
    ("POST", R + "/orders/{order_id}/close"): SERVERS,
    ("GET", R + "/kitchen/tickets"): TICKETS,
    ("GET", R + "/kitchen/expo"): TICKETS,
    ("POST", R + "/kitchen/tickets/{ticket_id}/start"): KITCHEN,
    ("POST", R + "/kitchen/tickets/{ticket_id}/bump"): KITCHEN,
    ("POST", R + "/kitchen/tickets/{ticket_id}/recall"): KITCHEN,
    ("POST", R + "/kitchen/tickets/{ticket_id}/items/{item_id}/ready"): KITCHEN,
    ("GET", R + "/dashboard"): MANAGERS,
    ("GET", R + "/alerts"): MANAGERS,
    ("GET", R + "/dashboard/hourly"): MANAGERS,
    ("GET", R + "/ops"): MANAGERS,
    ("GET", R + "/ws"): ALL,
    ("GET", R + "/events"): MANAGERS,
    ("GET", R + "/reports/daily"): MANAGERS,
    ("GET", R + "/reports/hourly"): MANAGERS,
    ("GET", "/api/v1/restaurants/{rid}/staff"): MANAGERS,
    ("POST", "/api/v1/restaurants/{rid}/staff"): MANAGERS,
    ("PATCH", "/api/v1/restaurants/{rid}/staff/{user_id}"): MANAGERS,
    ("DELETE", "/api/v1/restaurants/{rid}/staff/{user_id}"): MANAGERS,
    ("GET", "/api/v1/restaurants/{rid}/devices"): MANAGERS,
    ("POST", "/api/v1/restaurants/{rid}/devices"): MANAGERS,
    ("DELETE", "/api/v1/restaurants/{rid}/devices/{device_id}"): MANAGERS,
    ("PATCH", "/api/v1/restaurants/{rid}/devices/{device_id}"): MANAGERS,
    ("POST", "/api/v1/restaurants/{rid}/devices/pair"): MANAGERS,
    ("GET", "/api/v1/restaurants/{rid}/api-keys"): MANAGERS,
    ("POST", "/api/v1/restaurants/{rid}/api-keys"): MANAGERS,
    ("DELETE", "/api/v1/restaurants/{rid}/api-keys/{key_id}"): MANAGERS,
    ("GET", R + "/webhooks"): MANAGERS,
    ("POST", R + "/webhooks"): MANAGERS,
    ("GET", R + "/webhooks/{webhook_id}"): MANAGERS,
    ("PATCH", R + "/webhooks/{webhook_id}"): MANAGERS,
    ("DELETE", R + "/webhooks/{webhook_id}"): MANAGERS,
    ("POST", R + "/webhooks/{webhook_id}/rotate-secret"): MANAGERS,
    ("GET", R + "/webhooks/{webhook_id}/deliveries"): MANAGERS,
    ("POST", R + "/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"): MANAGERS,
}


def restaurant_routes() -> set[tuple[str, str]]:
    app = create_app_for_listing()
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path.startswith("/api/v1/restaurants/{rid}") and route.method != "HEAD":
            found.add((route.method, path))
    return found


def create_app_for_listing():
    from server.config import Config
    return create_app(Config(database_url="postgresql://unused/none"))


def test_every_restaurant_route_is_in_the_matrix():
    assert restaurant_routes() == set(MATRIX)


def concrete(path: str, rid: int) -> str:
    # Ids of things that do not exist: access is decided before the resource is looked up.
    path = path.replace("{rid}", str(rid))
    for name in ("user_id", "device_id", "key_id", "webhook_id", "delivery_id", "table_id",
                 "party_id", "reservation_id", "item_id", "order_id", "ticket_id"):
        path = path.replace("{" + name + "}", "999999")
    return path + ("?size=2&date=2030-01-01" if path.endswith(("/estimate", "/availability")) else "")


@pytest.mark.parametrize("method,path", sorted(MATRIX))
async def test_route_answers_each_role_as_documented(client, tokens, restaurant_ids, method, path):
    rid = restaurant_ids["demo"]
    for role in ROLES:
        response = await client.request(method, concrete(path, rid), headers=bearer(await tokens(role)),
                                        data=b"{}")
        if role in MATRIX[method, path]:
            # Allowed: whatever the answer (422 for the empty body, 404 for the made-up id),
            # it is not a refusal of the caller.
            assert response.status not in (401, 403), (role, response.status, await response.text())
            if response.status == 404:
                assert "{" in path.removeprefix(R), (role, await response.text())
        else:
            assert response.status == 403, (role, await response.text())
            assert (await error_of(response))["code"] == "forbidden"


@pytest.mark.parametrize("method,path", sorted(MATRIX))
async def test_another_restaurants_credentials_get_404_without_a_hint(client, tokens, restaurant_ids,
                                                                     method, path):
    rid = restaurant_ids["demo"]
    for role in ROLES:
        response = await client.request(method, concrete(path, rid),
                                        headers=bearer(await tokens(role, "other")), data=b"{}")
        assert response.status == 404, (role, await response.text())
        error = await error_of(response)
        assert error["code"] == "not_found"
    # The same answer as for a restaurant that does not exist at all.
    missing = await client.request(method, concrete(path, 987654), headers=bearer(await tokens("owner")),
                                   data=b"{}")
    assert missing.status == 404
    assert (await error_of(missing)) == error


async def test_non_numeric_restaurant_id_is_not_found(client, tokens):
    response = await client.get("/api/v1/restaurants/demo", headers=bearer(await tokens("owner")))
    assert response.status == 404


async def test_health_db_is_for_managers_of_any_restaurant(client, tokens):
    for role in ROLES:
        response = await client.get("/api/health/db", headers=bearer(await tokens(role)))
        assert response.status == (200 if role in MANAGERS else 403), role
    assert (await client.get("/api/health/db")).status == 401
    assert (await client.get("/api/health")).status == 200


def key_scope(method: str, path: str) -> str | None:
    """The scope an API key needs for a route (None: keys never reach it), as docs/api.md says."""
    if path.endswith("/ws") or path.endswith("/events"):
        return "events"
    if any(part in path for part in ("/staff", "/devices", "/api-keys", "/webhooks", "/ops")) \
            or path == R:
        return "read" if (method, path) == ("GET", R) else None
    return "read" if method == "GET" else "write"


async def test_api_keys_reach_each_route_only_with_its_scope(client, tokens, rid):
    owner = bearer(await tokens("owner"))
    keys = {}
    for scope in ("read", "write"):
        response = await client.post(f"{R.replace('{rid}', str(rid))}/api-keys", headers=owner,
                                     json={"name": scope, "scopes": [scope]})
        keys[scope] = bearer((await response.json())["key"])
    for method, path in sorted(MATRIX):
        needed = key_scope(method, path)
        for scope, headers in keys.items():
            response = await client.request(method, concrete(path, rid), headers=headers, data=b"{}")
            if scope == needed:
                assert response.status not in (401, 403), (method, path, scope, await response.text())
            else:
                assert response.status == 403, (method, path, scope, response.status)
