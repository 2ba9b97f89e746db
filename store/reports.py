"""Reports from the lifecycle timestamps: what each of the restaurant's days sold and seated.

A day is the restaurant's own: from local midnight to the next, in its time zone, so a day
of a DST change is 23 or 25 hours long. Sales count on the day an order was closed (paid);
covers on the day (or hour) a party was seated; orders per hour on the hour they were taken.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

import asyncpg
import msgspec

from store.dashboard import RED_MINUTES

MOST_DAYS = 366


class CategorySales(msgspec.Struct, frozen=True):
    category: str
    gross_minor: int


class TableTurns(msgspec.Struct, frozen=True):
    table_id: int
    label: str
    turns: int  # parties that left this table this day (a move counts at each table)
    average_minutes: float  # seated → freed at this table


class PartyStays(msgspec.Struct, frozen=True):
    party_size: int
    stays: int  # parties of this size that left this day
    average_minutes: float  # first seated → last freed, across any table moves


class StationTimes(msgspec.Struct, frozen=True):
    station: str
    tickets: int  # tickets bumped this day (all-voided tickets left out)
    p50_seconds: float  # fire → bump
    p90_seconds: float
    late: int  # fire → bump past the restaurant's red threshold


class Day(msgspec.Struct, frozen=True):
    date: date
    orders: int  # orders closed this day
    covers: int  # guests seated this day (a party that moves tables counts once)
    gross_minor: int  # sold on those orders, voided lines left out
    void_minor: int  # voided on those orders
    average_check_minor: int  # gross / orders, rounded; 0 without orders
    by_category: list[CategorySales]
    turns: int  # table turns ended this day
    average_turn_minutes: float  # seated → freed, per table turn; 0 without turns
    by_table: list[TableTurns]
    by_party_size: list[PartyStays]
    tickets: int  # tickets bumped this day
    ticket_p50_seconds: float  # fire → bump, all stations; 0 without tickets
    ticket_p90_seconds: float
    late_tickets: int  # past the red threshold
    by_station: list[StationTimes]
    waitlist_seated: int  # waitlist parties seated this day with a quoted wait
    quoted_minutes: float  # their average quote
    waited_minutes: float  # their average actual wait, joined → seated
    waited_past_quote: int  # seated later than quoted
    reservations: int  # booked for this day, cancelled ones left out
    no_shows: int
    no_show_rate: float  # no_shows / reservations, 0 without reservations


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


# The figures of the given local days ($2, a date array) of restaurant $1, written to its
# rollups in one statement. Each fact counts on the day it became final: sales when the order
# was closed, covers when the party sat down, turns when the table was freed, ticket times
# when the ticket was bumped, waits when the party was seated, no-shows on the booked day.
REFRESH = f"""
WITH r AS (
    SELECT seq, timezone, {RED_MINUTES} AS red FROM restaurants WHERE id = $1
), days AS (
    SELECT d AS day, d::timestamp AT TIME ZONE r.timezone AS starts,
           (d + 1)::timestamp AT TIME ZONE r.timezone AS ends
    FROM r, unnest($2::date[]) d
), closed AS (
    SELECT days.day, o.id FROM days
    JOIN orders o ON o.restaurant_id = $1 AND o.status = 'closed'
                 AND o.closed_at >= days.starts AND o.closed_at < days.ends
                 AND NOT o.payment ? 'merged_into'  -- emptied into another table's order
), lines AS (
    SELECT c.day, oi.status, oi.line_total_minor, coalesce(mc.name, '') AS category
    FROM closed c
    JOIN order_items oi ON oi.restaurant_id = $1 AND oi.order_id = c.id
    LEFT JOIN menu_items mi ON mi.restaurant_id = $1 AND mi.id = oi.menu_item_id
    LEFT JOIN menu_categories mc ON mc.restaurant_id = $1 AND mc.id = mi.category_id
), sales AS (
    SELECT day, count(DISTINCT id) AS orders FROM closed GROUP BY day
), amounts AS (
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
    JOIN table_turns tt ON tt.restaurant_id = $1 AND tt.stay_id IS NULL
                       AND tt.seated_at >= days.starts AND tt.seated_at < days.ends
    GROUP BY days.day
), turns AS (
    SELECT days.day, tt.id, tt.table_id, dt.label, tt.party_size, coalesce(tt.stay_id, tt.id) AS stay,
           extract(epoch FROM tt.freed_at - tt.seated_at) / 60 AS minutes
    FROM days
    JOIN table_turns tt ON tt.restaurant_id = $1 AND tt.freed_at >= days.starts
                       AND tt.freed_at < days.ends
    JOIN dining_tables dt ON dt.restaurant_id = $1 AND dt.id = tt.table_id
), by_table AS (
    SELECT day, json_agg(json_build_object('table_id', table_id, 'label', label, 'turns', n,
                                           'average_minutes', round(m::numeric, 1))
                         ORDER BY label) AS list
    FROM (SELECT day, table_id, label, count(*) AS n, avg(minutes) AS m
          FROM turns GROUP BY day, table_id, label) per
    GROUP BY day
), turn_totals AS (
    SELECT day, count(*) AS turns, avg(minutes) AS minutes FROM turns GROUP BY day
), stays AS (  -- a party's stay ends with its last turn: from its first seat to that freeing
    SELECT t.day, first.party_size,
           extract(epoch FROM last.freed_at - first.seated_at) / 60 AS minutes
    FROM turns t
    JOIN table_turns last ON last.restaurant_id = $1 AND last.id = t.id
    JOIN table_turns first ON first.restaurant_id = $1 AND first.id = t.stay
    WHERE NOT EXISTS (SELECT 1 FROM table_turns later WHERE later.restaurant_id = $1
                      AND later.stay_id = t.stay AND later.id > t.id)
), by_party AS (
    SELECT day, json_agg(json_build_object('party_size', party_size, 'stays', n,
                                           'average_minutes', round(m::numeric, 1))
                         ORDER BY party_size) AS list
    FROM (SELECT day, coalesce(party_size, 0) AS party_size, count(*) AS n, avg(minutes) AS m
          FROM stays GROUP BY day, coalesce(party_size, 0)) per
    GROUP BY day
), bumped AS (
    SELECT days.day, k.station, extract(epoch FROM k.bumped_at - k.fired_at) AS seconds
    FROM days
    JOIN tickets k ON k.restaurant_id = $1 AND k.status = 'bumped'
                  AND k.bumped_at >= days.starts AND k.bumped_at < days.ends
    WHERE EXISTS (SELECT 1 FROM order_items oi WHERE oi.restaurant_id = $1
                  AND oi.ticket_id = k.id AND oi.status <> 'void')
), ticket_totals AS (
    SELECT day, count(*) AS tickets,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS p50,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS p90,
           count(*) FILTER (WHERE seconds > (SELECT red FROM r) * 60) AS late
    FROM bumped GROUP BY day
), by_station AS (
    SELECT day, json_agg(json_build_object('station', station, 'tickets', n,
                                           'p50_seconds', round(p50::numeric, 1),
                                           'p90_seconds', round(p90::numeric, 1), 'late', late)
                         ORDER BY station) AS list
    FROM (SELECT day, station, count(*) AS n,
                 percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS p50,
                 percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS p90,
                 count(*) FILTER (WHERE seconds > (SELECT red FROM r) * 60) AS late
          FROM bumped GROUP BY day, station) per
    GROUP BY day
), waits AS (
    SELECT days.day, count(*) AS parties, avg(w.quoted_minutes) AS quoted,
           avg(extract(epoch FROM w.seated_at - w.joined_at) / 60) AS waited,
           count(*) FILTER (WHERE w.seated_at - w.joined_at
                                  > make_interval(mins => w.quoted_minutes)) AS past
    FROM days
    JOIN waitlist_parties w ON w.restaurant_id = $1 AND w.status = 'seated'
                           AND w.seated_at >= days.starts AND w.seated_at < days.ends
                           AND w.quoted_minutes IS NOT NULL
    GROUP BY days.day
), booked AS (
    SELECT days.day, count(*) FILTER (WHERE v.status <> 'cancelled') AS reservations,
           count(*) FILTER (WHERE v.status = 'no_show') AS no_shows
    FROM days
    JOIN reservations v ON v.restaurant_id = $1 AND v.starts_at >= days.starts
                       AND v.starts_at < days.ends
    GROUP BY days.day
), figures AS (
    SELECT days.day, json_build_object(
        'date', days.day, 'orders', coalesce(sales.orders, 0),
        'covers', coalesce(seated.covers, 0), 'gross_minor', coalesce(amounts.gross, 0),
        'void_minor', coalesce(amounts.voids, 0),
        'average_check_minor', coalesce(round(amounts.gross::numeric / nullif(sales.orders, 0)), 0),
        'by_category', coalesce(categories.list, '[]'),
        'turns', coalesce(turn_totals.turns, 0),
        'average_turn_minutes', coalesce(round(turn_totals.minutes::numeric, 1), 0),
        'by_table', coalesce(by_table.list, '[]'), 'by_party_size', coalesce(by_party.list, '[]'),
        'tickets', coalesce(ticket_totals.tickets, 0),
        'ticket_p50_seconds', coalesce(round(ticket_totals.p50::numeric, 1), 0),
        'ticket_p90_seconds', coalesce(round(ticket_totals.p90::numeric, 1), 0),
        'late_tickets', coalesce(ticket_totals.late, 0),
        'by_station', coalesce(by_station.list, '[]'),
        'waitlist_seated', coalesce(waits.parties, 0),
        'quoted_minutes', coalesce(round(waits.quoted::numeric, 1), 0),
        'waited_minutes', coalesce(round(waits.waited::numeric, 1), 0),
        'waited_past_quote', coalesce(waits.past, 0),
        'reservations', coalesce(booked.reservations, 0),
        'no_shows', coalesce(booked.no_shows, 0),
        'no_show_rate', coalesce(round(booked.no_shows::numeric
                                       / nullif(booked.reservations, 0), 3), 0)) AS figures
    FROM days
    LEFT JOIN sales ON sales.day = days.day
    LEFT JOIN amounts ON amounts.day = days.day
    LEFT JOIN categories ON categories.day = days.day
    LEFT JOIN seated ON seated.day = days.day
    LEFT JOIN turn_totals ON turn_totals.day = days.day
    LEFT JOIN by_table ON by_table.day = days.day
    LEFT JOIN by_party ON by_party.day = days.day
    LEFT JOIN ticket_totals ON ticket_totals.day = days.day
    LEFT JOIN by_station ON by_station.day = days.day
    LEFT JOIN waits ON waits.day = days.day
    LEFT JOIN booked ON booked.day = days.day
)
INSERT INTO daily_rollups AS u (restaurant_id, day, figures, through_seq)
SELECT $1, figures.day, figures.figures, r.seq FROM figures, r
ON CONFLICT (restaurant_id, day) DO UPDATE
    SET figures = EXCLUDED.figures, through_seq = EXCLUDED.through_seq, computed_at = now()
    WHERE u.through_seq <= EXCLUDED.through_seq"""

# The days from $2 to $3 whose rollup is missing or may have moved on since it was made:
# today and yesterday while the restaurant's seq moves, and a past day whose reservations
# changed since (a no-show marked the morning after). A rolled-up day older than the orders'
# retention ($4 days; 0: kept forever) is final: its orders may be gone.
STALE = """
WITH r AS (
    SELECT seq, timezone, (now() AT TIME ZONE timezone)::date AS today FROM restaurants WHERE id = $1
)
SELECT coalesce(array_agg(d.day ORDER BY d.day), '{}') FROM r
CROSS JOIN LATERAL (SELECT g::date AS day
                    FROM generate_series($2::date::timestamp, $3::date::timestamp, '1 day') g) d
LEFT JOIN daily_rollups u ON u.restaurant_id = $1 AND u.day = d.day
WHERE u.day IS NULL OR (u.through_seq < r.seq AND ($4 = 0 OR d.day > r.today - $4)
                        AND (d.day >= r.today - 1 OR EXISTS (
    SELECT 1 FROM reservations v WHERE v.restaurant_id = $1
      AND v.starts_at >= d.day::timestamp AT TIME ZONE r.timezone
      AND v.starts_at < (d.day + 1)::timestamp AT TIME ZONE r.timezone
      AND v.status_changed_at > u.computed_at)))"""

# The seq the answer reflects: the restaurant's, unless today's or yesterday's rollup (the days
# a write can still change) was made before it. An older day, once rolled up fresh by the
# rule above, has not changed since, whatever seq it was made at.
READ = """
SELECT json_build_object('timezone', r.timezone, 'currency', r.currency, 'days',
    coalesce((SELECT json_agg(u.figures ORDER BY u.day) FROM daily_rollups u
              WHERE u.restaurant_id = $1 AND u.day BETWEEN $2 AND $3), '[]'))::text AS report,
    least(r.seq, (SELECT min(through_seq) FROM daily_rollups u
                  WHERE u.restaurant_id = $1 AND u.day BETWEEN $2 AND $3
                    AND u.day >= (now() AT TIME ZONE r.timezone)::date - 1)) AS through_seq
FROM restaurants r WHERE r.id = $1"""

MISSING = """
SELECT coalesce(array_agg(g::date ORDER BY g), '{}')
FROM generate_series($2::date::timestamp, $3::date::timestamp, '1 day') g
WHERE NOT EXISTS (SELECT 1 FROM daily_rollups u WHERE u.restaurant_id = $1 AND u.day = g::date)"""

# Restaurants whose recent days, or days since their first order, lack a fresh rollup.
BACKLOG = """
SELECT r.id, least((SELECT min(o.created_at) FROM orders o WHERE o.restaurant_id = r.id)
                   AT TIME ZONE r.timezone, now() AT TIME ZONE r.timezone)::date AS first,
       (now() AT TIME ZONE r.timezone)::date AS today
FROM restaurants r"""

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
                    AND o.created_at >= hours.starts AND o.created_at < hours.ends
                    AND NOT coalesce(o.payment ? 'merged_into', false)),
         'covers', (SELECT coalesce(sum(tt.party_size), 0) FROM table_turns tt
                    WHERE tt.restaurant_id = $1 AND tt.stay_id IS NULL
                      AND tt.seated_at >= hours.starts AND tt.seated_at < hours.ends))
         ORDER BY hours.starts) FROM hours))::text AS report
FROM r"""

_daily = msgspec.json.Decoder(Daily)
_hourly = msgspec.json.Decoder(Hourly)
CHUNK = 31  # days a background round rolls up per restaurant, so a long history comes in steps


async def refresh(conn: asyncpg.Connection, rid: int, first: date, last: date,
                  kept_days: int = 0) -> int:
    """Roll up the days from `first` to `last` that are missing or may be stale; how many.
    `kept_days`: the orders' retention (0: forever); older rolled-up days are final."""
    stale = await conn.fetchval(STALE, rid, first, last, kept_days)
    if stale:
        await conn.execute(REFRESH, rid, stale)
    return len(stale)


async def daily(pool: asyncpg.Pool, rid: int, first: date, last: date,
                kept_days: int = 0) -> tuple[Daily, int]:
    """Each local day from `first` to `last`, and the seq the numbers reflect. The days come
    from the rollups, made fresh first where they are missing or may be stale."""
    async with pool.acquire() as conn:
        await refresh(conn, rid, first, last, kept_days)
        row = await conn.fetchrow(READ, rid, first, last)
    return _daily.decode(row["report"]), row["through_seq"]


async def roll_up(pool: asyncpg.Pool, kept_days: int = 0) -> int:
    """A background round: every restaurant's recent days, and a month more of any history
    not yet rolled up (oldest first). How many days were rolled up."""
    done = 0
    async with pool.acquire() as conn:
        for row in await conn.fetch(BACKLOG):
            done += await refresh(conn, row["id"], row["today"] - timedelta(days=1), row["today"],
                                  kept_days)
            missing = await conn.fetchval(MISSING, row["id"], row["first"], row["today"])
            if missing:
                await conn.execute(REFRESH, row["id"], missing[:CHUNK])
                done += len(missing[:CHUNK])
    return done


async def hourly(pool: asyncpg.Pool, rid: int, day: date) -> tuple[Hourly, int]:
    """Each hour of the restaurant's local `day`, and the seq the numbers reflect."""
    row = await pool.fetchrow(HOURLY, rid, day)
    return _hourly.decode(row["report"]), row["seq"]
