"""Request rate limits per API key, per device, per staff sign-in and per client address.

Counted with the `limits` library in fixed windows: in this process's memory, or in Redis when
`cache_url` is set, so several instances share one count. Each restaurant's plan (its settings)
scales the limits of its keys, devices and sign-ins; plans are kept in process and refreshed from
the event stream, so no request reads them from PostgreSQL. docs/api.md ("Rate limits") is the
contract.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import time
from collections.abc import AsyncIterator

import asyncpg
import redis.asyncio
from aiohttp import web
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
)
from limits.errors import StorageError
from limits.util import WindowStats

from server.auth import Handler
from server.config import Config, env_name
from server.errors import ApiError
from server.keys import HUB, POOL, PRINCIPAL, RATE_LIMITS, RESTAURANT_ID
from store import events
from store import restaurants as restaurant_store
from store.pool import DATABASE_ERRORS

log = logging.getLogger("serveline.ratelimit")

STANDARD, BUSY = "standard", "busy"
KINDS = ("api_key", "device", "session")  # credentials counted one by one, scaled by the plan
# Never counted: load balancers probe liveness as often as they like.
EXEMPT = frozenset({"/api/health"})
SHARED_TIMEOUT_SECONDS = 0.5  # Redis answers in well under a millisecond when it is well
SHARED_RETRY_SECONDS = 5.0  # after a failure, count locally this long before asking Redis again
SHARED_FAILURES = (StorageError, OSError, asyncio.TimeoutError)
WHO = {"api_key": "this API key", "device": "this device", "session": "this sign-in",
       "address": "this address"}


class Counters:
    """A `limits` strategy counting in Redis when one is configured, else in this process.

    While Redis cannot be reached, counts go to this process's memory (limits then hold per
    instance rather than across instances) and Redis is tried again every few seconds: a request
    is never refused because Redis is away. The outage is logged once, and so is the recovery.
    Offers the strategies' own calls (hit, test, get_window_stats, clear).
    """

    def __init__(self, strategy: type[RateLimiter], shared: RedisStorage | None) -> None:
        self._local = strategy(MemoryStorage())
        self._shared = strategy(shared) if shared is not None else None
        # Redis reports a fixed window's time left in whole seconds, rounded to the nearest.
        self._reset_slack = 0.5 if strategy is FixedWindowRateLimiter else 0.0
        self.namespace = "serveline"  # and the database's identity, once started
        self._retry_shared_at = 0.0
        self._failing = False

    def _use_shared(self) -> bool:
        return self._shared is not None and time.monotonic() >= self._retry_shared_at

    def _lost_shared(self, error: BaseException) -> None:
        self._retry_shared_at = time.monotonic() + SHARED_RETRY_SECONDS
        if not self._failing:
            self._failing = True
            log.warning("rate limit store unreachable (%s); counting in this process until it "
                        "is back", error)

    def _shared_ok(self) -> None:
        if self._failing:
            self._failing = False
            log.warning("rate limit store reachable again; counts are shared again")

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        if self._use_shared():
            try:
                allowed = await self._shared.hit(item, self.namespace, *identifiers)
            except SHARED_FAILURES as error:
                self._lost_shared(error)
            else:
                self._shared_ok()
                return allowed
        return await self._local.hit(item, self.namespace, *identifiers)

    async def test(self, item: RateLimitItem, *identifiers: str) -> bool:
        if self._use_shared():
            try:
                return await self._shared.test(item, self.namespace, *identifiers)
            except SHARED_FAILURES as error:
                self._lost_shared(error)
        return await self._local.test(item, self.namespace, *identifiers)

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        if self._use_shared():
            try:
                stats = await self._shared.get_window_stats(item, self.namespace, *identifiers)
                return WindowStats(stats.reset_time + self._reset_slack, stats.remaining)
            except SHARED_FAILURES as error:
                self._lost_shared(error)
        return await self._local.get_window_stats(item, self.namespace, *identifiers)

    async def clear(self, item: RateLimitItem, *identifiers: str) -> None:
        if self._use_shared():
            try:
                await self._shared.clear(item, self.namespace, *identifiers)
            except SHARED_FAILURES as error:
                self._lost_shared(error)
        await self._local.clear(item, self.namespace, *identifiers)


class Plans:
    """Each restaurant's plan, kept in this process: read once at start, then read again in the
    background whenever the event stream says a restaurant's settings may have changed (the
    `manager` family), so requests never wait on PostgreSQL for it."""

    def __init__(self) -> None:
        self.of: dict[int, str] = {}
        self._due: set[int] = set()
        self._all_due = False
        self._pool: asyncpg.Pool | None = None
        self._reading: asyncio.Task | None = None

    async def start(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.of = await restaurant_store.plans(pool)

    def plan(self, restaurant_id: int) -> str:
        plan = self.of.get(restaurant_id)
        if plan is None:  # a restaurant made since start: standard until its plan is read
            self.changed(restaurant_id, 0, None)
            return STANDARD
        return plan

    def changed(self, restaurant_id: int, seq: int, families: frozenset[str] | None) -> None:
        if families is None or "manager" in families:
            self._due.add(restaurant_id)
            self._read_soon()

    def lost_track(self) -> None:
        """After a gap in the event stream a change may have gone unheard: read every plan."""
        self._all_due = True
        self._read_soon()

    def _read_soon(self) -> None:
        if self._pool is not None and (self._reading is None or self._reading.done()):
            # A context of its own: called within a request, the read is not that request's SQL.
            self._reading = asyncio.create_task(self._read(), context=contextvars.Context())

    async def _read(self) -> None:
        while self._due or self._all_due:
            ids = None if self._all_due else sorted(self._due)
            self._due.clear()
            self._all_due = False
            try:
                found = await restaurant_store.plans(self._pool, ids)
            except DATABASE_ERRORS as error:
                log.warning("could not read restaurant plans (%s); trying again", error)
                if ids is None:
                    self._all_due = True
                else:
                    self._due.update(ids)
                await asyncio.sleep(1.0)
                continue
            if ids is None:
                self.of = found
            else:
                self.of.update({rid: found.get(rid, STANDARD) for rid in ids})

    async def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading


def _limit(config: Config, field: str) -> RateLimitItem | None:
    text = getattr(config, field).strip()
    if text.lower() in ("off", "none", ""):
        return None
    try:
        return parse(text)
    except ValueError:
        raise SystemExit(f"serveline: bad setting {field} ({env_name(field)}): {text!r} is not "
                         "a limit like 600/minute (or off)") from None


def _scaled(item: RateLimitItem | None, factor: float) -> RateLimitItem | None:
    if item is None:
        return None
    return type(item)(max(1, round(item.amount * factor)), item.multiples)


def _per(item: RateLimitItem) -> str:
    seconds = item.get_expiry()
    named = {1: "a second", 60: "a minute", 3600: "an hour", 86400: "a day"}
    return named.get(seconds) or f"every {seconds} seconds"


class RateLimits:
    """The limits of one app: what each kind of caller may do, and the counters."""

    def __init__(self, config: Config) -> None:
        if config.rate_limit_busy_factor < 1:
            raise SystemExit("serveline: rate_limit_busy_factor must be at least 1")
        self._redis_pool: redis.asyncio.ConnectionPool | None = None
        shared = None
        if config.cache_url:
            self._redis_pool = redis.asyncio.ConnectionPool.from_url(
                config.cache_url, socket_connect_timeout=SHARED_TIMEOUT_SECONDS,
                socket_timeout=SHARED_TIMEOUT_SECONDS)
            shared = RedisStorage("async+" + config.cache_url, implementation="redispy",
                                  wrap_exceptions=True, key_prefix="serveline-limits",
                                  connection_pool=self._redis_pool)
        self.counters = Counters(FixedWindowRateLimiter, shared)
        self.login_counters = Counters(MovingWindowRateLimiter, shared)  # LoginThrottle's
        self.plans = Plans()
        self.items: dict[tuple[str, str], RateLimitItem | None] = {}
        for kind in KINDS:
            standard = _limit(config, f"rate_limit_{kind}")
            self.items[kind, STANDARD] = standard
            self.items[kind, BUSY] = _scaled(standard, config.rate_limit_busy_factor)
        self.address = _limit(config, "rate_limit_address")

    async def start(self, pool: asyncpg.Pool) -> None:
        """Count under this database's identity (a shared Redis may serve several); learn plans."""
        namespace = f"serveline:{await events.database_identity(pool)}"
        self.counters.namespace = self.login_counters.namespace = namespace
        await self.plans.start(pool)

    async def close(self) -> None:
        await self.plans.close()
        if self._redis_pool is not None:
            await self._redis_pool.disconnect()

    def bucket_of(self, request: web.Request) -> tuple[str, str, RateLimitItem, str | None] | None:
        """(kind, id, limit, plan) the request counts against, or None when it is not counted."""
        principal = request.get(PRINCIPAL)
        if principal is None:
            if self.address is None:
                return None
            return "address", request.remote or "unknown", self.address, None
        if principal.kind == "session":
            restaurant_id = request.get(RESTAURANT_ID)  # a session may work in several
        else:
            restaurant_id = next(iter(principal.roles), None)  # devices and keys have one
        plan = STANDARD if restaurant_id is None else self.plans.plan(restaurant_id)
        item = self.items.get((principal.kind, plan))
        return None if item is None else (principal.kind, str(principal.id), item, plan)

    async def refusal(self, kind: str, ident: str, item: RateLimitItem,
                      plan: str | None) -> ApiError:
        """429 in the one error shape, saying which limit and when to try again."""
        stats = await self.counters.get_window_stats(item, kind, ident)
        window = item.get_expiry()
        retry_after = min(window, max(1, math.ceil(stats.reset_time - time.time())))
        message = f"{WHO[kind]} may make {item.amount} requests {_per(item)}"
        if kind == "address":
            message += " without signing in"
        detail: dict[str, object] = {"per": kind, "limit": item.amount, "window_seconds": window,
                                     "retry_after": retry_after}
        if plan is not None:
            detail["plan"] = plan
        return ApiError(429, "rate_limited", f"{message}; try again in {retry_after} s", [detail],
                        headers={"Retry-After": str(retry_after)})


@web.middleware
async def rate_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the request against its caller's limit (after authenticate: it knows who calls);
    past the limit, 429 with Retry-After and the handler never runs, so nothing is written."""
    match = request.match_info
    if (match.http_exception is not None or isinstance(match.route.resource, web.StaticResource)
            or match.route.resource.canonical in EXEMPT):
        return await handler(request)
    limits = request.app[RATE_LIMITS]
    bucket = limits.bucket_of(request)
    if bucket is not None:
        kind, ident, item, plan = bucket
        if not await limits.counters.hit(item, kind, ident):
            raise await limits.refusal(kind, ident, item, plan)
    return await handler(request)


async def rate_limiting(app: web.Application) -> AsyncIterator[None]:
    """Namespace the counters, read the plans and follow the event stream; after the hub."""
    limits = app[RATE_LIMITS]
    await limits.start(app[POOL])
    app[HUB].on_commit.append(limits.plans.changed)
    app[HUB].on_gap.append(limits.plans.lost_track)
    yield
    await limits.close()
