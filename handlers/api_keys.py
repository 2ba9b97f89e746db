"""API keys for integrations: created by a manager, shown once, revocable."""
from __future__ import annotations

from aiohttp import web

from server.auth import MANAGERS, requires
from server.http import decode, json_response, path_id
from server.keys import POOL, PRINCIPAL, RESTAURANT_ID
from store import api_keys

routes = web.RouteTableDef()


@routes.get("/api/v1/restaurants/{rid}/api-keys")
@requires(MANAGERS)
async def list_keys(request: web.Request) -> web.Response:
    return json_response({"api_keys": await api_keys.list_keys(request.app[POOL],
                                                               request[RESTAURANT_ID])})


@routes.post("/api/v1/restaurants/{rid}/api-keys")
@requires(MANAGERS)
async def create_key(request: web.Request) -> web.Response:
    body = await decode(request, api_keys.ApiKeyIn)
    created = await api_keys.create(request.app[POOL], request[RESTAURANT_ID], body,
                                    request[PRINCIPAL].user_id)
    return json_response(created, status=201)


@routes.delete("/api/v1/restaurants/{rid}/api-keys/{key_id}")
@requires(MANAGERS)
async def revoke_key(request: web.Request) -> web.Response:
    key = await api_keys.revoke(request.app[POOL], request[RESTAURANT_ID],
                                path_id(request, "key_id"))
    return json_response({"api_key": key})
