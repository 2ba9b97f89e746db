"""The menu: the whole tree in one read, categories, items, and 86'ing."""
from __future__ import annotations

from functools import partial

import asyncpg
from aiohttp import web

from server.auth import ANY_ROLE, KITCHEN, MANAGERS, requires
from server.cache import MENU, min_seq
from server.http import decode, expected_version, path_id, written
from server.keys import CACHE, POOL, READS, RESTAURANT_ID
from server.openapi import documented
from store import menu

routes = web.RouteTableDef()
BASE = "/api/v1/restaurants/{rid}/menu"


@routes.get(BASE)
@requires(ANY_ROLE, scope="read")
@documented(returns=menu.Menu)
async def get_menu(request: web.Request) -> web.Response:
    """The whole tree, from the response cache (ETag; 304 on If-None-Match); a miss is read
    on a replica when one is usable."""
    rid = request[RESTAURANT_ID]
    cache, reads = request.app[CACHE], request.app[READS]
    # At least as new as the last change the cache knows of, or the answer could not be kept.
    least = max(min_seq(request), cache.last_change(rid, MENU))
    return await cache.answer(
        request, rid, MENU, "", lambda: reads.run(partial(menu_body, rid=rid), least))


async def menu_body(pool: asyncpg.Pool, rid: int) -> tuple[bytes, int]:
    tree, seq = await menu.get_menu(pool, rid)
    return bytes(tree), seq


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
