"""Prometheus metrics at /metrics, and the figures behind GET /api/health/performance.

Each app has a registry of its own (tests run several apps in one process). Requests
are timed by a middleware, labelled by route template (never the raw path) and
status; socket, pool, cache and SQL figures are read where they live (hub, pool,
cache, query log) by a collector at scrape time, so nothing is counted twice and the
hot paths only bump an integer. Event lag is the hub's: from an event's `at` to the
moment its frame is handed to the sockets.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import TYPE_CHECKING

import asyncpg
import msgspec
import psutil
from aiohttp import hdrs, web
from prometheus_client import (
    CollectorRegistry,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from server.alerts import Figures
from server.auth import Handler, public
from server.config import Config
from server.errors import forbidden, unauthorized
from server.keys import CACHE, CONFIG, HUB, POOL, QUERY_LOG, READS
from server.querylog import RING, QueryLog, percentile
from store.replicas import Reads

if TYPE_CHECKING:
    from server.cache import ResponseCache
    from server.realtime.hub import Hub

LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LAG_SAMPLES = 1024  # recent event lags kept for the performance report and alerts
RECENT_REQUESTS = 4096  # recent request times (any route) kept for the alert rules
UNMATCHED = "<unmatched>"  # every unknown path is one label
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SIGN_IN_ROUTES = frozenset({("POST", "/api/v1/auth/login"), ("POST", "/login")})
LOGIN_FAILURES = {401: "wrong_password", 429: "refused"}
CLIENT_CLOSED = 499  # the client went away before the answer (nginx's code for it)

routes = web.RouteTableDef()


class RouteStats:
    __slots__ = ("calls", "errors", "recent")

    def __init__(self) -> None:
        self.calls = self.errors = 0
        self.recent = [0.0] * RING


# The performance report's parts ------------------------------------------------

class RoutePerf(msgspec.Struct, frozen=True):
    method: str
    route: str  # the route template, e.g. /api/v1/restaurants/{rid}/orders
    calls: int
    errors: int  # answers with a 5xx status
    p50_ms: float  # of the last 128 calls
    p95_ms: float
    p99_ms: float
    max_ms: float


class PoolPerf(msgspec.Struct, frozen=True):
    size: int
    idle: int
    in_use: int
    min: int
    max: int
    waiters: int | None  # tasks waiting for a connection; None if asyncpg no longer tells


class CachePerf(msgspec.Struct, frozen=True):
    hits: int
    misses: int
    hit_ratio: float | None


class RoomPerf(msgspec.Struct, frozen=True):
    restaurant_id: int
    connections: int


class SocketPerf(msgspec.Struct, frozen=True):
    connections: int  # this process, every restaurant
    rooms: int
    restaurants: list[RoomPerf]  # the restaurants you manage
    delivered: int
    slow_closed: int
    stale_closed: int


class LagPerf(msgspec.Struct, frozen=True):
    samples: int  # recent events delivered (the last 1024 at most)
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None


class ProcessPerf(msgspec.Struct, frozen=True):
    pid: int
    cpu_percent: float  # since the previous report (or the start), 100 = one core
    cpu_user_seconds: float
    cpu_system_seconds: float
    rss_bytes: int
    threads: int
    uptime_seconds: float


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class Metrics:
    """This app's registry, the request and lag instruments, and the reports built from them."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "serveline_http_request_duration_seconds",
            "Time from the request reaching the app to its answer, by route template and status",
            ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.lag = Histogram(
            "serveline_event_lag_seconds",
            "From an event's `at` (its transaction's start) to its frame handed to the sockets",
            buckets=LAG_BUCKETS, registry=self.registry)
        ProcessCollector(registry=self.registry)
        self.in_flight = 0
        self.login_failures: Counter[str] = Counter()
        self.routes: dict[tuple[str, str], RouteStats] = {}
        self.recent: deque[tuple[float, float]] = deque(maxlen=RECENT_REQUESTS)  # (when, seconds)
        self.lags: deque[tuple[float, float]] = deque(maxlen=LAG_SAMPLES)  # (when, seconds)
        self._children: dict[tuple[str, str, int], Histogram] = {}  # labelled once, reused
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first reading starts the interval

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.latency.labels(method, route, str(status))
        child.observe(seconds)
        stats = self.routes.get((method, route))
        if stats is None:
            stats = self.routes[method, route] = RouteStats()
        stats.recent[stats.calls % RING] = seconds
        self.recent.append((time.monotonic(), seconds))
        stats.calls += 1
        if status >= 500:
            stats.errors += 1
        if status in LOGIN_FAILURES and (method, route) in SIGN_IN_ROUTES:
            self.login_failures[LOGIN_FAILURES[status]] += 1

    def observe_lag(self, seconds: float) -> None:
        self.lag.observe(seconds)
        self.lags.append((time.monotonic(), seconds))

    # Reports ----------------------------------------------------------------

    def route_report(self) -> list[RoutePerf]:
        report = []
        for (method, route), stats in sorted(self.routes.items(), key=lambda kv: kv[0][::-1]):
            ordered = sorted(stats.recent[:min(stats.calls, RING)])
            report.append(RoutePerf(
                method=method, route=route, calls=stats.calls, errors=stats.errors,
                p50_ms=_ms(percentile(ordered, 0.5)), p95_ms=_ms(percentile(ordered, 0.95)),
                p99_ms=_ms(percentile(ordered, 0.99)), max_ms=_ms(ordered[-1])))
        return report

    def lag_report(self) -> LagPerf:
        if not self.lags:
            return LagPerf(samples=0, p50_ms=None, p95_ms=None, max_ms=None)
        ordered = sorted(lag for _when, lag in self.lags)
        return LagPerf(samples=len(ordered), p50_ms=_ms(percentile(ordered, 0.5)),
                       p95_ms=_ms(percentile(ordered, 0.95)), max_ms=_ms(ordered[-1]))

    def p95_ms_since(self, seconds: float, lags: bool = False) -> float | None:
        """p95 of the requests (or event lags) of the last `seconds`; None if there were none."""
        since = time.monotonic() - seconds
        ordered = sorted(took for when, took in (self.lags if lags else self.recent) if when >= since)
        return _ms(percentile(ordered, 0.95)) if ordered else None

    def process_report(self) -> ProcessPerf:
        proc = self._process
        with proc.oneshot():
            times = proc.cpu_times()
            return ProcessPerf(
                pid=proc.pid, cpu_percent=round(proc.cpu_percent(None), 1),
                cpu_user_seconds=round(times.user, 3), cpu_system_seconds=round(times.system, 3),
                rss_bytes=proc.memory_info().rss, threads=proc.num_threads(),
                uptime_seconds=round(time.time() - proc.create_time(), 1))


METRICS: web.AppKey[Metrics] = web.AppKey("metrics")


def pool_waiters(pool: asyncpg.Pool) -> int | None:
    """Tasks waiting in `pool.acquire()` for a free connection.

    asyncpg has no public count. Its pool hands connections out through an
    asyncio.Queue (`pool._queue`), whose waiting getters are that count: reading it
    at scrape time costs nothing per request and changes no behaviour, where wrapping
    `acquire` would tax every statement. If a release renames these, we report None.
    """
    getters = getattr(getattr(pool, "_queue", None), "_getters", None)
    if getters is None:
        return None
    return sum(1 for waiter in getters if not waiter.done())


def pool_report(pool: asyncpg.Pool) -> PoolPerf:
    size, idle = pool.get_size(), pool.get_idle_size()
    return PoolPerf(size=size, idle=idle, in_use=size - idle, min=pool.get_min_size(),
                    max=pool.get_max_size(), waiters=pool_waiters(pool))


def alert_figures(app: web.Application) -> Figures:
    """This instance's last minute, for the alert rules (`server.alerts.watching`)."""
    metrics = app[METRICS]
    return Figures(p95_ms=metrics.p95_ms_since(60), pool_waiters=pool_waiters(app[POOL]) or 0,
                   event_lag_p95_ms=metrics.p95_ms_since(60, lags=True))


def cache_report(app: web.Application) -> CachePerf:
    cache = app[CACHE]
    hits, misses = sum(cache.hits.values()), sum(cache.misses.values())
    return CachePerf(hits=hits, misses=misses,
                     hit_ratio=round(hits / (hits + misses), 4) if hits + misses else None)


def socket_report(app: web.Application, restaurant_ids: Iterable[int]) -> SocketPerf:
    hub = app[HUB]
    return SocketPerf(
        connections=sum(len(room.connections) for room in hub.rooms.values()), rooms=len(hub.rooms),
        restaurants=[RoomPerf(restaurant_id=rid, connections=len(hub.rooms[rid].connections)
                              if rid in hub.rooms else 0) for rid in sorted(restaurant_ids)],
        delivered=hub.stats["delivered"], slow_closed=hub.stats["slow_closed"],
        stale_closed=hub.stats["stale_closed"])


class AppCollector(Collector):
    """Figures that live elsewhere (hub, pool, cache, query log), read when Prometheus scrapes."""

    def __init__(self, app: web.Application, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    def collect(self) -> Iterable[Metric]:
        app, metrics = self.app, self.metrics
        yield GaugeMetricFamily("serveline_http_requests_in_flight",
                                "Requests being answered now (sockets not included)",
                                value=metrics.in_flight)
        failures = CounterMetricFamily("serveline_login_failures",
                                       "Failed sign-ins: wrong email or password, or refused (429)",
                                       labels=["reason"])
        for reason in LOGIN_FAILURES.values():
            failures.add_metric([reason], metrics.login_failures[reason])
        yield failures
        if HUB in app:
            yield from _hub_families(app[HUB])
        if POOL in app:
            yield from _pool_families(app[POOL])
        if CACHE in app:
            yield from _cache_families(app[CACHE])
        if READS in app and app[READS].replicas:
            yield from _read_families(app[READS])
        yield from _sql_families(app[QUERY_LOG])


def _hub_families(hub: Hub) -> Iterable[Metric]:
    per_room = GaugeMetricFamily("serveline_ws_connections_by_restaurant",
                                 "Open WebSocket connections per restaurant", labels=["restaurant_id"])
    total = 0
    for rid, room in hub.rooms.items():
        per_room.add_metric([str(rid)], len(room.connections))
        total += len(room.connections)
    yield GaugeMetricFamily("serveline_ws_connections", "Open WebSocket connections", value=total)
    yield per_room
    yield CounterMetricFamily("serveline_ws_messages_sent",
                              "Event frames offered to sockets: one per socket in the room per "
                              "event (a socket not subscribed to the channel skips it)",
                              value=hub.stats["delivered"])
    closed = CounterMetricFamily("serveline_ws_closed", "Sockets closed by the server, by reason",
                                 labels=["reason"])
    closed.add_metric(["slow_consumer"], hub.stats["slow_closed"])
    closed.add_metric(["stale"], hub.stats["stale_closed"])
    yield closed
    yield CounterMetricFamily("serveline_listen_reconnects",
                              "Times the LISTEN connection was lost and reopened",
                              value=hub.stats["listen_reconnects"])


def _pool_families(pool: asyncpg.Pool) -> Iterable[Metric]:
    report = pool_report(pool)
    yield GaugeMetricFamily("serveline_db_pool_size", "PostgreSQL connections open", value=report.size)
    yield GaugeMetricFamily("serveline_db_pool_max", "Most PostgreSQL connections allowed",
                            value=report.max)
    yield GaugeMetricFamily("serveline_db_pool_in_use", "PostgreSQL connections lent out",
                            value=report.in_use)
    if report.waiters is not None:
        yield GaugeMetricFamily("serveline_db_pool_waiters", "Tasks waiting for a connection",
                                value=report.waiters)


def _cache_families(cache: ResponseCache) -> Iterable[Metric]:
    for name, counts, text in (("hits", cache.hits, "Cached answers served"),
                               ("misses", cache.misses, "Answers computed for lack of a fresh entry")):
        by_kind: Counter[str] = Counter()
        for (_rid, kind), n in counts.items():
            by_kind[kind] += n
        family = CounterMetricFamily(f"serveline_cache_{name}", text, labels=["kind"])
        for kind, n in sorted(by_kind.items()):
            family.add_metric([kind], n)
        yield family


def _read_families(reads: Reads) -> Iterable[Metric]:
    served = CounterMetricFamily("serveline_replica_reads",
                                 "Reads that may use a replica, by where they were answered "
                                 "(primary: why)", labels=["served_by", "reason"])
    for replica in reads.replicas:
        served.add_metric([replica.name, ""], replica.served)
    for reason, n in sorted(reads.on_primary.items()):
        served.add_metric(["primary", reason], n)
    yield served
    lag = GaugeMetricFamily("serveline_replica_lag_seconds",
                            "Replica lag as of the last probe (absent while down)", labels=["replica"])
    up = GaugeMetricFamily("serveline_replica_up", "1 when the replica is reachable",
                           labels=["replica"])
    for replica in reads.replicas:
        up.add_metric([replica.name], 1 if replica.up else 0)
        if replica.lag_seconds is not None:
            lag.add_metric([replica.name], replica.lag_seconds)
    yield lag
    yield up


def _sql_families(query_log: QueryLog) -> Iterable[Metric]:
    yield CounterMetricFamily("serveline_sql_statements", "SQL statements run by the pool",
                              value=query_log.statements)
    yield CounterMetricFamily("serveline_sql_seconds", "Time spent in SQL statements",
                              value=query_log.seconds)
    slow = CounterMetricFamily("serveline_sql_slow_statements",
                               "Statements at or over slow_query_ms (critical: critical_query_ms)",
                               labels=["level"])
    slow.add_metric(["slow"], query_log.slow)
    slow.add_metric(["critical"], query_log.critical)
    yield slow


# The middleware and the endpoint --------------------------------------------------

@web.middleware
def record_requests(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Time each request by route template and status, and count those in flight."""
    metrics = request.app[METRICS]
    if not metrics.enabled or request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
        return handler(request)  # sockets are counted by the hub, not timed as requests
    return _timed(request, handler, metrics)


async def _timed(request: web.Request, handler: Handler, metrics: Metrics) -> web.StreamResponse:
    started = time.perf_counter()
    metrics.in_flight += 1
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # redirects pass the errors middleware as exceptions
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = CLIENT_CLOSED
        raise
    finally:
        metrics.in_flight -= 1
        resource = request.match_info.route.resource
        if resource is None:
            route, method = UNMATCHED, request.method if request.method in METHODS else "OTHER"
        else:
            route, method = resource.canonical, request.method
        metrics.observe_request(method, route, status, time.perf_counter() - started)


def _loopback(request: web.Request) -> bool:
    """A client on this machine that is not a reverse proxy passing someone else's request on."""
    if hdrs.FORWARDED in request.headers or hdrs.X_FORWARDED_FOR in request.headers:
        return False
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


@routes.get("/metrics")
@public
async def metrics_page(request: web.Request) -> web.Response:
    """Prometheus text format. With `metrics_token` set it needs that bearer token; without,
    it answers loopback clients only."""
    token = request.app[CONFIG].metrics_token
    if token:
        scheme, _, given = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise unauthorized("/metrics needs the metrics token as a bearer token")
    elif not _loopback(request):
        raise forbidden("/metrics answers only this machine unless metrics_token is set")
    return web.Response(body=generate_latest(request.app[METRICS].registry),
                        headers={hdrs.CONTENT_TYPE: CONTENT_TYPE_LATEST})


async def follow_events(app: web.Application) -> AsyncIterator[None]:
    """Time each delivered event from its commit (needs the hub: appended after it)."""
    if app[METRICS].enabled:
        app[HUB].on_delivered.append(app[METRICS].observe_lag)
    yield


def setup_metrics(app: web.Application, config: Config) -> None:
    """The app's metrics, its /metrics route and the hub's lag hook.

    Call after the other cleanup contexts are added: the lag hook needs the hub running.
    """
    metrics = app[METRICS] = Metrics(config.metrics)
    metrics.registry.register(AppCollector(app, metrics))
    app.cleanup_ctx.append(follow_events)
    if config.metrics:
        app.router.add_routes(routes)

