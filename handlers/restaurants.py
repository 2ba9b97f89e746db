"""The restaurant itself: settings and its event position (epoch, seq)."""
from __future__ import annotations

from functools import partial

import asyncpg
import msgspec
from aiohttp import web

from server.auth import MANAGERS, requires
from server.cache import SETTINGS
from server.http import decode, encode, expected_version, json_response, written
from server.keys import CACHE, POOL, RESTAURANT_ID, ROLE
from server.openapi import documented
from store import restaurants

routes = web.RouteTableDef()


class RestaurantOut(msgspec.Struct, frozen=True):
    restaurant: restaurants.Restaurant
    role: str  # the caller's role here


@routes.get("/api/v1/restaurants/{rid}")
@requires(scope="read")
@documented(returns=RestaurantOut)
async def get_restaurant(request: web.Request) -> web.Response:
    restaurant = await restaurants.get(request.app[POOL], request[RESTAURANT_ID])
    return json_response(RestaurantOut(restaurant=restaurant, role=request[ROLE]))


@routes.get("/api/v1/restaurants/{rid}/settings")
@requires(scope="read")
@documented(returns=restaurants.SettingsOut)
async def get_settings(request: web.Request) -> web.Response:
    """Name, time zone, currency and settings: what every screen reads at start (cached, ETag)."""
    rid = request[RESTAURANT_ID]
    return await request.app[CACHE].answer(request, rid, SETTINGS, "",
                                           partial(settings_body, request.app[POOL], rid))


async def settings_body(pool: asyncpg.Pool, rid: int) -> tuple[bytes, int]:
    restaurant = await restaurants.get(pool, rid)
    return encode(restaurants.SettingsOut(
        name=restaurant.name, timezone=restaurant.timezone, currency=restaurant.currency,
        settings=restaurant.settings, version=restaurant.version)), restaurant.seq


@routes.patch("/api/v1/restaurants/{rid}")
@requires(MANAGERS)
@documented(body=restaurants.RestaurantPatch, returns=RestaurantOut)
async def patch_restaurant(request: web.Request) -> web.Response:
    body = await decode(request, restaurants.RestaurantPatch)
    restaurant, seq = await restaurants.patch(request.app[POOL], request[RESTAURANT_ID], body,
                                              expected_version(request))
    return written(RestaurantOut(restaurant=restaurant, role=request[ROLE]), seq)
