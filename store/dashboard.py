"""The manager's numbers for today, in one statement: covers, orders, floor, waitlist, kitchen, revenue."""
from __future__ import annotations

import asyncpg
import msgspec


class Dashboard(msgspec.Struct, frozen=True):
    day_starts_at: str
    covers: int  # guests seated today (turns' party sizes)
    turns: int
    open_orders: int
    tables_by_status: dict[str, int]
    waitlist_length: int
    longest_wait_minutes: int
    ticket_seconds_by_station: dict[str, int]  # average fire → bump of tickets bumped today
    open_tickets: int
    orders_closed: int
    revenue_minor: int  # live lines of orders closed today
    tips_minor: int
    currency: str


# "Today" is the restaurant's own day, in its time zone.
DASHBOARD = """
WITH r AS (
    SELECT id, seq, currency,
           (date_trunc('day', now() AT TIME ZONE timezone) AT TIME ZONE timezone) AS day_start
    FROM restaurants WHERE id = $1
), turns AS (
    SELECT coalesce(sum(tt.party_size), 0) AS covers, count(*) AS turns
    FROM table_turns tt, r WHERE tt.restaurant_id = $1 AND tt.seated_at >= r.day_start
), floor AS (
    SELECT coalesce(json_object_agg(status, n), '{}') AS by_status
    FROM (SELECT status, count(*) AS n FROM dining_tables WHERE restaurant_id = $1 GROUP BY status) s
), waiting AS (
    SELECT count(*) AS length,
           coalesce(floor(max(extract(epoch FROM now() - joined_at)) / 60), 0)::int AS longest
    FROM waitlist_parties WHERE restaurant_id = $1 AND status IN ('waiting', 'notified')
), kitchen AS (
    SELECT coalesce(json_object_agg(station, seconds), '{}') AS by_station
    FROM (SELECT k.station, round(avg(extract(epoch FROM k.bumped_at - k.fired_at)))::int AS seconds
          FROM tickets k, r WHERE k.restaurant_id = $1 AND k.status = 'bumped'
            AND k.bumped_at >= r.day_start
          GROUP BY k.station) s
), open_tickets AS (
    SELECT count(*) AS n FROM tickets WHERE restaurant_id = $1 AND status <> 'bumped'
), open_orders AS (
    SELECT count(*) AS n FROM orders WHERE restaurant_id = $1 AND status = 'open'
), takings AS (
    SELECT count(*) AS orders,
           coalesce(sum((o.payment->>'total_minor')::bigint), 0) AS revenue,
           coalesce(sum((o.payment->>'tip_minor')::bigint), 0) AS tips
    FROM orders o, r WHERE o.restaurant_id = $1 AND o.status = 'closed' AND o.closed_at >= r.day_start
)
SELECT r.seq, json_build_object(
    'day_starts_at', r.day_start, 'covers', turns.covers, 'turns', turns.turns,
    'open_orders', open_orders.n, 'tables_by_status', floor.by_status,
    'waitlist_length', waiting.length, 'longest_wait_minutes', waiting.longest,
    'ticket_seconds_by_station', kitchen.by_station, 'open_tickets', open_tickets.n,
    'orders_closed', takings.orders, 'revenue_minor', takings.revenue, 'tips_minor', takings.tips,
    'currency', r.currency)::text AS dashboard
FROM r, turns, floor, waiting, kitchen, open_tickets, open_orders, takings"""


async def today(pool: asyncpg.Pool, rid: int) -> tuple[msgspec.Raw, int]:
    row = await pool.fetchrow(DASHBOARD, rid)
    return msgspec.Raw(row["dashboard"].encode()), row["seq"]
