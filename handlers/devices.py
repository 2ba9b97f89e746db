"""Devices (iPads, screens): registered by a manager, each with its own revocable token."""
from __future__ import annotations

import msgspec
from aiohttp import web

from server.auth import MANAGERS, requires
from server.http import (
    after_id,
    decode,
    expected_version,
    page_limit,
    page_response,
    path_id,
    written,
)
from server.keys import POOL, PRINCIPAL, RESTAURANT_ID
from server.openapi import PAGING, Page, documented
from store import devices

routes = web.RouteTableDef()


class DeviceOut(msgspec.Struct, frozen=True):
    device: devices.Device


@routes.get("/api/v1/restaurants/{rid}/devices")
@requires(MANAGERS)
@documented(returns=Page[devices.Device], query=PAGING)
async def list_devices(request: web.Request) -> web.Response:
    page, seq = await devices.list_devices(request.app[POOL], request[RESTAURANT_ID], page_limit(request),
                                          after_id(request))
    return page_response(page, seq)


@routes.post("/api/v1/restaurants/{rid}/devices")
@requires(MANAGERS)
@documented(body=devices.DeviceIn, returns=devices.RegisteredDevice, status=201)
async def register_device(request: web.Request) -> web.Response:
    body = await decode(request, devices.DeviceIn)
    registered, seq = await devices.register(request.app[POOL], request[RESTAURANT_ID], body,
                                        request[PRINCIPAL].user_id)
    return written(registered, seq, 201)


@routes.delete("/api/v1/restaurants/{rid}/devices/{device_id}")
@requires(MANAGERS)
@documented(returns=DeviceOut)
async def revoke_device(request: web.Request) -> web.Response:
    device, seq = await devices.revoke(request.app[POOL], request[RESTAURANT_ID],
                                  path_id(request, "device_id"))
    return written(DeviceOut(device=device), seq)


@routes.patch("/api/v1/restaurants/{rid}/devices/{device_id}")
@requires(MANAGERS)
@documented(body=devices.DevicePatch, returns=DeviceOut)
async def patch_device(request: web.Request) -> web.Response:
    """Rename a device, or mark it expected during service."""
    body = await decode(request, devices.DevicePatch)
    device, seq = await devices.patch(request.app[POOL], request[RESTAURANT_ID],
                                      path_id(request, "device_id"), body,
                                      expected_version(request))
    return written(DeviceOut(device=device), seq)
