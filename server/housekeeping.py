"""Background upkeep: forget idempotent answers after 24 h and long-dead sessions, make the
event log's months ahead and drop those past retention, delete closed orders past theirs
(when set); keep the daily report rollups current."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from aiohttp import web

from server.keys import CONFIG, POOL
from store import alerts, credentials, idempotency, order_retention, partitions, reports

log = logging.getLogger("serveline.housekeeping")
ALERTS_KEPT = timedelta(days=30)  # cleared alerts stay listed this long


async def tidy(app: web.Application) -> None:
    removed_keys = await idempotency.purge(app[POOL])
    removed_sessions = await credentials.purge_sessions(app[POOL])
    made = await partitions.make_ahead(app[POOL])
    dropped = await partitions.drop_past(app[POOL], app[CONFIG].event_retention_hours)
    await alerts.purge(app[POOL], ALERTS_KEPT)
    orders = await order_retention.drop_closed_orders(app[POOL], app[CONFIG].order_retention_days)
    if orders:
        log.info("deleted %d closed orders past the orders' retention (their days are rolled up)",
                 orders)
    if removed_keys or removed_sessions:
        log.info("purged %d idempotency keys, %d old sessions", removed_keys, removed_sessions)
    if made or dropped:
        log.info("event log months made: %s; dropped past retention: %s",
                 ", ".join(made) or "none", ", ".join(dropped) or "none")


async def roll_up(app: web.Application) -> None:
    days = await reports.roll_up(app[POOL], app[CONFIG].order_retention_days)
    if days:
        log.debug("rolled up %d restaurant days", days)


async def _every(app: web.Application, seconds: float, job: Callable, what: str,
                 first_after: float = 0.0) -> None:
    await asyncio.sleep(first_after)
    while True:
        try:
            await job(app)
        except Exception:  # the database may be restarting; try again next round
            log.warning("%s failed; retrying in %.0f s", what, seconds, exc_info=True)
        await asyncio.sleep(seconds)


async def housekeeping(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    tasks = [asyncio.create_task(_every(app, config.housekeeping_seconds, tidy, "housekeeping")),
             asyncio.create_task(_every(app, config.rollup_seconds, roll_up, "rollup",
                                        first_after=min(config.rollup_seconds, 30.0)))]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
