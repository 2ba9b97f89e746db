"""Liveness and database health."""
from __future__ import annotations

import time

from aiohttp import web

from server.auth import MANAGERS, public, requires
from server.http import json_response
from server.keys import POOL

routes = web.RouteTableDef()


@routes.get("/api/health")
@public
async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/api/health/db")
@requires(MANAGERS)
async def database_health(request: web.Request) -> web.Response:
    pool = request.app[POOL]
    started = time.perf_counter()
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
        round_trip_ms = (time.perf_counter() - started) * 1000
        version = conn.get_server_version()
    size, idle = pool.get_size(), pool.get_idle_size()
    return json_response({
        "status": "ok",
        "round_trip_ms": round(round_trip_ms, 3),
        "server_version": f"{version.major}.{version.minor}",
        "pool": {"size": size, "idle": idle, "in_use": size - idle,
                 "min": pool.get_min_size(), "max": pool.get_max_size()},
    })
