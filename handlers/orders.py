"""Orders: create with items, add items, fire courses, void and serve items, close with payment."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import web

from server.auth import SERVERS, requires
from server.http import (
    SEQ_HEADER,
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
from server.idempotency import answers_in_store, key_of, replay
from server.keys import POOL, PRINCIPAL, RESTAURANT_ID
from server.openapi import PAGING, Page, Query, documented
from store import firing, order_edits, order_entry, orders, table_merges
from store.idempotency import Stored
from store.order_entry import Key

routes = web.RouteTableDef()
BASE = "/api/v1/restaurants/{rid}/orders"
# Kept with an order's first answer under its Idempotency-Key, beside its seq.
KEPT = order_entry.Answer(headers={"Content-Type": "application/json"}, seq_header=SEQ_HEADER)


@routes.get(BASE)
@requires(SERVERS, scope="read")
@documented(returns=Page[orders.Order],
            query=PAGING + (Query("status", Literal["open", "closed"]), Query("table_id", int)))
async def list_orders(request: web.Request) -> web.Response:
    page, seq = await orders.list_orders(
        request.app[POOL], request[RESTAURANT_ID], page_limit(request), after_id(request),
        query_choice(request, "status", ("open", "closed")), query_int(request, "table_id"))
    return page_response(page, seq)


@routes.post(BASE)
@requires(SERVERS, scope="write")
@documented(body=orders.OrderIn, returns=orders.Order, status=201)
@answers_in_store
async def create_order(request: web.Request) -> web.Response:
    key = await key_of(request)
    body = await decode(request, orders.OrderIn)
    return _answer(key, await order_edits.create_order(
        request.app[POOL], request[RESTAURANT_ID], request[PRINCIPAL].user_id, body, key, KEPT), 201)


def _answer(key: Key | None, outcome: order_entry.Outcome, status: int = 200) -> web.Response:
    """The written order, or the first answer to a retried request."""
    if isinstance(outcome, Stored):
        assert key is not None
        return replay(outcome, key.fingerprint)
    return written(*outcome, status)


@routes.get(BASE + "/{order_id}")
@requires(SERVERS, scope="read")
@documented(returns=orders.Order)
async def get_order(request: web.Request) -> web.Response:
    return json_response(await orders.get_order(request.app[POOL], request[RESTAURANT_ID],
                                                path_id(request, "order_id")))


@routes.post(BASE + "/{order_id}/items")
@requires(SERVERS, scope="write")
@documented(body=orders.AddItemsIn, returns=orders.Order)
@answers_in_store
async def add_items(request: web.Request) -> web.Response:
    key = await key_of(request)
    body = await decode(request, orders.AddItemsIn)
    return _answer(key, await order_entry.add_items(
        request.app[POOL], request[RESTAURANT_ID], path_id(request, "order_id"), body,
        expected_version(request), key, KEPT))


@routes.post(BASE + "/{order_id}/fire")
@requires(SERVERS, scope="write")
@documented(body=orders.FireIn, returns=orders.Order, body_required=False)
@answers_in_store
async def fire_course(request: web.Request) -> web.Response:
    key = await key_of(request)
    body = await decode(request, orders.FireIn) if request.body_exists else orders.FireIn()
    return _answer(key, await order_entry.fire(
        request.app[POOL], request[RESTAURANT_ID], path_id(request, "order_id"), body.course,
        expected_version(request), key, KEPT))


# Courses held and fired by hand (a held course sends nothing until it is fired by hand).
@routes.post(BASE + "/{order_id}/courses/{course}/hold")
@requires(SERVERS, scope="write")
@documented(returns=orders.Order)
@answers_in_store
async def hold_course(request: web.Request) -> web.Response:
    return await _by_hand(request, firing.hold_course)


@routes.post(BASE + "/{order_id}/courses/{course}/fire")
@requires(SERVERS, scope="write")
@documented(returns=orders.Order)
@answers_in_store
async def fire_course_by_hand(request: web.Request) -> web.Response:
    return await _by_hand(request, firing.fire_course)


async def _by_hand(request: web.Request, change: Callable[..., Awaitable[order_entry.Outcome]]
                   ) -> web.Response:
    key = await key_of(request)
    return _answer(key, await change(
        request.app[POOL], request[RESTAURANT_ID], path_id(request, "order_id"),
        path_id(request, "course"), expected_version(request), key, KEPT))


@routes.post(BASE + "/{order_id}/items/{item_id}/void")
@requires(SERVERS, scope="write")
@documented(body=orders.VoidIn, returns=orders.Order, body_required=False)
async def void_item(request: web.Request) -> web.Response:
    body = await decode(request, orders.VoidIn) if request.body_exists else orders.VoidIn()
    return written(*await orders.void_item(request.app[POOL], request[RESTAURANT_ID],
                                           path_id(request, "order_id"), path_id(request, "item_id"),
                                           body.reason, expected_version(request)))


@routes.post(BASE + "/{order_id}/items/{item_id}/serve")
@requires(SERVERS, scope="write")
@documented(returns=orders.Order)
async def serve_item(request: web.Request) -> web.Response:
    return written(*await orders.serve_item(request.app[POOL], request[RESTAURANT_ID],
                                            path_id(request, "order_id"),
                                            path_id(request, "item_id"), expected_version(request)))


@routes.post(BASE + "/{order_id}/close")
@requires(SERVERS, scope="write")
@documented(body=orders.CloseIn, returns=orders.Order)
async def close_order(request: web.Request) -> web.Response:
    body = await decode(request, orders.CloseIn)
    return written(*await orders.close(request.app[POOL], request[RESTAURANT_ID],
                                       path_id(request, "order_id"), body.payment,
                                       expected_version(request)))


# Edits of a taken order (store/order_edits.py).


@routes.patch(BASE + "/{order_id}/items/{item_id}")
@requires(SERVERS, scope="write")
@documented(body=order_edits.ItemPatch, returns=orders.Order)
async def patch_order_item(request: web.Request) -> web.Response:
    """Change a line's qty, note, course or seat; If-Match names the line's version."""
    body = await decode(request, order_edits.ItemPatch)
    return written(*await order_edits.patch_item(
        request.app[POOL], request[RESTAURANT_ID], path_id(request, "order_id"),
        path_id(request, "item_id"), body, expected_version(request)))


# Orders and lines moved to another table or order (store/table_merges.py) ------------------


@routes.post(BASE + "/{order_id}/transfer")
@requires(SERVERS, scope="write")
@documented(body=table_merges.TransferIn, returns=orders.Order)
async def transfer_order(request: web.Request) -> web.Response:
    """The order goes to another table (free, or seated without an open order). Its tickets
    stay as they are: nothing goes to the kitchen again."""
    body = await decode(request, table_merges.TransferIn)
    return written(*await table_merges.transfer_order(
        request.app[POOL], request[RESTAURANT_ID], path_id(request, "order_id"), body,
        expected_version(request)))


@routes.post(BASE + "/{order_id}/items/transfer")
@requires(SERVERS, scope="write")
@documented(body=table_merges.ItemsTransferIn, returns=table_merges.ItemsTransferred)
async def transfer_items(request: web.Request) -> web.Response:
    """Lines move to another open order, keeping their tickets and statuses (If-Match: this
    order's version)."""
    body = await decode(request, table_merges.ItemsTransferIn)
    return written(*await table_merges.transfer_items(
        request.app[POOL], request[RESTAURANT_ID], path_id(request, "order_id"), body,
        expected_version(request)))
