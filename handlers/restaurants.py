"""The restaurant itself: settings and its event position (epoch, seq)."""
from __future__ import annotations

from aiohttp import web

from server.auth import requires
from server.http import json_response
from server.keys import POOL, RESTAURANT_ID, ROLE
from store import restaurants

routes = web.RouteTableDef()


@routes.get("/api/v1/restaurants/{rid}")
@requires(scope="read")
async def get_restaurant(request: web.Request) -> web.Response:
    restaurant = await restaurants.get(request.app[POOL], request[RESTAURANT_ID])
    return json_response({"restaurant": restaurant, "role": request[ROLE]})
