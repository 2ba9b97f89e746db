"""The manager's dashboard: today's numbers, and the day hour by hour."""
from __future__ import annotations

from datetime import date

from aiohttp import web

from server.auth import MANAGERS, requires
from server.http import json_response, query_date, seq_headers
from server.keys import POOL, RESTAURANT_ID
from server.openapi import Query, documented
from store import dashboard

routes = web.RouteTableDef()


@routes.get("/api/v1/restaurants/{rid}/dashboard")
@requires(MANAGERS, scope="read")
@documented(returns=dashboard.Dashboard)
async def get_dashboard(request: web.Request) -> web.Response:
    numbers, seq = await dashboard.today(request.app[POOL], request[RESTAURANT_ID])
    return json_response(numbers, headers=seq_headers(seq))


@routes.get("/api/v1/restaurants/{rid}/dashboard/hourly")
@requires(MANAGERS, scope="read")
@documented(returns=dashboard.Hourly,
            query=(Query("date", date, description="the restaurant's local day (default today)"),))
async def get_hourly(request: web.Request) -> web.Response:
    """Covers seated and ticket times (fire → bump) per hour of the restaurant's day."""
    hours, seq = await dashboard.hourly(request.app[POOL], request[RESTAURANT_ID],
                                        query_date(request, "date"))
    return json_response(hours, headers=seq_headers(seq))
