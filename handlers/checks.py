"""Split checks: an order split by items, by seats or evenly, each check paid on its own."""
from __future__ import annotations

from aiohttp import web

from server.auth import SERVERS, requires
from server.http import decode, expected_version, json_response, path_id, written
from server.keys import POOL, RESTAURANT_ID
from server.openapi import documented
from store import checks

routes = web.RouteTableDef()
BASE = "/api/v1/restaurants/{rid}/orders/{order_id}/checks"


@routes.get(BASE)
@requires(SERVERS, scope="read")
@documented(returns=checks.Checks)
async def list_checks(request: web.Request) -> web.Response:
    return json_response(await checks.list_checks(request.app[POOL], request[RESTAURANT_ID],
                                                  path_id(request, "order_id")))


@routes.post(BASE + "/split")
@requires(SERVERS, scope="write")
@documented(body=checks.SplitIn, returns=checks.Checks)
async def split_order(request: web.Request) -> web.Response:
    """Split the order into checks by items, by seats or evenly (replacing an unpaid split).
    Tickets and items are not touched: nothing goes to the kitchen."""
    body = await decode(request, checks.SplitIn)
    return written(*await checks.split(request.app[POOL], request[RESTAURANT_ID],
                                       path_id(request, "order_id"), body,
                                       expected_version(request)))


@routes.post(BASE + "/{check_id}/pay")
@requires(SERVERS, scope="write")
@documented(body=checks.CheckPaymentIn, returns=checks.Checks)
async def pay_check(request: web.Request) -> web.Response:
    """Pay one check; the last one paid closes the order."""
    body = await decode(request, checks.CheckPaymentIn)
    return written(*await checks.pay(request.app[POOL], request[RESTAURANT_ID],
                                     path_id(request, "order_id"), path_id(request, "check_id"),
                                     body, expected_version(request)))
