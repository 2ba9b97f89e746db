"""The hot queries use their indexes: EXPLAIN over a large dataset shows no sequential scan of a big table.

One database per module is filled with 50 more restaurants laid out like the
demo and a busy history: 200,000 orders with 400,000 items and 200,000 tickets,
100,000 reservations, 10,000 waitlist parties, 200,000 table turns, 100,000
events. Each hot query is explained with the parameters a real request uses.
"""
from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from store import (
    dashboard,
    events,
    firing,
    floor,
    kitchen,
    menu,
    orders,
    pacing,
    reservations,
    waitlist,
)
from store.pool import with_database

BIG = 5_000  # rows: a sequential scan of a table this size or larger fails the test

FILL = """
INSERT INTO restaurants (slug, name, timezone)
SELECT 'busy-' || g, 'Busy ' || g, 'America/New_York' FROM generate_series(1, 50) g;

INSERT INTO areas (restaurant_id, name, sort)
SELECT r.id, a.name, a.sort FROM restaurants r, areas a
WHERE r.slug LIKE 'busy-%' AND a.restaurant_id = (SELECT id FROM restaurants WHERE slug = 'demo');

INSERT INTO dining_tables (restaurant_id, area_id, label, seats, x, y, shape)
SELECT r.id, na.id, t.label, t.seats, t.x, t.y, t.shape
FROM restaurants r
JOIN areas na ON na.restaurant_id = r.id
JOIN areas oa ON oa.restaurant_id = (SELECT id FROM restaurants WHERE slug = 'demo') AND oa.name = na.name
JOIN dining_tables t ON t.restaurant_id = oa.restaurant_id AND t.area_id = oa.id
WHERE r.slug LIKE 'busy-%';

INSERT INTO menu_categories (restaurant_id, name, sort)
SELECT r.id, c.name, c.sort FROM restaurants r, menu_categories c
WHERE r.slug LIKE 'busy-%' AND c.restaurant_id = (SELECT id FROM restaurants WHERE slug = 'demo');

INSERT INTO menu_items (restaurant_id, category_id, name, price_minor, station, sort)
SELECT r.id, nc.id, i.name, i.price_minor, i.station, i.sort
FROM restaurants r
JOIN menu_categories nc ON nc.restaurant_id = r.id
JOIN menu_categories oc ON oc.restaurant_id = (SELECT id FROM restaurants WHERE slug = 'demo') AND oc.name = nc.name
JOIN menu_items i ON i.restaurant_id = oc.restaurant_id AND i.category_id = oc.id
WHERE r.slug LIKE 'busy-%';

INSERT INTO menu_modifiers (restaurant_id, item_id, name, price_delta_minor, sort)
SELECT ni.restaurant_id, ni.id, m.name, m.price_delta_minor, m.sort
FROM menu_items ni
JOIN restaurants r ON r.id = ni.restaurant_id AND r.slug LIKE 'busy-%'
JOIN menu_items oi ON oi.restaurant_id = (SELECT id FROM restaurants WHERE slug = 'demo') AND oi.name = ni.name
JOIN menu_modifiers m ON m.restaurant_id = oi.restaurant_id AND m.item_id = oi.id;

INSERT INTO orders (restaurant_id, status, created_at, closed_at, payment, fired_course)
SELECT r.id, CASE WHEN g % 400 = 0 THEN 'open' ELSE 'closed' END,
       now() - make_interval(mins => g * 3),
       CASE WHEN g % 400 = 0 THEN NULL ELSE now() - make_interval(mins => g * 3 - 50) END,
       CASE WHEN g % 400 = 0 THEN NULL ELSE '{"method": "card", "total_minor": 4200}'::jsonb END, 1
FROM restaurants r, generate_series(1, 4000) g WHERE r.slug LIKE 'busy-%';

INSERT INTO tickets (restaurant_id, order_id, station, course, status, fired_at, bumped_at)
SELECT o.restaurant_id, o.id, (ARRAY['grill', 'fry', 'cold', 'bar'])[1 + o.id % 4], 1,
       CASE WHEN o.status = 'open' THEN 'open' ELSE 'bumped' END, o.created_at,
       CASE WHEN o.status = 'open' THEN NULL ELSE o.created_at + interval '12 minutes' END
FROM orders o JOIN restaurants r ON r.id = o.restaurant_id WHERE r.slug LIKE 'busy-%';

INSERT INTO order_items (restaurant_id, order_id, menu_item_id, name, station, qty,
                         unit_price_minor, status, fired_at, ticket_id)
SELECT k.restaurant_id, k.order_id, mi.id, mi.name, k.station, 1, mi.price_minor,
       CASE WHEN k.status = 'open' THEN 'fired' ELSE 'served' END, k.fired_at, k.id
FROM tickets k
JOIN LATERAL (SELECT m.id, m.name, m.price_minor FROM menu_items m
              WHERE m.restaurant_id = k.restaurant_id ORDER BY m.id LIMIT 2) mi ON true
JOIN restaurants r ON r.id = k.restaurant_id WHERE r.slug LIKE 'busy-%';

INSERT INTO table_turns (restaurant_id, table_id, party_size, seated_at, freed_at)
SELECT t.restaurant_id, t.id, 2 + g % 4, now() - make_interval(mins => g * 60),
       now() - make_interval(mins => g * 60 - 70)
FROM dining_tables t JOIN restaurants r ON r.id = t.restaurant_id, generate_series(1, 200) g
WHERE r.slug LIKE 'busy-%';

INSERT INTO reservations (restaurant_id, name, size, starts_at, ends_at, status)
SELECT r.id, 'Guest ' || g, 2 + g % 6, now() - interval '200 days' + make_interval(mins => g * 150),
       now() - interval '200 days' + make_interval(mins => g * 150 + 90),
       CASE WHEN g % 10 = 0 THEN 'cancelled' ELSE 'completed' END
FROM restaurants r, generate_series(1, 2000) g WHERE r.slug LIKE 'busy-%';

INSERT INTO waitlist_parties (restaurant_id, name, size, status, joined_at, seated_at)
SELECT r.id, 'Party ' || g, 2 + g % 5, CASE WHEN g > 195 THEN 'waiting' ELSE 'seated' END,
       now() - make_interval(mins => g * 30), CASE WHEN g > 195 THEN NULL ELSE now() - make_interval(mins => g * 30 - 20) END
FROM restaurants r, generate_series(1, 200) g WHERE r.slug LIKE 'busy-%';

INSERT INTO events (restaurant_id, seq, epoch, channel, name, data, at)
SELECT r.id, g, r.epoch, 'orders', 'order.created', '{}', now() - make_interval(secs => 2000 - g)
FROM restaurants r, generate_series(1, 2000) g WHERE r.slug LIKE 'busy-%';
UPDATE restaurants SET seq = 2000 WHERE slug LIKE 'busy-%';
"""


async def _fill(admin_dsn: str, template: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    finally:
        await admin.close()
    conn = await asyncpg.connect(with_database(admin_dsn, name))
    try:
        await conn.execute(FILL)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def busy_db(pg_admin_dsn: str, template_db: str) -> Iterator[str]:
    name = f"serveline_busy_{uuid.uuid4().hex[:8]}"
    asyncio.run(_fill(pg_admin_dsn, template_db, name))
    yield with_database(pg_admin_dsn, name)

    async def drop() -> None:
        admin = await asyncpg.connect(pg_admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
    asyncio.run(drop())


def seq_scans(plan: dict[str, Any], big: set[str]) -> list[str]:
    found = []
    if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") in big:
        found.append(plan["Relation Name"])
    for child in plan.get("Plans", []):
        found += seq_scans(child, big)
    return found


def hot_queries(rid: int) -> dict[str, tuple[str, tuple[Any, ...]]]:
    today = datetime.now().astimezone()
    start, end = reservations.day_window(date.today() - timedelta(days=100), "America/New_York")
    return {
        "open orders": (orders.LIST_ORDERS, (rid, 50, 0, "open", None)),
        "one order": (orders.GET_ORDER, (rid, 1)),
        "tickets by station": (kitchen.LIST_OPEN, (rid, 50, 0, "grill")),
        "all open tickets": (kitchen.LIST_OPEN, (rid, 50, 0, None)),
        "expo": (kitchen.LIST_PASS, (rid, 50, 0)),
        "recently bumped": (kitchen.LIST_RECENT, (rid, 50, reservations.FAR_FUTURE, 2**62, "grill")),
        "held lines due": (firing.DUE_RESTAURANTS, ()),
        "orders with lines due": (firing.LOCK_DUE_ORDERS, (rid,)),
        "kitchen behind": (pacing.KITCHEN, (rid, 8, 180)),
        "pacing counts": (pacing.COUNTS, (rid, today, today + timedelta(minutes=15), today,
                                          today + timedelta(hours=5), 0)),
        "open waitlist": (waitlist.LIST, (rid, 50, 0, "open")),
        "wait estimate": (waitlist.ESTIMATE, (rid, 4)),
        "reservations of a day": (reservations.LIST, (rid, 50, reservations.FAR_PAST, 0, start, end,
                                                      None)),
        "availability": (reservations.AVAILABILITY, (rid, today, today + timedelta(hours=4), 15, 90, 2)),
        "tables": (floor.LIST_TABLES, (rid, 50, 0, None, None)),
        "menu": (menu.MENU, (rid,)),
        "dashboard": (dashboard.DASHBOARD, (rid,)),
        "events since": (events.READ_AFTER, (rid, 1900, 1000)),
        "replay": (events.REPLAY, (rid, 1900, ["orders"], False, 1000)),
    }


@pytest.mark.parametrize("name", sorted(hot_queries(0)))
async def test_hot_query_does_not_scan_a_big_table(busy_db, name):
    conn = await asyncpg.connect(busy_db)
    try:
        rid = await conn.fetchval("SELECT id FROM restaurants WHERE slug = 'busy-25'")
        assert await conn.fetchval("SELECT count(*) FROM orders") >= 200_000
        big = {r["relname"] for r in await conn.fetch(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND reltuples >= $1", BIG)}
        # The event log's months are its big tables (a scan names the month it reads).
        assert {"orders", "order_items", "tickets", "reservations"} <= big
        assert any(name.startswith("events_") for name in big)
        sql, args = hot_queries(rid)[name]
        plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
        root = json.loads(plan)[0]["Plan"]
        assert seq_scans(root, big) == [], f"{name}: sequential scan in\n{json.dumps(root, indent=1)[:4000]}"
    finally:
        await conn.close()
