"""Liveness and database health."""
from __future__ import annotations

import time

import msgspec
from aiohttp import web

from server.auth import MANAGERS, public, requires
from server.http import json_response
from server.keys import HUB, POOL
from server.openapi import documented

routes = web.RouteTableDef()


class HealthOut(msgspec.Struct, frozen=True):
    status: str


class PoolStats(msgspec.Struct, frozen=True):
    size: int
    idle: int
    in_use: int
    min: int
    max: int


class DatabaseHealth(msgspec.Struct, frozen=True):
    status: str
    round_trip_ms: float
    server_version: str
    pool: PoolStats


@routes.get("/api/health")
@public
@documented(returns=HealthOut)
async def health(request: web.Request) -> web.Response:
    return json_response(HealthOut(status="ok"))


@routes.get("/api/health/db")
@requires(MANAGERS)
@documented(returns=DatabaseHealth)
async def database_health(request: web.Request) -> web.Response:
    pool = request.app[POOL]
    started = time.perf_counter()
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
        round_trip_ms = (time.perf_counter() - started) * 1000
        version = conn.get_server_version()
    size, idle = pool.get_size(), pool.get_idle_size()
    return json_response(DatabaseHealth(
        status="ok", round_trip_ms=round(round_trip_ms, 3),
        server_version=f"{version.major}.{version.minor}",
        pool=PoolStats(size=size, idle=idle, in_use=size - idle, min=pool.get_min_size(),
                       max=pool.get_max_size())))


class RealtimeHealth(msgspec.Struct, frozen=True):
    rooms: int
    connections: int
    delivered: int  # event deliveries to sockets since start
    stale_closed: int  # peers closed for missing pongs
    slow_closed: int  # peers closed with 4000 for falling behind
    listen_reconnects: int


@routes.get("/api/health/realtime")
@requires(MANAGERS)
@documented(returns=RealtimeHealth)
async def realtime_health(request: web.Request) -> web.Response:
    """This process's rooms, sockets and why sockets were closed."""
    hub = request.app[HUB]
    return json_response(RealtimeHealth(
        rooms=len(hub.rooms), connections=sum(len(r.connections) for r in hub.rooms.values()),
        **hub.stats))
