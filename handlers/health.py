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
from server.keys import CACHE, CONFIG, HUB, POOL, PRINCIPAL, QUERY_LOG, READS
from server.metrics import (
    METRICS,
    CachePerf,
    LagPerf,
    PoolPerf,
    ProcessPerf,
    RoutePerf,
    SocketPerf,
    cache_report,
    pool_report,
    socket_report,
)
from server.openapi import documented
from server.querylog import QueryPattern, unrecorded
from store import diagnostics

routes = web.RouteTableDef()


class HealthOut(msgspec.Struct, frozen=True):
    status: str


class PoolStats(msgspec.Struct, frozen=True):
    size: int
    idle: int
    in_use: int
    min: int
    max: int


class ReplicaHealth(msgspec.Struct, frozen=True):
    name: str  # host:port/database
    up: bool  # reachable, as of the last probe or read
    lag_seconds: float | None  # as of the last probe (each second); None while down
    usable: bool  # up and no further behind than read_max_lag_seconds
    served: int  # reads answered here since start
    failed: int  # reads that failed here and were answered by the primary


class ReadsHealth(msgspec.Struct, frozen=True):
    """The reads that may use a replica (menu on a cache miss, reports, availability, events)."""
    by_replicas: int
    by_primary: dict[str, int]  # why: no_replica, min_seq (a replica behind it), replica_error
    replica_share: float | None  # of those reads, since start
    replicas: list[ReplicaHealth]


class DatabaseHealth(msgspec.Struct, frozen=True):
    status: str
    round_trip_ms: float
    server_version: str
    pool: PoolStats
    reads: ReadsHealth


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
                       max=pool.get_max_size()),
        reads=reads_health(request)))


def reads_health(request: web.Request) -> ReadsHealth:
    reads = request.app[READS]
    by_replicas, by_primary = reads.served_by_replicas, dict(reads.on_primary)
    total = by_replicas + sum(by_primary.values())
    return ReadsHealth(
        by_replicas=by_replicas, by_primary=by_primary,
        replica_share=round(by_replicas / total, 4) if total and reads.replicas else None,
        replicas=[ReplicaHealth(name=r.name, up=r.up, lag_seconds=r.lag_seconds,
                                usable=r.usable(reads.max_lag), served=r.served, failed=r.failed)
                  for r in reads.replicas])


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


class QueryPerf(msgspec.Struct, frozen=True):
    slow_ms: float  # the slow_query_ms setting
    critical_ms: float  # the critical_query_ms setting
    statements: int  # since start
    slow: int
    critical: int
    patterns: list[QueryPattern]  # the 20 that took the most time in total
    suggestions: list[diagnostics.SeqScan]  # from the plans of the slow ones among them
    notes: list[str]
    pg_stat_statements: diagnostics.StatementStatsReport


class PerformanceOut(msgspec.Struct, frozen=True):
    routes: list[RoutePerf]
    queries: QueryPerf
    pool: PoolPerf
    cache: CachePerf
    websockets: SocketPerf
    event_lag: LagPerf
    process: ProcessPerf


@routes.get("/api/health/performance")
@requires(MANAGERS)
@documented(returns=PerformanceOut)
async def performance(request: web.Request) -> web.Response:
    """This process: route percentiles, SQL patterns and plan advice, pool, cache, sockets, lag, CPU."""
    app, query_log = request.app, request.app[QUERY_LOG]
    suggestions, notes = await query_log.suggestions(app[POOL])
    if not app[CONFIG].query_stats:
        notes.append("query_stats is off: no statement patterns are kept")
    with unrecorded():
        async with app[POOL].acquire() as conn:
            statement_stats = await diagnostics.statement_stats(conn)
    managed = [rid for rid, role in request[PRINCIPAL].roles.items() if role in MANAGERS]
    metrics = app[METRICS]
    return json_response(PerformanceOut(
        routes=metrics.route_report(),
        queries=QueryPerf(slow_ms=query_log.slow_ms, critical_ms=query_log.critical_ms,
                          statements=query_log.statements, slow=query_log.slow,
                          critical=query_log.critical, patterns=query_log.top(20),
                          suggestions=suggestions, notes=notes, pg_stat_statements=statement_stats),
        pool=pool_report(app[POOL]), cache=cache_report(app), websockets=socket_report(app, managed),
        event_lag=metrics.lag_report(), process=metrics.process_report()))
