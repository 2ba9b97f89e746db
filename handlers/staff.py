"""The restaurant's staff and their roles."""
from __future__ import annotations

import msgspec
from aiohttp import web

from server.auth import MANAGERS, requires
from server.http import (
    after_id,
    decode,
    page_limit,
    page_response,
    path_id,
    seq_headers,
    written,
)
from server.keys import PASSWORDS, POOL, RESTAURANT_ID, ROLE
from server.openapi import PAGING, Page, documented
from store import staff

routes = web.RouteTableDef()


class StaffMemberOut(msgspec.Struct, frozen=True):
    staff_member: staff.StaffMember


@routes.get("/api/v1/restaurants/{rid}/staff")
@requires(MANAGERS)
@documented(returns=Page[staff.StaffMember], query=PAGING)
async def list_staff(request: web.Request) -> web.Response:
    page, seq = await staff.list_staff(request.app[POOL], request[RESTAURANT_ID], page_limit(request),
                                      after_id(request))
    return page_response(page, seq)


@routes.post("/api/v1/restaurants/{rid}/staff")
@requires(MANAGERS)
@documented(body=staff.StaffIn, returns=StaffMemberOut, status=201)
async def add_staff(request: web.Request) -> web.Response:
    body = await decode(request, staff.StaffIn)
    staff.check_grant(request[ROLE], body.role)  # refuse before spending a password hash
    password_hash = await request.app[PASSWORDS].hash(body.password) if body.password else None
    member, seq = await staff.add(request.app[POOL], request[RESTAURANT_ID], request[ROLE], body,
                             password_hash)
    return written(StaffMemberOut(staff_member=member), seq, 201)


@routes.patch("/api/v1/restaurants/{rid}/staff/{user_id}")
@requires(MANAGERS)
@documented(body=staff.RoleIn, returns=StaffMemberOut)
async def change_role(request: web.Request) -> web.Response:
    user_id = path_id(request, "user_id")
    body = await decode(request, staff.RoleIn)
    member, seq = await staff.change_role(request.app[POOL], request[RESTAURANT_ID], request[ROLE],
                                     user_id, body.role)
    return written(StaffMemberOut(staff_member=member), seq)


@routes.delete("/api/v1/restaurants/{rid}/staff/{user_id}")
@requires(MANAGERS)
@documented(status=204)
async def remove_staff(request: web.Request) -> web.Response:
    seq = await staff.remove(request.app[POOL], request[RESTAURANT_ID], request[ROLE],
                             path_id(request, "user_id"))
    return web.Response(status=204, headers=seq_headers(seq))
