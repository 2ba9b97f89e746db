"""Background upkeep: forget idempotent answers after 24 h, long-dead sessions, events past retention."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import AsyncIterator

from aiohttp import web

from server.keys import CONFIG, POOL
from store import alerts, credentials, events, idempotency

log = logging.getLogger("serveline.housekeeping")
ALERTS_KEPT = timedelta(days=30)  # cleared alerts stay listed this long


async def tidy(app: web.Application) -> None:
    removed_keys = await idempotency.purge(app[POOL])
    removed_sessions = await credentials.purge_sessions(app[POOL])
    removed_events = await events.purge(app[POOL], app[CONFIG].event_retention_hours)
    await alerts.purge(app[POOL], ALERTS_KEPT)
    if removed_keys or removed_sessions or removed_events:
        log.info("purged %d idempotency keys, %d old sessions, %d events past retention",
                 removed_keys, removed_sessions, removed_events)


async def _every(app: web.Application, seconds: float) -> None:
    while True:
        try:
            await tidy(app)
        except Exception:  # the database may be restarting; try again next round
            log.warning("housekeeping failed; retrying in %.0f s", seconds, exc_info=True)
        await asyncio.sleep(seconds)


async def housekeeping(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_every(app, app[CONFIG].housekeeping_seconds))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
