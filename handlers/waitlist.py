"""The waitlist: add parties, tell them their table is ready, seat them, or see them leave; wait estimates."""
from __future__ import annotations

from typing import Literal

from aiohttp import web

from server.auth import FRONT_OF_HOUSE, HOSTS, requires
from server.http import (
    after_id,
    decode,
    expected_version,
    json_response,
    page_limit,
    page_response,
    path_id,
    query_choice,
    query_int,
    written,
)
from server.keys import POOL, RESTAURANT_ID
from server.notify import notify_guest
from server.openapi import PAGING, Page, Query, documented
from store import wait_estimate, waitlist

routes = web.RouteTableDef()
BASE = "/api/v1/restaurants/{rid}/waitlist"
FILTERS = ("open", "all", "waiting", "notified", "seated", "left", "no_show")
Filter = Literal["open", "all", "waiting", "notified", "seated", "left", "no_show"]


@routes.get(BASE)
@requires(FRONT_OF_HOUSE, scope="read")
@documented(returns=Page[waitlist.Party],
            query=PAGING + (Query("status", Filter, description="open (default), all, or one status"),))
async def list_parties(request: web.Request) -> web.Response:
    page, seq = await waitlist.list_parties(request.app[POOL], request[RESTAURANT_ID],
                                            page_limit(request), after_id(request),
                                            query_choice(request, "status", FILTERS, "open"))
    return page_response(page, seq)


@routes.post(BASE)
@requires(HOSTS, scope="write")
@documented(body=waitlist.PartyIn, returns=waitlist.Party, status=201)
async def add_party(request: web.Request) -> web.Response:
    body = await decode(request, waitlist.PartyIn)
    return written(*await waitlist.add(request.app[POOL], request[RESTAURANT_ID], body), 201)


@routes.get(BASE + "/estimate")
@requires(FRONT_OF_HOUSE, scope="read")
@documented(returns=wait_estimate.Estimate, query=(Query("size", int, required=True),))
async def estimate(request: web.Request) -> web.Response:
    size = query_int(request, "size", low=1, high=100, required=True)
    return json_response(await wait_estimate.estimate(request.app[POOL], request[RESTAURANT_ID], size))


@routes.get(BASE + "/{party_id}")
@requires(FRONT_OF_HOUSE, scope="read")
@documented(returns=waitlist.Party)
async def get_party(request: web.Request) -> web.Response:
    return json_response(await waitlist.get_party(request.app[POOL], request[RESTAURANT_ID],
                                                  path_id(request, "party_id")))


@routes.patch(BASE + "/{party_id}")
@requires(HOSTS, scope="write")
@documented(body=waitlist.PartyPatch, returns=waitlist.Party)
async def patch_party(request: web.Request) -> web.Response:
    body = await decode(request, waitlist.PartyPatch)
    return written(*await waitlist.patch(request.app[POOL], request[RESTAURANT_ID],
                                         path_id(request, "party_id"), body,
                                         expected_version(request)))


@routes.post(BASE + "/{party_id}/notify")
@requires(HOSTS, scope="write")
@documented(returns=waitlist.Party)
async def notify_party(request: web.Request) -> web.Response:
    """Tell the party their table is ready (again, if already told), through the notifier."""
    return written(*await notify_guest(request.app, request[RESTAURANT_ID],
                                       path_id(request, "party_id"), expected_version(request)))


@routes.post(BASE + "/{party_id}/seat")
@requires(HOSTS, scope="write")
@documented(body=waitlist.SeatIn, returns=waitlist.Party, body_required=False)
async def seat_party(request: web.Request) -> web.Response:
    body = await decode(request, waitlist.SeatIn) if request.body_exists else waitlist.SeatIn()
    return written(*await waitlist.seat(request.app[POOL], request[RESTAURANT_ID],
                                        path_id(request, "party_id"), body.table_id,
                                        expected_version(request)))


@routes.post(BASE + "/{party_id}/leave")
@requires(HOSTS, scope="write")
@documented(body=waitlist.LeaveIn, returns=waitlist.Party, body_required=False)
async def party_left(request: web.Request) -> web.Response:
    body = await decode(request, waitlist.LeaveIn) if request.body_exists else waitlist.LeaveIn()
    return written(*await waitlist.move(request.app[POOL], request[RESTAURANT_ID],
                                        path_id(request, "party_id"),
                                        "no_show" if body.no_show else "left",
                                        expected_version(request)))
