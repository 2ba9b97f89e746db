"""The open state a resetting client needs, read at exactly one seq (one repeatable-read transaction)."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from store import dashboard, floor, kitchen, menu, orders, reservations, waitlist
from store.pages import fetch_page

EVERYTHING = 10_000  # a snapshot is never paged

POSITION = "SELECT epoch, seq, timezone FROM restaurants WHERE id = $1"


async def _items(conn: asyncpg.Connection, sql: str, rid: int, *args: Any) -> msgspec.Raw:
    page, _ = await fetch_page(conn, sql, rid, EVERYTHING, *args)
    return page.items


async def take(pool: asyncpg.Pool, rid: int, channels: list[str]) -> tuple[str, int, dict[str, Any]]:
    """(epoch, seq, snapshot) for the given channels, all as of that seq."""
    families = {c.partition(":")[0] for c in channels}
    stations = sorted({c.partition(":")[2] for c in channels if c.startswith("kitchen:")})
    parts: dict[str, Any] = {}
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(POSITION, rid)
        if "kitchen" in channels:
            parts["tickets"] = await _items(conn, kitchen.LIST_OPEN, rid, 0, None)
        elif stations:
            parts["tickets"] = {s: await _items(conn, kitchen.LIST_OPEN, rid, 0, s) for s in stations}
        if "floor" in families:
            parts["tables"] = await _items(conn, floor.LIST_TABLES, rid, 0, None, None)
            parts["waitlist"] = await _items(conn, waitlist.LIST, rid, 0, "open")
            today = datetime.now(ZoneInfo(row["timezone"])).date()
            start, end = reservations.day_window(today, row["timezone"])
            parts["reservations"] = await _items(conn, reservations.LIST, rid, reservations.FAR_PAST,
                                                 0, start, end, None)
        if "orders" in families:
            parts["orders"] = await _items(conn, orders.LIST_ORDERS, rid, 0, "open", None)
        if "menu" in families:
            parts["menu"] = msgspec.Raw((await conn.fetchrow(menu.MENU, rid))["menu"].encode())
        if "manager" in families:
            parts["dashboard"] = msgspec.Raw(
                (await conn.fetchrow(dashboard.DASHBOARD, rid))["dashboard"].encode())
    return str(row["epoch"]), row["seq"], parts
