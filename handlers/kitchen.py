"""Kitchen tickets: open tickets per station in fire order; start, bump, recall; item ready;
the tickets bumped within the recall window."""
from __future__ import annotations

from datetime import datetime

from aiohttp import web

from server.auth import KITCHEN, TICKET_READERS, requires
from server.errors import ApiError
from server.http import (
    after_id,
    expected_version,
    page_limit,
    page_response,
    path_id,
    written,
)
from server.keys import POOL, RESTAURANT_ID
from server.openapi import PAGING, Page, Query, documented
from store import kitchen
from store.pages import Key, decode_cursor

routes = web.RouteTableDef()
BASE = "/api/v1/restaurants/{rid}/kitchen/tickets"


def _station(request: web.Request) -> str | None:
    station = request.query.get("station")
    if station is not None and not (station.isidentifier() and station.islower() and len(station) <= 31):
        raise ApiError(400, "invalid_query", "station must be a station name like grill",
                       [{"path": "query.station", "message": "not a station name"}])
    return station


@routes.get(BASE)
@requires(TICKET_READERS, scope="read")
@documented(returns=Page[kitchen.Ticket], query=PAGING + (Query("station", str),))
async def list_tickets(request: web.Request) -> web.Response:
    page, seq = await kitchen.list_open(request.app[POOL], request[RESTAURANT_ID],
                                        page_limit(request), after_id(request), _station(request))
    return page_response(page, seq)


@routes.get(BASE + "/recent")
@requires(TICKET_READERS, scope="read")
@documented(returns=Page[kitchen.Ticket], query=PAGING + (Query("station", str),))
async def recent_tickets(request: web.Request) -> web.Response:
    """Tickets bumped within the restaurant's recall_minutes, newest first."""
    cursor = request.query.get("cursor")
    page, seq = await kitchen.recently_bumped(
        request.app[POOL], request[RESTAURANT_ID], page_limit(request),
        decode_cursor(cursor, tuple[datetime, Key]) if cursor else None, _station(request))
    return page_response(page, seq)


@routes.get("/api/v1/restaurants/{rid}/kitchen/expo")
@requires(TICKET_READERS, scope="read")
@documented(returns=Page[kitchen.AtThePass], query=PAGING)
async def expo(request: web.Request) -> web.Response:
    """Orders at the pass: all their tickets bumped, food waiting to go out."""
    page, seq = await kitchen.at_the_pass(request.app[POOL], request[RESTAURANT_ID],
                                          page_limit(request), after_id(request))
    return page_response(page, seq)


async def _step(request: web.Request, action: str) -> web.Response:
    return written(*await kitchen.step(request.app[POOL], request[RESTAURANT_ID],
                                       path_id(request, "ticket_id"), action,
                                       expected_version(request)))


@routes.post(BASE + "/{ticket_id}/start")
@requires(KITCHEN, scope="write")
@documented(returns=kitchen.Ticket)
async def start_ticket(request: web.Request) -> web.Response:
    return await _step(request, "start")


@routes.post(BASE + "/{ticket_id}/bump")
@requires(KITCHEN, scope="write")
@documented(returns=kitchen.Ticket)
async def bump_ticket(request: web.Request) -> web.Response:
    return await _step(request, "bump")


@routes.post(BASE + "/{ticket_id}/recall")
@requires(KITCHEN, scope="write")
@documented(returns=kitchen.Ticket)
async def recall_ticket(request: web.Request) -> web.Response:
    """Back on the screen: any ticket bumped within the restaurant's recall_minutes."""
    return await _step(request, "recall")


@routes.post(BASE + "/{ticket_id}/items/{item_id}/ready")
@requires(KITCHEN, scope="write")
@documented(returns=kitchen.Ticket)
async def item_ready(request: web.Request) -> web.Response:
    return written(*await kitchen.item_ready(request.app[POOL], request[RESTAURANT_ID],
                                             path_id(request, "ticket_id"),
                                             path_id(request, "item_id")))
