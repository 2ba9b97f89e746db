"""The ops page and its numbers: sockets, event delivery, LISTEN, the pool, the outbox,
request and SQL speed, event lag, CPU and memory.

Sockets, delivery, the outbox and the cache are this restaurant's; the pool, the
LISTEN connection, request and SQL timings, event lag and the process belong to
the server process that answers (with several workers, each answers for itself).
The page and the API share one gathering function.
"""
from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import asyncpg
import msgspec
import psutil
from aiohttp import web

from handlers.pages import WHOLE_LIST, _screen_principal
from server.auth import MANAGERS, public, requires
from server.cache import KINDS
from server.http import json_response
from server.keys import CACHE, CONFIG, HUB, POOL, QUERY_LOG, RESTAURANT_ID
from server.metrics import (
    METRICS,
    CachePerf,
    LagPerf,
    Metrics,
    PoolPerf,
    RoutePerf,
    pool_report,
)
from server.openapi import documented
from server.realtime.hub import Hub
from store import devices, diagnostics, events, restaurants

routes = web.RouteTableDef()
BEHIND_WARN_SECONDS = 5.0  # an event undelivered this long is trouble, not a commit in flight
POLL_MS = 5000  # how often the page asks again (static/js/ops.js reads it from the page)
ROUTES_SHOWN = 10  # the slowest route templates by p99
PATTERNS_SHOWN = 8  # the SQL patterns that took the most time

Concern = Literal["pool_waiting", "delivery_behind", "listen_down"]


class Connections(msgspec.Struct, frozen=True):
    restaurant: int  # this restaurant's subscribed sockets on this process
    process: int  # every restaurant's, on this process
    devices: int  # of this restaurant's, those signed in with a device token
    by_role: dict[str, int]


class Delivery(msgspec.Struct, frozen=True):
    seq: int  # the restaurant's last committed event
    delivered: int | None  # the last one this process handed to its sockets (None: no sockets here)
    behind: int  # events committed and not yet handed to the sockets
    waiting_seconds: float | None  # how long the oldest of those has waited (from its transaction)
    delay_p95_ms: float | None  # write → frame on the sockets, p95 of this process's last minute


class Listener(msgspec.Struct, frozen=True):
    up: bool  # the LISTEN connection is open: commits wake the rooms at once
    reconnects: int  # times it was lost and reopened since the process started


class Outbox(msgspec.Struct, frozen=True):
    events_kept: int  # this restaurant's events still replayable
    oldest_seq: int | None
    oldest_at: datetime | None
    retention_hours: float


class DeviceBehind(msgspec.Struct, frozen=True):
    id: int
    name: str
    role: str
    online: bool
    alert: str | None
    lag: int  # events the device has not acknowledged (receipts are written every few seconds)


class Process(msgspec.Struct, frozen=True):
    pid: int
    started_at: datetime
    uptime_seconds: float
    cpu_percent: float  # since the last reading (this answer's or the performance report's); 100: a core
    cpu_seconds: float  # user + system since the start
    rss_bytes: int


class Requests(msgspec.Struct, frozen=True):
    p95_ms: float | None  # every request this process answered in the last minute (None: none)
    routes: list[RoutePerf]  # the 10 route templates with the highest p99, highest first


class SqlPattern(msgspec.Struct, frozen=True):
    pattern: str  # the statement with literals as `?`; parameters stay `$n`
    calls: int
    total_ms: float
    p50_ms: float  # of the last 128 calls
    p95_ms: float
    max_ms: float
    slow: int  # calls at or over slow_query_ms


class Queries(msgspec.Struct, frozen=True):
    slow_ms: float  # the slow_query_ms setting
    statements: int  # since the start
    slow: int
    patterns: list[SqlPattern]  # the 8 that took the most time in total, most first
    suggestions: list[diagnostics.SeqScan]  # sequential scans in the plans of the slow ones
    notes: list[str]


class Ops(msgspec.Struct, frozen=True):
    restaurant_id: int
    at: datetime
    concerns: list[Concern]  # what the page flags: a waiting pool, late events, LISTEN down
    connections: Connections
    delivery: Delivery
    listener: Listener
    pool: PoolPerf
    outbox: Outbox
    devices_behind: list[DeviceBehind]
    process: Process
    requests: Requests
    queries: Queries
    event_lag: LagPerf  # commit → sockets, the last 1024 events delivered by this process
    cache: CachePerf  # this restaurant's cached answers on this process


async def _event_written_at(pool: asyncpg.Pool, restaurant_id: int, seq: int) -> datetime | None:
    """When event `seq` was written (None once it is past retention)."""
    rows = await events.read_after(pool, restaurant_id, seq - 1, 1)
    return rows[0]["at"] if rows else None


def _connections(hub: Hub, restaurant_id: int) -> Connections:
    room = hub.rooms.get(restaurant_id)
    sockets = list(room.connections) if room is not None else []
    return Connections(
        restaurant=len(sockets), process=sum(len(r.connections) for r in hub.rooms.values()),
        devices=sum(conn.device_id is not None for conn in sockets),
        by_role=dict(sorted(Counter(conn.role for conn in sockets).items())))


async def _delivery(app: web.Application, restaurant_id: int, seq: int, now: datetime) -> Delivery:
    """How far this process's sockets trail the log; `seq` must be read before the room."""
    room = app[HUB].rooms.get(restaurant_id)
    delay = app[METRICS].p95_ms_since(60, lags=True)
    if room is None or room.delivered >= seq:
        return Delivery(seq=seq, delivered=None if room is None else room.delivered, behind=0, waiting_seconds=None,
                        delay_p95_ms=delay)
    delivered = room.delivered
    written = await _event_written_at(app[POOL], restaurant_id, delivered + 1)
    waiting = None if written is None else round(max((now - written).total_seconds(), 0.0), 1)
    return Delivery(seq=seq, delivered=delivered, behind=seq - delivered, waiting_seconds=waiting,
                    delay_p95_ms=delay)


async def _outbox(pool: asyncpg.Pool, restaurant_id: int, seq: int, oldest: int | None,
                  retention_hours: float) -> Outbox:
    if oldest is None:
        return Outbox(events_kept=0, oldest_seq=None, oldest_at=None,
                      retention_hours=retention_hours)
    return Outbox(events_kept=seq - oldest + 1, oldest_seq=oldest,
                  oldest_at=await _event_written_at(pool, restaurant_id, oldest),
                  retention_hours=retention_hours)


async def _devices_behind(pool: asyncpg.Pool, restaurant_id: int) -> list[DeviceBehind]:
    """Live devices with unacknowledged events, furthest behind first."""
    listed, _ = await devices.list_devices(pool, restaurant_id, WHOLE_LIST, 0)
    behind = [DeviceBehind(id=d.id, name=d.name, role=d.role, online=d.online, alert=d.alert,
                           lag=d.lag)
              for d in msgspec.json.decode(listed.items, type=list[devices.Device])
              if d.revoked_at is None and d.lag > 0]
    return sorted(behind, key=lambda d: -d.lag)


def _process(metrics: Metrics) -> Process:
    perf = metrics.process_report()
    started = psutil.Process().create_time()
    return Process(pid=perf.pid, started_at=datetime.fromtimestamp(started, UTC),
                   uptime_seconds=round(time.time() - started, 1), cpu_percent=perf.cpu_percent,
                   cpu_seconds=round(perf.cpu_user_seconds + perf.cpu_system_seconds, 3),
                   rss_bytes=perf.rss_bytes)


def _requests(metrics: Metrics) -> Requests:
    slowest = sorted(metrics.route_report(), key=lambda r: r.p99_ms, reverse=True)
    return Requests(p95_ms=metrics.p95_ms_since(60), routes=slowest[:ROUTES_SHOWN])


async def _queries(app: web.Application) -> Queries:
    """The SQL patterns that took the most time, and the plan advice for the slow ones."""
    query_log = app[QUERY_LOG]
    suggestions, notes = await query_log.suggestions(app[POOL])
    if not app[CONFIG].query_stats:
        notes.append("query_stats is off: no statement patterns are kept")
    patterns = [SqlPattern(pattern=p.pattern, calls=p.calls, total_ms=p.total_ms, p50_ms=p.p50_ms,
                           p95_ms=p.p95_ms, max_ms=p.max_ms, slow=p.slow)
                for p in query_log.top(PATTERNS_SHOWN)]
    return Queries(slow_ms=query_log.slow_ms, statements=query_log.statements, slow=query_log.slow,
                   patterns=patterns, suggestions=suggestions, notes=notes)


def _cache(app: web.Application, restaurant_id: int) -> CachePerf:
    cache = app[CACHE]
    hits = sum(cache.hits[restaurant_id, kind] for kind in KINDS)
    misses = sum(cache.misses[restaurant_id, kind] for kind in KINDS)
    return CachePerf(hits=hits, misses=misses,
                     hit_ratio=round(hits / (hits + misses), 4) if hits + misses else None)


def _concerns(pool: PoolPerf, delivery: Delivery, listener: Listener) -> list[Concern]:
    concerns: list[Concern] = []
    if pool.waiters:
        concerns.append("pool_waiting")
    if delivery.waiting_seconds is not None and delivery.waiting_seconds >= BEHIND_WARN_SECONDS:
        concerns.append("delivery_behind")
    if not listener.up:
        concerns.append("listen_down")
    return concerns


async def ops_of(app: web.Application, restaurant_id: int) -> Ops:
    """Gather the restaurant's ops figures from the hub, the pool, the event log and the metrics."""
    pool, hub = app[POOL], app[HUB]
    now = datetime.now(UTC)
    where = await events.position(pool, restaurant_id)
    delivery = await _delivery(app, restaurant_id, where["seq"], now)
    outbox = await _outbox(pool, restaurant_id, where["seq"], where["oldest"],
                           app[CONFIG].event_retention_hours)
    behind = await _devices_behind(pool, restaurant_id)
    queries = await _queries(app)
    usage = pool_report(pool)  # after our own queries, so they do not count as in use
    listener = Listener(up=hub.listening, reconnects=hub.stats["listen_reconnects"])
    metrics = app[METRICS]
    return Ops(restaurant_id=restaurant_id, at=now, concerns=_concerns(usage, delivery, listener),
               connections=_connections(hub, restaurant_id), delivery=delivery, listener=listener,
               pool=usage, outbox=outbox, devices_behind=behind, process=_process(metrics),
               requests=_requests(metrics), queries=queries, event_lag=metrics.lag_report(),
               cache=_cache(app, restaurant_id))


@routes.get("/api/v1/restaurants/{rid}/ops")
@requires(MANAGERS)
@documented(returns=Ops)
async def get_ops(request: web.Request) -> web.Response:
    """This process's sockets, event delivery, LISTEN, pool, outbox, speed and uptime for the restaurant."""
    return json_response(await ops_of(request.app, request[RESTAURANT_ID]))


@routes.get("/r/{slug}/ops")
@public  # a screen: signed in by the session cookie (handlers/pages.py)
@aiohttp_jinja2.template("ops.html")
async def ops_screen(request: web.Request) -> dict[str, Any]:
    """The ops page, rendered with the API's figures and refreshed by static/js/ops.js."""
    principal, rid, _ = await _screen_principal(request, request.match_info["slug"], MANAGERS)
    restaurant = await restaurants.get(request.app[POOL], rid)
    return {"restaurant": restaurant, "user": principal.name, "ops": await ops_of(request.app, rid),
            "zone": ZoneInfo(restaurant.timezone), "warn_seconds": BEHIND_WARN_SECONDS,
            "poll_ms": POLL_MS}
