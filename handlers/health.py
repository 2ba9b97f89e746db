"""Liveness and database health."""
from __future__ import annotations

import time
from typing import Annotated

import msgspec
from aiohttp import web

from server.auth import MANAGERS, public, requires
from server.cache import KINDS
from server.errors import forbidden, not_found
from server.http import decode, json_response
from server.keys import CACHE, HUB, POOL, PRINCIPAL
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


class CacheNamespace(msgspec.Struct, frozen=True):
    namespace: str  # "r<restaurant id>:<kind>"
    restaurant_id: int
    kind: str
    hits: int
    misses: int
    keys: int  # entries stored now (shared by every instance with Redis)


class CacheHealth(msgspec.Struct, frozen=True):
    backend: str  # "memory" | "redis"
    synced: bool  # False while the last changes are read back after a start or a gap
    hits: int
    misses: int
    hit_ratio: float | None
    errors: int  # backend calls that failed (read through to PostgreSQL)
    namespaces: list[CacheNamespace]


Namespace = Annotated[str, msgspec.Meta(
    pattern=r"^r[0-9]{1,18}(:(" + "|".join(KINDS) + r"))?$",
    description='"r<restaurant id>" for all of its kinds, or "r<restaurant id>:<kind>"')]


class CacheClearIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    namespace: Namespace


class CacheCleared(msgspec.Struct, frozen=True):
    cleared: list[str]


@routes.get("/api/health/cache")
@requires(MANAGERS)
@documented(returns=CacheHealth)
async def cache_health(request: web.Request) -> web.Response:
    """Hits and misses of this process's response cache, for the restaurants you manage."""
    cache = request.app[CACHE]
    mine = sorted(rid for rid, role in request[PRINCIPAL].roles.items() if role in MANAGERS)
    spaces = [CacheNamespace(namespace=f"r{rid}:{kind.name}", restaurant_id=rid, kind=kind.name,
                             hits=cache.hits[rid, kind.name], misses=cache.misses[rid, kind.name],
                             keys=await cache.keys_in(rid, kind))
              for rid in mine for kind in KINDS.values()]
    hits, misses = sum(n.hits for n in spaces), sum(n.misses for n in spaces)
    return json_response(CacheHealth(
        backend=cache.backend_name, synced=cache.synced, hits=hits, misses=misses,
        hit_ratio=round(hits / (hits + misses), 4) if hits + misses else None,
        errors=cache.errors, namespaces=spaces))


@routes.post("/api/health/cache/clear")
@requires({"owner"})
@documented(body=CacheClearIn, returns=CacheCleared)
async def clear_cache(request: web.Request) -> web.Response:
    """Drop a restaurant's cached answers (all kinds, or one); they are read again on next use."""
    body = await decode(request, CacheClearIn)
    rid_text, _, kind = body.namespace[1:].partition(":")
    role = request[PRINCIPAL].roles.get(int(rid_text))
    if role is None:
        raise not_found("no such restaurant")
    if role != "owner":
        raise forbidden("only the restaurant's owner may clear its cache")
    kinds = [KINDS[kind]] if kind else list(KINDS.values())
    for each in kinds:
        await request.app[CACHE].clear(int(rid_text), each)
    return json_response(CacheCleared(cleared=[f"r{rid_text}:{each.name}" for each in kinds]))
