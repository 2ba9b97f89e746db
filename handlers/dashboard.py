"""The manager's dashboard: today's numbers, and the day hour by hour."""
from __future__ import annotations

from datetime import date

from aiohttp import web

from server.auth import MANAGERS, requires
from server.cache import DASHBOARD
from server.http import query_date
from server.keys import CACHE, POOL, RESTAURANT_ID
from server.openapi import Query, documented
from store import dashboard

routes = web.RouteTableDef()


@routes.get("/api/v1/restaurants/{rid}/dashboard")
@requires(MANAGERS, scope="read")
@documented(returns=dashboard.Dashboard)
async def get_dashboard(request: web.Request) -> web.Response:
    """Cached for at most 30 s (time alone moves "minutes late"); any event refreshes it."""
    rid = request[RESTAURANT_ID]

    async def compute() -> tuple[bytes, int]:
        numbers, seq = await dashboard.today(request.app[POOL], rid)
        return bytes(numbers), seq
    return await request.app[CACHE].answer(request, rid, DASHBOARD, "today", compute)


@routes.get("/api/v1/restaurants/{rid}/dashboard/hourly")
@requires(MANAGERS, scope="read")
@documented(returns=dashboard.Hourly,
            query=(Query("date", date, description="the restaurant's local day (default today)"),))
async def get_hourly(request: web.Request) -> web.Response:
    """Covers seated and ticket times (fire → bump) per hour of the restaurant's day."""
    rid, day = request[RESTAURANT_ID], query_date(request, "date")

    async def compute() -> tuple[bytes, int]:
        hours, seq = await dashboard.hourly(request.app[POOL], rid, day)
        return bytes(hours), seq
    return await request.app[CACHE].answer(request, rid, DASHBOARD, f"hourly:{day or 'today'}",
                                           compute)
