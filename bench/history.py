"""`history`: the hot reads beside the yardstick's /db before and after years of history.

A restaurant that has run for years has millions of closed orders. The reads a rush makes
(the open orders, a station's open tickets) must not slow down with them: they go through
partial indexes whose size is the open set, not the history. The scenario measures both
reads against the yardstick's `/db` on a fresh database, then loads the history with COPY
(closed orders over the past two years, one bumped ticket each, LINES items per order: 10
million order items at full size), vacuums and analyzes as autovacuum would, and measures
again in the same way. The figures are the ratios before and after and their quotient
(`history_hot_read_ratio`: 1.0 means the history costs the hot reads nothing), with the
plans PostgreSQL chose after, checked for a sequential scan of a history table.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg

from bench.http import LINES, OPEN_ORDERS, _session, _sizes, analyze, open_door
from bench.servers import Bench, Failed, serveline, yardstick
from bench.wrk import (
    Load,
    interleaved,
    latency,
    median_ratio,
    median_rps,
    script,
    wrk_path,
)
from store import kitchen, orders

ITEMS_FULL, ITEMS_QUICK = 10_000_000, 1_000_000
CHUNK_ORDERS = 100_000  # orders per COPY round (with their tickets and items)
HISTORY_DAYS = 730
BIG_TABLES = {"orders", "order_items", "tickets"}
# The loader is the owner restoring a dump, not the service: foreign keys are not checked
# row by row (they hold by construction), as pg_restore loads data before its constraints.
LOADER = "SET session_replication_role = replica"

ORDER_COLUMNS = ("restaurant_id", "guests", "note", "status", "fired_course", "created_at",
                 "closed_at")
TICKET_COLUMNS = ("restaurant_id", "order_id", "station", "course", "status", "fired_at",
                  "started_at", "bumped_at")
ITEM_COLUMNS = ("restaurant_id", "order_id", "menu_item_id", "name", "station", "qty",
                "unit_price_minor", "course", "status", "ticket_id", "created_at", "fired_at",
                "ready_at", "served_at")
NEW_IDS = """
SELECT id FROM {table} WHERE restaurant_id = $1 AND id > $2 ORDER BY id"""


def _orders(rid: int, count: int, start: int, total: int, now: datetime) -> Iterator[tuple]:
    """Closed orders spread evenly over the past HISTORY_DAYS, oldest first."""
    span = timedelta(days=HISTORY_DAYS).total_seconds()
    for n in range(start, start + count):
        opened = now - timedelta(seconds=span * (1 - n / total)) - timedelta(days=1)
        yield (rid, 2 + n % 4, "history", "closed", 1, opened, opened + timedelta(minutes=55))


async def _new_ids(conn: asyncpg.Connection, table: str, rid: int, after: int,
                   count: int) -> list[int]:
    ids = [row["id"] for row in await conn.fetch(NEW_IDS.format(table=table), rid, after)]
    if len(ids) != count:
        raise Failed(f"history: {len(ids)} new {table} rows, not {count} (is something else "
                     "writing to the bench database?)")
    return ids


async def seed_history(dsn: str, rid: int, items: int, bench: Bench) -> dict[str, Any]:
    """COPY `items` order items (items / LINES closed orders with a bumped ticket each)."""
    total = items // LINES
    conn = await asyncpg.connect(dsn)
    started = time.perf_counter()
    try:
        await conn.execute(LOADER)
        menu = await conn.fetch("SELECT id, name, station, price_minor FROM menu_items "
                                "WHERE restaurant_id = $1 ORDER BY id", rid)
        now = datetime.now(UTC)
        last_order = await conn.fetchval("SELECT coalesce(max(id), 0) FROM orders") or 0
        last_ticket = await conn.fetchval("SELECT coalesce(max(id), 0) FROM tickets") or 0
        for start in range(0, total, CHUNK_ORDERS):
            count = min(CHUNK_ORDERS, total - start)
            async with conn.transaction():
                rows = list(_orders(rid, count, start, total, now))
                await conn.copy_records_to_table("orders", records=rows, columns=ORDER_COLUMNS)
                order_ids = await _new_ids(conn, "orders", rid, last_order, count)
                await conn.copy_records_to_table("tickets", columns=TICKET_COLUMNS, records=[
                    (rid, order_id, "grill", 1, "bumped", row[5] + timedelta(minutes=5),
                     row[5] + timedelta(minutes=6), row[5] + timedelta(minutes=17))
                    for order_id, row in zip(order_ids, rows)])
                ticket_ids = await _new_ids(conn, "tickets", rid, last_ticket, count)
                await conn.copy_records_to_table("order_items", columns=ITEM_COLUMNS, records=[
                    (rid, order_id, dish["id"], dish["name"], dish["station"], 1,
                     dish["price_minor"], 1, "served", ticket_id, row[5],
                     row[5] + timedelta(minutes=5), row[5] + timedelta(minutes=17),
                     row[5] + timedelta(minutes=18))
                    for order_id, ticket_id, row in zip(order_ids, ticket_ids, rows)
                    for dish in (menu[(order_id + line) % len(menu)] for line in range(LINES))])
            last_order, last_ticket = order_ids[-1], ticket_ids[-1]
            bench.progress(f"history: {start + count:,} of {total:,} orders copied "
                           f"({(start + count) * LINES:,} items)")
        copied = time.perf_counter() - started
        await conn.execute("VACUUM (ANALYZE) orders, tickets, order_items")
        vacuumed = time.perf_counter() - started - copied
    finally:
        await conn.close()
    bench.progress(f"history: copied in {copied:.0f} s, vacuumed and analyzed in {vacuumed:.0f} s")
    return {"orders": total, "tickets": total, "order_items": total * LINES,
            "copy_seconds": round(copied, 1), "vacuum_analyze_seconds": round(vacuumed, 1),
            "rows_per_s": round(total * (2 + LINES) / copied)}


def _scans(plan: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(node type, relation) of every scan in an EXPLAIN (FORMAT JSON) plan."""
    if "Relation Name" in plan:
        yield plan["Node Type"], plan["Relation Name"]
    for child in plan.get("Plans", []):
        yield from _scans(child)


async def hot_plans(dsn: str, rid: int) -> dict[str, list[list[str]]]:
    """The scans PostgreSQL plans for the two hot reads, as the API runs them."""
    conn = await asyncpg.connect(dsn)
    try:
        found = {}
        for name, sql, args in (("open_orders", orders.LIST_ORDERS, (rid, 100, 0, "open", None)),
                                ("open_tickets", kitchen.LIST_OPEN, (rid, 100, 0, "grill"))):
            plan = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args))
            found[name] = [list(scan) for scan in sorted(set(_scans(plan[0]["Plan"])))]
        return found
    finally:
        await conn.close()


async def history(bench: Bench) -> dict[str, Any]:
    """Open orders and open tickets vs /db, on an empty history and on years of it."""
    wrk_path()
    rounds, seconds, warmup = _sizes(bench, 3)
    items = ITEMS_QUICK if bench.quick else ITEMS_FULL
    async with AsyncExitStack() as stack:
        # Rollups of the loaded years would be made in the background while measuring.
        app = await stack.enter_async_context(serveline(
            bench, "history", env={"SERVELINE_ROLLUP_SECONDS": "86400"}))
        bare = await stack.enter_async_context(yardstick(bench, "history"))
        http = await stack.enter_async_context(_session())
        door = await open_door(app, http)
        await door.place_orders(await door.order_bodies(OPEN_ORDERS))

        def get(name: str) -> Path:
            return script(bench, name, token=door.token)

        def loads(tag: str) -> list[Load]:
            return [Load(bench, f"open_orders_{tag}", app, door.base + "/orders?status=open", get),
                    Load(bench, f"open_tickets_{tag}", app,
                         door.base + "/kitchen/tickets?station=grill", get),
                    Load(bench, f"yardstick_db_{tag}", bare, "/db", get)]

        settle = partial(analyze, bench, app, bare)
        before = await interleaved(bench, loads("before"), rounds, seconds, warmup, settle=settle)
        seeded = await seed_history(app.dsn, door.rid, items, bench)
        after = await interleaved(bench, loads("after"), rounds, seconds, warmup, settle=settle)
        plans = await hot_plans(app.dsn, door.rid)
        listed = await door.get(door.base + "/orders?status=open&limit=100")
        if len(listed["items"]) != OPEN_ORDERS:
            raise Failed(f"after the history the open orders list holds {len(listed['items'])}")
    results = {**before, **after}
    seq_scans = [f"{read}: {relation}" for read, scans in plans.items()
                 for node, relation in scans if node == "Seq Scan" and relation in BIG_TABLES]
    if seq_scans:
        bench.note("history: a hot read scans a history table sequentially: " + ", ".join(seq_scans))

    def ratio(read: str, tag: str) -> float:
        return median_ratio(results[f"{read}_{tag}"], results[f"yardstick_db_{tag}"])

    figures = {f"ratio_{read}_vs_db_{tag}": ratio(read, tag)
               for read in ("open_orders", "open_tickets") for tag in ("before", "after")}
    return {
        "history_order_items": seeded["order_items"],
        **figures,
        "history_hot_read_ratio": min(
            figures[f"ratio_{read}_vs_db_after"] / figures[f"ratio_{read}_vs_db_before"]
            for read in ("open_orders", "open_tickets")),
        "history_seed_rows_per_s": seeded["rows_per_s"],
        "details": {"history": {
            "seeded": seeded, "plans_after": plans, "rounds": rounds, "seconds_per_run": seconds,
            "open_orders": OPEN_ORDERS, "order_lines": LINES,
            **{f"{name}_rps": median_rps(runs) for name, runs in results.items()},
            "latency": latency(results)}},
    }


SCENARIOS = {"history": history}
