"""Alert rules, checked every few seconds on every instance (store/alerts.py raises and clears).

Rules on the restaurant's data: tickets open past the red threshold, expected screens dark or
behind. Rules on this instance, raised for every restaurant it serves: request p95 over the
threshold, requests waiting for a database connection, events delivered late.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import NamedTuple

from aiohttp import web

from server.config import Config
from server.keys import CONFIG, POOL
from store import alerts
from store.pool import DATABASE_ERRORS

log = logging.getLogger("serveline.alerts")
INSTANCE = f"{socket.gethostname()}:{os.getpid()}"


class Figures(NamedTuple):
    """What this instance measured over the last minute (None: nothing to judge by)."""
    p95_ms: float | None
    pool_waiters: int
    event_lag_p95_ms: float | None


def no_figures(_app: web.Application) -> Figures:
    return Figures(None, 0, None)


def instance_conditions(config: Config, figures: Figures) -> list[tuple[str, str, dict]]:
    """(rule, message, details) of each instance rule that holds now."""
    holding = []
    if figures.p95_ms is not None and figures.p95_ms > config.alert_p95_ms:
        holding.append(("slow_requests", (f"Requests are slow: p95 {figures.p95_ms:.0f} ms "
                                          f"(alert above {config.alert_p95_ms:.0f} ms)"),
                        {"p95_ms": figures.p95_ms}))
    if figures.pool_waiters >= config.alert_pool_waiters:
        holding.append(("pool_waiters", (f"{figures.pool_waiters} requests are waiting for a "
                                         "database connection"), {"waiters": figures.pool_waiters}))
    if figures.event_lag_p95_ms is not None and figures.event_lag_p95_ms > config.alert_event_lag_ms:
        holding.append(("event_lag", (f"Screens get changes late: p95 {figures.event_lag_p95_ms:.0f} ms "
                                      f"after the write (alert above {config.alert_event_lag_ms:.0f} ms)"),
                        {"p95_ms": figures.event_lag_p95_ms}))
    return holding


async def check(app: web.Application, read_figures: Callable[[web.Application], Figures]) -> list[str]:
    pool, config = app[POOL], app[CONFIG]
    wanted = await alerts.from_the_database(pool)
    holding = instance_conditions(config, read_figures(app))
    if holding:  # this instance serves every restaurant: each manager hears of it
        wanted += [alerts.Wanted(rid, rule, INSTANCE, message, {"instance": INSTANCE, **details})
                   for rid in await alerts.restaurant_ids(pool) for rule, message, details in holding]
    keep_alive = timedelta(seconds=config.alert_check_seconds * 3)
    return await alerts.reconcile(pool, wanted, INSTANCE, keep_alive)


async def _watch(app: web.Application, read_figures: Callable[[web.Application], Figures]) -> None:
    while True:
        await asyncio.sleep(app[CONFIG].alert_check_seconds)
        try:
            await check(app, read_figures)
        except DATABASE_ERRORS:
            log.warning("alert check failed; retrying", exc_info=True)


def watching(read_figures: Callable[[web.Application], Figures]):
    async def alerting(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_watch(app, read_figures))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return alerting
