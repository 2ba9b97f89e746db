"""The tenant matrix: every route × each role × another restaurant's credentials."""
from __future__ import annotations

import pytest

from conftest import ROLES, bearer, error_of
from server.app import create_app

ALL = frozenset(ROLES)
MANAGERS = frozenset({"owner", "manager"})

# The documented access of every route under a restaurant (docs/api.md). A new
# route must be added here, or test_every_restaurant_route_is_in_the_matrix fails.
MATRIX: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/api/v1/restaurants/{rid}"): ALL,
    ("GET", "/api/v1/restaurants/{rid}/staff"): MANAGERS,
    ("POST", "/api/v1/restaurants/{rid}/staff"): MANAGERS,
    ("PATCH", "/api/v1/restaurants/{rid}/staff/{user_id}"): MANAGERS,
    ("DELETE", "/api/v1/restaurants/{rid}/staff/{user_id}"): MANAGERS,
    ("GET", "/api/v1/restaurants/{rid}/devices"): MANAGERS,
    ("POST", "/api/v1/restaurants/{rid}/devices"): MANAGERS,
    ("DELETE", "/api/v1/restaurants/{rid}/devices/{device_id}"): MANAGERS,
    ("GET", "/api/v1/restaurants/{rid}/api-keys"): MANAGERS,
    ("POST", "/api/v1/restaurants/{rid}/api-keys"): MANAGERS,
    ("DELETE", "/api/v1/restaurants/{rid}/api-keys/{key_id}"): MANAGERS,
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
    return (path.replace("{rid}", str(rid)).replace("{user_id}", "999999")
            .replace("{device_id}", "999999").replace("{key_id}", "999999"))


@pytest.mark.parametrize("method,path", sorted(MATRIX))
async def test_route_answers_each_role_as_documented(client, tokens, restaurant_ids, method, path):
    rid = restaurant_ids["demo"]
    for role in ROLES:
        response = await client.request(method, concrete(path, rid), headers=bearer(await tokens(role)),
                                        data=b"{}", )
        if role in MATRIX[method, path]:
            assert response.status not in (401, 403, 404) or (
                response.status == 404 and "{" in path.removeprefix("/api/v1/restaurants/{rid}")), \
                (role, response.status, await response.text())
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
