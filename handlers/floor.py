"""The floor: areas, tables and table status."""
from __future__ import annotations

from aiohttp import web

from server.auth import FRONT_OF_HOUSE, MANAGERS, requires
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
from server.openapi import PAGING, Page, Query, documented
from store import floor, table_merges

routes = web.RouteTableDef()
BASE = "/api/v1/restaurants/{rid}"
STATUSES = ("free", "seated", "ordering", "waiting_food", "eating", "paying", "dirty", "blocked")


@routes.get(BASE + "/areas")
@requires(FRONT_OF_HOUSE, scope="read")
@documented(returns=Page[floor.Area], query=PAGING)
async def list_areas(request: web.Request) -> web.Response:
    page, seq = await floor.list_areas(request.app[POOL], request[RESTAURANT_ID],
                                       page_limit(request), after_id(request))
    return page_response(page, seq)


@routes.post(BASE + "/areas")
@requires(MANAGERS, scope="write")
@documented(body=floor.AreaIn, returns=floor.Area, status=201)
async def create_area(request: web.Request) -> web.Response:
    body = await decode(request, floor.AreaIn)
    return written(*await floor.create_area(request.app[POOL], request[RESTAURANT_ID], body), 201)


@routes.get(BASE + "/tables")
@requires(FRONT_OF_HOUSE, scope="read")
@documented(returns=Page[floor.Table],
            query=PAGING + (Query("area_id", int), Query("status", floor.TableStatus)))
async def list_tables(request: web.Request) -> web.Response:
    page, seq = await floor.list_tables(
        request.app[POOL], request[RESTAURANT_ID], page_limit(request), after_id(request),
        query_int(request, "area_id"), query_choice(request, "status", STATUSES))
    return page_response(page, seq)


@routes.post(BASE + "/tables")
@requires(MANAGERS, scope="write")
@documented(body=floor.TableIn, returns=floor.Table, status=201)
async def create_table(request: web.Request) -> web.Response:
    body = await decode(request, floor.TableIn)
    return written(*await floor.create_table(request.app[POOL], request[RESTAURANT_ID], body), 201)


@routes.get(BASE + "/tables/{table_id}")
@requires(FRONT_OF_HOUSE, scope="read")
@documented(returns=floor.Table)
async def get_table(request: web.Request) -> web.Response:
    return json_response(await floor.get_table(request.app[POOL], request[RESTAURANT_ID],
                                               path_id(request, "table_id")))


@routes.patch(BASE + "/tables/{table_id}")
@requires(MANAGERS, scope="write")
@documented(body=floor.TablePatch, returns=floor.Table)
async def patch_table(request: web.Request) -> web.Response:
    body = await decode(request, floor.TablePatch)
    return written(*await floor.patch_table(request.app[POOL], request[RESTAURANT_ID],
                                            path_id(request, "table_id"), body,
                                            expected_version(request)))


@routes.post(BASE + "/tables/{table_id}/status")
@requires(FRONT_OF_HOUSE, scope="write")
@documented(body=floor.StatusIn, returns=floor.Table)
async def set_table_status(request: web.Request) -> web.Response:
    body = await decode(request, floor.StatusIn)
    return written(*await floor.set_status(request.app[POOL], request[RESTAURANT_ID],
                                           path_id(request, "table_id"), body,
                                           expected_version(request)))


@routes.post(BASE + "/tables/{table_id}/move")
@requires(FRONT_OF_HOUSE, scope="write")
@documented(body=floor.MoveIn, returns=floor.Moved)
async def move_party(request: web.Request) -> web.Response:
    """The party at this table moves to a free table with its open orders; this table is left
    dirty. The kitchen is not told again: tickets stay as they are."""
    body = await decode(request, floor.MoveIn)
    return written(*await floor.move_party(request.app[POOL], request[RESTAURANT_ID],
                                           path_id(request, "table_id"), body,
                                           expected_version(request)))


# Merged tables (store/table_merges.py) -----------------------------------------------------


@routes.post(BASE + "/tables/{table_id}/merge")
@requires(FRONT_OF_HOUSE, scope="write")
@documented(body=table_merges.MergeIn, returns=table_merges.Merged)
async def merge_tables(request: web.Request) -> web.Response:
    """Other tables join the party at this table: they take its status and their open orders'
    lines move into its order. No ticket is written: the kitchen is not told again."""
    body = await decode(request, table_merges.MergeIn)
    return written(*await table_merges.merge(request.app[POOL], request[RESTAURANT_ID],
                                             path_id(request, "table_id"), body,
                                             expected_version(request)))


@routes.post(BASE + "/tables/{table_id}/unmerge")
@requires(FRONT_OF_HOUSE, scope="write")
@documented(returns=table_merges.Merged)
async def unmerge_tables(request: web.Request) -> web.Response:
    """The tables merged into this one leave its party, dirty; its order stays here."""
    return written(*await table_merges.unmerge(request.app[POOL], request[RESTAURANT_ID],
                                               path_id(request, "table_id"),
                                               expected_version(request)))
