"""The menu: the whole tree in one read, categories, items, and 86'ing."""
from __future__ import annotations

from aiohttp import web

from server.auth import ANY_ROLE, KITCHEN, MANAGERS, requires
from server.http import decode, expected_version, json_response, path_id, seq_headers, written
from server.keys import POOL, RESTAURANT_ID
from server.openapi import documented
from store import menu

routes = web.RouteTableDef()
BASE = "/api/v1/restaurants/{rid}/menu"


@routes.get(BASE)
@requires(ANY_ROLE, scope="read")
@documented(returns=menu.Menu)
async def get_menu(request: web.Request) -> web.Response:
    tree, seq = await menu.get_menu(request.app[POOL], request[RESTAURANT_ID])
    return json_response(tree, headers=seq_headers(seq))


@routes.post(BASE + "/categories")
@requires(MANAGERS, scope="write")
@documented(body=menu.CategoryIn, returns=menu.Category, status=201)
async def create_category(request: web.Request) -> web.Response:
    body = await decode(request, menu.CategoryIn)
    return written(*await menu.create_category(request.app[POOL], request[RESTAURANT_ID], body), 201)


@routes.post(BASE + "/items")
@requires(MANAGERS, scope="write")
@documented(body=menu.ItemIn, returns=menu.Item, status=201)
async def create_item(request: web.Request) -> web.Response:
    body = await decode(request, menu.ItemIn)
    return written(*await menu.create_item(request.app[POOL], request[RESTAURANT_ID], body), 201)


@routes.patch(BASE + "/items/{item_id}")
@requires(MANAGERS, scope="write")
@documented(body=menu.ItemPatch, returns=menu.Item)
async def patch_item(request: web.Request) -> web.Response:
    body = await decode(request, menu.ItemPatch)
    return written(*await menu.patch_item(request.app[POOL], request[RESTAURANT_ID],
                                          path_id(request, "item_id"), body,
                                          expected_version(request)))


@routes.post(BASE + "/items/{item_id}/availability")
@requires(KITCHEN, scope="write")
@documented(body=menu.AvailabilityIn, returns=menu.Item)
async def set_availability(request: web.Request) -> web.Response:
    body = await decode(request, menu.AvailabilityIn)
    return written(*await menu.set_availability(request.app[POOL], request[RESTAURANT_ID],
                                                path_id(request, "item_id"), body.available,
                                                expected_version(request)))
