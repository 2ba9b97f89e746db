"""Expected screens during service: alert the manager when one goes dark or falls behind.

Runs on every instance; the conditional UPDATE behind each alert lets exactly
one of them raise it.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, time
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
from aiohttp import web

from server.keys import CONFIG, POOL
from store import devices
from store.pool import DATABASE_ERRORS
from store.restaurants import Settings

log = logging.getLogger("serveline.presence")


def in_service(settings: Settings, zone: str, now: datetime | None = None) -> bool:
    local = (now or datetime.now(ZoneInfo(zone))).astimezone(ZoneInfo(zone)).time()
    start, end = time.fromisoformat(settings.service_start), time.fromisoformat(settings.service_end)
    return start <= local < end if start < end else (local >= start or local < end)


async def check(pool: asyncpg.Pool) -> list[str]:
    emitted = []
    for row in await pool.fetch(devices.EXPECTED_RESTAURANTS):
        settings = msgspec.convert(row["settings"], Settings)
        if in_service(settings, row["timezone"]):
            emitted += await devices.check_presence(pool, row["id"], settings.device_lag_alert)
    return emitted


async def _watch(app: web.Application) -> None:
    while True:
        await asyncio.sleep(app[CONFIG].presence_check_seconds)
        try:
            await check(app[POOL])
        except DATABASE_ERRORS:
            log.warning("presence check failed; retrying", exc_info=True)


async def presence(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_watch(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
