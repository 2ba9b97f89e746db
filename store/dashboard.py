"""The manager's numbers for today, each view in one statement: the day so far, and the day by hour."""
from __future__ import annotations

from datetime import date, datetime

import asyncpg
import msgspec

from store.restaurants import Settings


class LateTicket(msgspec.Struct, frozen=True):
    """An open ticket fired at least the restaurant's red threshold ago."""
    id: int
    order_id: int
    station: str
    table_label: str | None  # None for an order without a table
    fired_at: datetime
    minutes: int  # whole minutes since fired, as the kitchen screen counts them


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
    ticket_red_minutes: int  # the restaurant's setting: an open ticket this old is late
    late_tickets: list[LateTicket]  # oldest first


class HourOfDay(msgspec.Struct, frozen=True):
    hour: int  # 0–23 on the restaurant's clock
    starts_at: datetime
    covers: int  # guests seated in this hour (turns' party sizes, as the dashboard counts them)
    turns: int  # parties seated in this hour
    tickets: int  # tickets bumped in this hour, leaving out those whose items were all voided
    ticket_avg_minutes: float | None  # fire → bump of those tickets; None when there were none
    ticket_p90_minutes: float | None


class Hourly(msgspec.Struct, frozen=True):
    date: date
    timezone: str
    day_starts_at: datetime
    current_hour: int | None  # the restaurant's hour now, when the day is today
    hours: list[HourOfDay]  # all 24, in order


# A restaurant that never saved its settings has '{}': the default comes from Settings.
RED_MINUTES = f"coalesce((settings->>'ticket_red_minutes')::int, {Settings().ticket_red_minutes})"



def station_red(red: str) -> str:
    """A ticket `k`'s red threshold: its station's own (settings.station_thresholds, `r` the
    restaurant), else `red`, the restaurant's."""
    return f"coalesce((r.settings #>> ARRAY['station_thresholds', k.station, 'red_minutes'])::int, {red})"


# "Today" is the restaurant's own day, in its time zone.
DASHBOARD = f"""
WITH r AS (
    SELECT id, seq, currency, settings, {RED_MINUTES} AS red_minutes,
           (date_trunc('day', now() AT TIME ZONE timezone) AT TIME ZONE timezone) AS day_start
    FROM restaurants WHERE id = $1
), turns AS (
    SELECT coalesce(sum(tt.party_size), 0) AS covers, count(*) AS turns
    FROM table_turns tt, r WHERE tt.restaurant_id = $1 AND tt.seated_at >= r.day_start
), floor AS (
    SELECT coalesce(json_object_agg(status, n), '{{}}') AS by_status
    FROM (SELECT status, count(*) AS n FROM dining_tables WHERE restaurant_id = $1 GROUP BY status) s
), waiting AS (
    SELECT count(*) AS length,
           coalesce(floor(max(extract(epoch FROM now() - joined_at)) / 60), 0)::int AS longest
    FROM waitlist_parties WHERE restaurant_id = $1 AND status IN ('waiting', 'notified')
), kitchen AS (
    SELECT coalesce(json_object_agg(station, seconds), '{{}}') AS by_station
    FROM (SELECT k.station, round(avg(extract(epoch FROM k.bumped_at - k.fired_at)))::int AS seconds
          FROM tickets k, r WHERE k.restaurant_id = $1 AND k.status = 'bumped'
            AND k.bumped_at >= r.day_start
          GROUP BY k.station) s
), open_tickets AS (
    SELECT count(*) AS n FROM tickets WHERE restaurant_id = $1 AND status <> 'bumped'
), late AS (
    SELECT coalesce(json_agg(json_build_object(
               'id', k.id, 'order_id', k.order_id, 'station', k.station, 'table_label', dt.label,
               'fired_at', k.fired_at, 'minutes', floor(extract(epoch FROM now() - k.fired_at) / 60)::int)
           ORDER BY k.fired_at, k.id), '[]') AS tickets
    FROM r
    JOIN tickets k ON k.restaurant_id = $1 AND k.status <> 'bumped'
                  AND k.fired_at <= now() - make_interval(mins => {station_red("r.red_minutes")})
    JOIN orders o ON o.restaurant_id = k.restaurant_id AND o.id = k.order_id
    LEFT JOIN dining_tables dt ON dt.restaurant_id = o.restaurant_id AND dt.id = o.table_id
), open_orders AS (
    SELECT count(*) AS n FROM orders WHERE restaurant_id = $1 AND status = 'open'
), takings AS (
    SELECT count(*) AS orders,
           coalesce(sum((o.payment->>'total_minor')::bigint), 0) AS revenue,
           coalesce(sum((o.payment->>'tip_minor')::bigint), 0) AS tips
    FROM orders o, r WHERE o.restaurant_id = $1 AND o.status = 'closed' AND o.closed_at >= r.day_start
      AND NOT o.payment ? 'merged_into'  -- emptied into another table's order
)
SELECT r.seq, json_build_object(
    'day_starts_at', r.day_start, 'covers', turns.covers, 'turns', turns.turns,
    'open_orders', open_orders.n, 'tables_by_status', floor.by_status,
    'waitlist_length', waiting.length, 'longest_wait_minutes', waiting.longest,
    'ticket_seconds_by_station', kitchen.by_station, 'open_tickets', open_tickets.n,
    'orders_closed', takings.orders, 'revenue_minor', takings.revenue, 'tips_minor', takings.tips,
    'currency', r.currency, 'ticket_red_minutes', r.red_minutes, 'late_tickets', late.tickets
)::text AS dashboard
FROM r, turns, floor, waiting, kitchen, open_tickets, late, open_orders, takings"""

# One local day ($2, or today) cut into its 24 local hours. Covers count by the hour
# a party was seated; ticket times by the hour the ticket was bumped. On the days
# the clocks change, one hour is empty or holds two.
HOURLY = """
WITH r AS (
    SELECT seq, timezone, now() AT TIME ZONE timezone AS local_now,
           coalesce($2::date, (now() AT TIME ZONE timezone)::date) AS day
    FROM restaurants WHERE id = $1
), span AS (
    SELECT r.day::timestamp AT TIME ZONE r.timezone AS starts,
           (r.day + 1)::timestamp AT TIME ZONE r.timezone AS ends
    FROM r
), seated AS (
    SELECT extract(hour FROM tt.seated_at AT TIME ZONE r.timezone)::int AS hour,
           coalesce(sum(tt.party_size), 0) AS covers, count(*) AS turns
    FROM r, span, table_turns tt
    WHERE tt.restaurant_id = $1 AND tt.seated_at >= span.starts AND tt.seated_at < span.ends
    GROUP BY 1
), cooked AS (
    SELECT extract(hour FROM k.bumped_at AT TIME ZONE r.timezone)::int AS hour, count(*) AS tickets,
           round(avg(t.seconds) / 60, 1) AS avg_minutes,
           round((percentile_cont(0.9) WITHIN GROUP (ORDER BY t.seconds))::numeric / 60, 1) AS p90_minutes
    FROM r, span, tickets k, LATERAL (SELECT extract(epoch FROM k.bumped_at - k.fired_at) AS seconds) t
    WHERE k.restaurant_id = $1 AND k.status = 'bumped'
      AND k.bumped_at >= span.starts AND k.bumped_at < span.ends
      AND EXISTS (SELECT 1 FROM order_items oi
                  WHERE oi.restaurant_id = $1 AND oi.ticket_id = k.id AND oi.status <> 'void')
    GROUP BY 1
)
SELECT r.seq, json_build_object(
    'date', r.day, 'timezone', r.timezone, 'day_starts_at', span.starts,
    'current_hour', CASE WHEN r.local_now::date = r.day THEN extract(hour FROM r.local_now)::int END,
    'hours', (SELECT json_agg(json_build_object(
                  'hour', h, 'starts_at', (r.day + make_interval(hours => h)) AT TIME ZONE r.timezone,
                  'covers', coalesce(s.covers, 0), 'turns', coalesce(s.turns, 0),
                  'tickets', coalesce(c.tickets, 0), 'ticket_avg_minutes', c.avg_minutes,
                  'ticket_p90_minutes', c.p90_minutes) ORDER BY h)
              FROM generate_series(0, 23) h
              LEFT JOIN seated s ON s.hour = h
              LEFT JOIN cooked c ON c.hour = h)
)::text AS hourly
FROM r, span"""


async def today(pool: asyncpg.Pool, rid: int) -> tuple[msgspec.Raw, int]:
    row = await pool.fetchrow(DASHBOARD, rid)
    return msgspec.Raw(row["dashboard"].encode()), row["seq"]


async def hourly(pool: asyncpg.Pool, rid: int, day: date | None) -> tuple[msgspec.Raw, int]:
    """Covers and ticket times per hour of the restaurant's local day (today when `day` is None)."""
    row = await pool.fetchrow(HOURLY, rid, day)
    return msgspec.Raw(row["hourly"].encode()), row["seq"]
