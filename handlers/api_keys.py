"""API keys for integrations: created by a manager, shown once, revocable."""
from __future__ import annotations

import msgspec
from aiohttp import web

from server.auth import MANAGERS, requires
from server.http import after_id, decode, page_limit, page_response, path_id, written
from server.keys import POOL, PRINCIPAL, RESTAURANT_ID
from server.openapi import PAGING, Page, documented
from store import api_keys

routes = web.RouteTableDef()


class ApiKeyOut(msgspec.Struct, frozen=True):
    api_key: api_keys.ApiKey


@routes.get("/api/v1/restaurants/{rid}/api-keys")
@requires(MANAGERS)
@documented(returns=Page[api_keys.ApiKey], query=PAGING)
async def list_keys(request: web.Request) -> web.Response:
    page, seq = await api_keys.list_keys(request.app[POOL], request[RESTAURANT_ID], page_limit(request),
                                        after_id(request))
    return page_response(page, seq)


@routes.post("/api/v1/restaurants/{rid}/api-keys")
@requires(MANAGERS)
@documented(body=api_keys.ApiKeyIn, returns=api_keys.CreatedApiKey, status=201)
async def create_key(request: web.Request) -> web.Response:
    body = await decode(request, api_keys.ApiKeyIn)
    created, seq = await api_keys.create(request.app[POOL], request[RESTAURANT_ID], body,
                                    request[PRINCIPAL].user_id)
    return written(created, seq, 201)


@routes.delete("/api/v1/restaurants/{rid}/api-keys/{key_id}")
@requires(MANAGERS)
@documented(returns=ApiKeyOut)
async def revoke_key(request: web.Request) -> web.Response:
    key, seq = await api_keys.revoke(request.app[POOL], request[RESTAURANT_ID],
                                path_id(request, "key_id"))
    return written(ApiKeyOut(api_key=key), seq)
