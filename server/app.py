"""create_app(config): the one place the application is put together (tests call it too)."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import asyncpg
import jinja2
import msgspec
from aiohttp import web

from handlers import (
    alerts,
    api_keys,
    auth,
    checks,
    dashboard,
    devices,
    docs,
    event_feed,
    floor,
    health,
    kitchen,
    menu,
    ops,
    orders,
    pages,
    pairing,
    reports,
    reservations,
    restaurants,
    staff,
    waitlist,
    webhooks,
    ws,
)
from server.alerts import watching
from server.auth import LoginThrottle, Passwords
from server.cache import MENU, SETTINGS, ResponseCache, own_writes
from server.config import Config
from server.housekeeping import housekeeping
from server.http import body_limits, compress_large, unreadable_requests_in_json
from server.idempotency import idempotent_posts
from server.identity import Credentials
from server.keys import (
    CACHE,
    CONFIG,
    CREDENTIALS,
    DEMO_PASSWORD,
    HUB,
    LOGIN_THROTTLE,
    OPENAPI,
    PASSWORDS,
    POOL,
    QUERY_LOG,
    RATE_LIMITS,
    READS,
    REVOCATIONS,
    OpenApi,
)
from server.metrics import alert_figures, record_requests, setup_metrics
from server.middlewares import authenticate, errors, request_id
from server.notify import following_deliveries
from server.openapi import build_spec
from server.proxy import from_proxy
from server.querylog import QueryLog
from server.ratelimit import RateLimits, rate_limiting, rate_limits
from server.realtime.hub import Hub
from server.realtime.presence import presence
from server.realtime.revocation import Revocations
from server.security import allowed_origins, cors_preflight, security_headers
from server.webhooks import delivering_webhooks
from store import firing
from store import restaurants as restaurant_store
from store.migrate import apply_migrations
from store.pool import DATABASE_ERRORS, create_pool, unset_timeouts
from store.replicas import Reads, Replica, read_urls
from store.seed import seed_demo_if_empty

log = logging.getLogger("serveline")

ROUTE_MODULES = (health, auth, restaurants, staff, devices, api_keys, alerts, floor, menu, waitlist,
                 reservations, orders, kitchen, dashboard, reports, ops, docs, ws, event_feed, pages,
                 pairing, webhooks, checks)
ROOT = Path(__file__).resolve().parent.parent


async def seed_demo(pool: asyncpg.Pool, passwords: Passwords, config: Config) -> str | None:
    """Seed the demo restaurant on an empty database; its password if this call seeded it."""
    if await restaurant_store.all_ids(pool):
        return None  # the usual start: no argon2 hash (a quarter second) for a seed never made
    password = config.demo_password or secrets.token_urlsafe(9)
    if await seed_demo_if_empty(pool, await passwords.hash(password)):
        return password
    return None


async def prepare_database(config: Config) -> str | None:
    """Migrate and seed before starting workers; the demo password if one was just made."""
    assert config.database_url is not None
    await apply_migrations(config.database_listen_url or config.database_url)
    if not config.seed_demo:
        return None
    pool = await create_pool(config.database_url, min_size=1, max_size=2,  # seeding holds a lock on one
                             statement_timeout_ms=config.statement_timeout_ms,
                             idle_in_transaction_timeout_ms=config.idle_in_transaction_timeout_ms,
                             pgbouncer=config.database_pgbouncer)
    try:
        return await seed_demo(pool, Passwords(config.argon2_time_cost, config.argon2_memory_kib),
                               config)
    finally:
        await pool.close()


async def database(app: web.Application) -> AsyncIterator[None]:
    """Migrate, open the pool, seed the demo on an empty database; close the pool on the way out."""
    config = app[CONFIG]
    if config.database_url is None:
        raise RuntimeError("create_app needs config.database_url (run.py starts the embedded one)")
    await apply_migrations(config.database_listen_url or config.database_url)
    app[POOL] = await create_pool(
        config.database_url, min_size=config.pool_min, max_size=config.pool_max,
        statement_timeout_ms=config.statement_timeout_ms,
        idle_in_transaction_timeout_ms=config.idle_in_transaction_timeout_ms,
        lock_timeout_ms=config.lock_timeout_ms, pgbouncer=config.database_pgbouncer,
        query_logger=app[QUERY_LOG].record)
    if config.database_pgbouncer and (unset := await unset_timeouts(app[POOL])):
        log.warning("behind PgBouncer the timeouts are set per role or database, and these are "
                    "not: %s (docs/deployment.md, PgBouncer)", ", ".join(unset))
    if config.seed_demo:
        password = await seed_demo(app[POOL], app[PASSWORDS], config)
        if password is not None:
            app[DEMO_PASSWORD] = password
    yield
    await app[POOL].close()


async def read_replicas(app: web.Application) -> AsyncIterator[None]:
    """A small pool per read replica and the probe that measures their lag (docs/deployment.md,
    Read replicas); with none configured, the reads that could use one stay on the primary."""
    config = app[CONFIG]
    replicas = [Replica(url, await create_pool(
        url, min_size=0, max_size=config.read_pool_max,  # min 0: a replica down at start is no failure
        statement_timeout_ms=config.statement_timeout_ms,
        idle_in_transaction_timeout_ms=config.idle_in_transaction_timeout_ms,
        lock_timeout_ms=config.lock_timeout_ms, query_logger=app[QUERY_LOG].record))
        for url in read_urls(config.database_read_urls)]
    reads = app[READS] = Reads(app[POOL], replicas, config.read_max_lag_seconds)
    probing = asyncio.create_task(reads.probing()) if replicas else None
    yield
    if probing is not None:
        probing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probing
    await reads.close()


async def realtime(app: web.Application) -> AsyncIterator[None]:
    """The hub: one LISTEN connection, rooms, receipts. Started after the pool, stopped before it."""
    config = app[CONFIG]
    # LISTEN is session state: it goes direct to PostgreSQL when a PgBouncer is in between.
    app[HUB] = Hub(app[POOL], config.database_listen_url or config.database_url,
                   config.ack_flush_seconds)
    app[HUB].on_commit.append(app[CREDENTIALS].changed)  # sign-outs and revocations, at once
    app[HUB].on_lost.append(app[CREDENTIALS].forget_all)
    app[HUB].on_gap.append(app[CREDENTIALS].forget_all)
    app[REVOCATIONS] = Revocations(app)
    app[HUB].on_commit.append(app[REVOCATIONS].changed)  # ... and their open sockets close
    await app[HUB].start()
    yield
    await app[REVOCATIONS].stop()
    await app[HUB].stop()


async def warm_caches(app: web.Application) -> None:
    """Each restaurant's menu and settings, read once at start-up in the background."""
    pool, cache = app[POOL], app[CACHE]
    try:
        await cache.until_synced()
        for rid in await restaurant_store.all_ids(pool):
            await cache.warm(rid, MENU, "", functools.partial(menu.menu_body, pool, rid))
            await cache.warm(rid, SETTINGS, "", functools.partial(restaurants.settings_body, pool, rid))
    except DATABASE_ERRORS as error:
        log.warning("cache warming stopped (%s); reads will fill the cache", error)


async def caching(app: web.Application) -> AsyncIterator[None]:
    """The response cache, told by the hub's event stream what each commit changed."""
    cache = app[CACHE] = ResponseCache(app[CONFIG].cache_url)
    await cache.start(app[POOL])
    app[HUB].on_commit.append(cache.changed)
    app[HUB].on_lost.append(cache.deaf)
    app[HUB].on_gap.append(cache.lost_track)
    warming = asyncio.create_task(warm_caches(app))  # readiness does not wait for it
    yield
    warming.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await warming
    await cache.close()


async def firing_held_lines(app: web.Application) -> AsyncIterator[None]:
    """Held lines go to the cook at their fire_at (store/firing.py; safe in every process)."""
    task = asyncio.create_task(firing.keep_firing(app[POOL]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def say_goodbye(app: web.Application) -> None:
    """On shutdown, before waiting for handlers: ask every socket to reconnect elsewhere, later."""
    if HUB in app:
        await app[HUB].stop()


def create_app(config: Config) -> web.Application:
    unreadable_requests_in_json()
    origins = allowed_origins(config.cors_origins)
    proxied = [from_proxy] if config.behind_proxy else []  # client address and scheme first
    app = web.Application(middlewares=[*proxied, request_id, record_requests, compress_large, errors,
                                       cors_preflight(origins), authenticate, rate_limits,
                                       body_limits(config.max_body_bytes, config.body_read_seconds),
                                       own_writes, idempotent_posts],
                          client_max_size=config.max_body_bytes)
    app.on_response_prepare.append(security_headers(origins))
    app[CONFIG] = config
    app[QUERY_LOG] = QueryLog(config.slow_query_ms, config.critical_query_ms,
                              patterns=config.query_stats)
    app[CREDENTIALS] = Credentials()
    app[PASSWORDS] = Passwords(config.argon2_time_cost, config.argon2_memory_kib)
    app[RATE_LIMITS] = RateLimits(config)
    app[LOGIN_THROTTLE] = LoginThrottle(config.login_failure_limit, config.login_address_limit,
                                        config.login_failures_before_delay,
                                        app[RATE_LIMITS].login_counters)
    app.cleanup_ctx.append(database)
    app.cleanup_ctx.append(read_replicas)
    app.cleanup_ctx.append(realtime)
    app.cleanup_ctx.append(caching)
    app.cleanup_ctx.append(rate_limiting)
    app.cleanup_ctx.append(housekeeping)
    app.cleanup_ctx.append(firing_held_lines)
    app.cleanup_ctx.append(presence)
    app.cleanup_ctx.append(watching(alert_figures))
    app.cleanup_ctx.append(delivering_webhooks)  # after the hub: commits wake it
    app.cleanup_ctx.append(following_deliveries)  # guest messages' outcomes onto parties
    setup_metrics(app, config)  # after the hub's cleanup context: it hooks into the hub
    app.on_shutdown.append(say_goodbye)
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(ROOT / "templates"),
                         autoescape=jinja2.select_autoescape(default=True))
    app.router.add_static("/static", ROOT / "static", name="static", append_version=True)
    for module in ROUTE_MODULES:
        app.router.add_routes(module.routes)
    spec = build_spec(app)
    app[OPENAPI] = OpenApi(spec=spec, encoded=msgspec.json.encode(spec))
    return app
