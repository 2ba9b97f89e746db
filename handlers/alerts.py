"""Alerts of a restaurant: what is wrong now, and what was."""
from __future__ import annotations

from aiohttp import web

from server.auth import MANAGERS, requires
from server.http import after_id, page_limit, page_response, query_choice
from server.keys import POOL, RESTAURANT_ID
from server.openapi import PAGING, Page, Query, documented
from store import alerts

routes = web.RouteTableDef()


@routes.get("/api/v1/restaurants/{rid}/alerts")
@requires(MANAGERS, scope="read")
@documented(returns=Page[alerts.Alert],
            query=(*PAGING, Query("state", str, description='"open" (default) or "all", newest first')))
async def list_alerts(request: web.Request) -> web.Response:
    """Open alerts (late tickets, dark screens, a slow instance), or all of them, newest first."""
    state = query_choice(request, "state", ("open", "all"), default="open")
    page, seq = await alerts.list_alerts(request.app[POOL], request[RESTAURANT_ID], page_limit(request),
                                        after_id(request), state == "open")
    return page_response(page, seq)
