"""The manager's dashboard numbers for today."""
from __future__ import annotations

from aiohttp import web

from server.auth import MANAGERS, requires
from server.http import json_response, seq_headers
from server.keys import POOL, RESTAURANT_ID
from server.openapi import documented
from store import dashboard

routes = web.RouteTableDef()


@routes.get("/api/v1/restaurants/{rid}/dashboard")
@requires(MANAGERS, scope="read")
@documented(returns=dashboard.Dashboard)
async def get_dashboard(request: web.Request) -> web.Response:
    numbers, seq = await dashboard.today(request.app[POOL], request[RESTAURANT_ID])
    return json_response(numbers, headers=seq_headers(seq))
