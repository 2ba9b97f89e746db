"""Reports from the lifecycle timestamps: what each of the restaurant's days sold and seated.

A day is the restaurant's own: from local midnight to the next, in its time zone, so a day
of a DST change is 23 or 25 hours long. Sales count on the day an order was closed (paid);
covers on the day (or hour) a party was seated; orders per hour on the hour they were taken.
"""
from __future__ import annotations

from datetime import date, datetime

import asyncpg
import msgspec

MOST_DAYS = 366


class CategorySales(msgspec.Struct, frozen=True):
    category: str
    gross_minor: int


class Day(msgspec.Struct, frozen=True):
    date: date
    orders: int  # orders closed this day
    covers: int  # guests seated this day
    gross_minor: int  # sold on those orders, voided lines left out
    void_minor: int  # voided on those orders
    average_check_minor: int  # gross / orders, rounded; 0 without orders
    by_category: list[CategorySales]


class Daily(msgspec.Struct, frozen=True):
    timezone: str
    currency: str
    days: list[Day]


class Hour(msgspec.Struct, frozen=True):
    starts_at: datetime  # absolute: the 25-hour day of a DST change has two local 01:00s
    local_time: str  # HH:MM on the restaurant's clock
    orders: int  # orders taken in this hour
    covers: int  # guests seated in this hour


class Hourly(msgspec.Struct, frozen=True):
    date: date
    timezone: str
    hours: list[Hour]  # every hour of the local day: 23, 24 or 25 of them


# $1 restaurant, $2 first day, $3 last day (both local, inclusive).
DAILY = """
WITH r AS (
    SELECT seq, timezone, currency FROM restaurants WHERE id = $1
), days AS (
    SELECT d::date AS day, d AT TIME ZONE r.timezone AS starts,
           (d + interval '1 day') AT TIME ZONE r.timezone AS ends
    FROM r, generate_series($2::date::timestamp, $3::date::timestamp, interval '1 day') d
), closed AS (
    SELECT days.day, o.id FROM days
    JOIN orders o ON o.restaurant_id = $1 AND o.status = 'closed'
                 AND o.closed_at >= days.starts AND o.closed_at < days.ends
), lines AS (
    SELECT c.day, oi.status, oi.line_total_minor, coalesce(mc.name, '') AS category
    FROM closed c
    JOIN order_items oi ON oi.restaurant_id = $1 AND oi.order_id = c.id
    LEFT JOIN menu_items mi ON mi.restaurant_id = $1 AND mi.id = oi.menu_item_id
    LEFT JOIN menu_categories mc ON mc.restaurant_id = $1 AND mc.id = mi.category_id
), sales AS (
    SELECT day, coalesce(sum(line_total_minor) FILTER (WHERE status <> 'void'), 0) AS gross,
           coalesce(sum(line_total_minor) FILTER (WHERE status = 'void'), 0) AS voids
    FROM lines GROUP BY day
), categories AS (
    SELECT day, json_agg(json_build_object('category', category, 'gross_minor', gross)
                         ORDER BY gross DESC, category) AS list
    FROM (SELECT day, category, sum(line_total_minor) AS gross FROM lines
          WHERE status <> 'void' GROUP BY day, category) per
    GROUP BY day
), seated AS (
    SELECT days.day, sum(tt.party_size) AS covers FROM days
    JOIN table_turns tt ON tt.restaurant_id = $1 AND tt.seated_at >= days.starts
                       AND tt.seated_at < days.ends
    GROUP BY days.day
), counted AS (
    SELECT day, count(*) AS orders FROM closed GROUP BY day
)
SELECT r.seq, json_build_object('timezone', r.timezone, 'currency', r.currency, 'days',
    coalesce((SELECT json_agg(json_build_object(
        'date', days.day, 'orders', coalesce(counted.orders, 0),
        'covers', coalesce(seated.covers, 0), 'gross_minor', coalesce(sales.gross, 0),
        'void_minor', coalesce(sales.voids, 0),
        'average_check_minor', coalesce(round(sales.gross::numeric / nullif(counted.orders, 0)), 0),
        'by_category', coalesce(categories.list, '[]')) ORDER BY days.day)
     FROM days
     LEFT JOIN counted ON counted.day = days.day
     LEFT JOIN sales ON sales.day = days.day
     LEFT JOIN categories ON categories.day = days.day
     LEFT JOIN seated ON seated.day = days.day), '[]'))::text AS report
FROM r"""

# $1 restaurant, $2 the local day. Hours step through absolute time from local midnight to the
# next, so a DST change gives 23 or 25 of them.
HOURLY = """
WITH r AS (
    SELECT seq, timezone FROM restaurants WHERE id = $1
), span AS (
    SELECT $2::date::timestamp AT TIME ZONE r.timezone AS starts,
           ($2::date + 1)::timestamp AT TIME ZONE r.timezone AS ends
    FROM r
), hours AS (
    SELECT h AS starts, h + interval '1 hour' AS ends
    FROM span, generate_series(span.starts, span.ends - interval '1 hour', interval '1 hour') h
)
SELECT r.seq, json_build_object('date', $2::date, 'timezone', r.timezone, 'hours',
    (SELECT json_agg(json_build_object(
         'starts_at', hours.starts,
         'local_time', to_char(hours.starts AT TIME ZONE r.timezone, 'HH24:MI'),
         'orders', (SELECT count(*) FROM orders o WHERE o.restaurant_id = $1
                    AND o.created_at >= hours.starts AND o.created_at < hours.ends),
         'covers', (SELECT coalesce(sum(tt.party_size), 0) FROM table_turns tt
                    WHERE tt.restaurant_id = $1
                      AND tt.seated_at >= hours.starts AND tt.seated_at < hours.ends))
         ORDER BY hours.starts) FROM hours))::text AS report
FROM r"""

_daily = msgspec.json.Decoder(Daily)
_hourly = msgspec.json.Decoder(Hourly)


async def daily(pool: asyncpg.Pool, rid: int, first: date, last: date) -> tuple[Daily, int]:
    """Each local day from `first` to `last`, and the seq the numbers reflect."""
    row = await pool.fetchrow(DAILY, rid, first, last)
    return _daily.decode(row["report"]), row["seq"]


async def hourly(pool: asyncpg.Pool, rid: int, day: date) -> tuple[Hourly, int]:
    """Each hour of the restaurant's local `day`, and the seq the numbers reflect."""
    row = await pool.fetchrow(HOURLY, rid, day)
    return _hourly.decode(row["report"]), row["seq"]
