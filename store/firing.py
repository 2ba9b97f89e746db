"""Firing: held lines go to the cook when their time comes, courses are held and fired by hand.

The lines of a course that wait on their ticket so the course finishes together (order entry
times them, store/order_entry.py) go to the cook at their fire_at. Any number of processes may
run this at once: per restaurant, the orders with a line due are locked with SKIP LOCKED (what
one process holds another passes over), and the change runs after the lock with a snapshot that
sees every commit before it, so no line fires twice. Lines of a course held by hand have no
fire_at and wait for a server's fire (`fire_course`), which sends what is left of the course,
timed by prep, and its held lines at once.
"""
from __future__ import annotations

import asyncio
import logging

import asyncpg

from store import events, idempotency, kitchen
from store.errors import Conflict, Invalid
from store.order_entry import (
    ANSWERS,
    DUE_TICKETS,
    REFIRED,
    Answer,
    Key,
    Outcome,
    announced,
    change,
    key_args,
    order_lines,
    timing,
    unsent,
    written,
)
from store.orders import LINES_OF, ORDER_JSON

log = logging.getLogger("serveline.firing")

# The restaurants with a held line due (the partial index order_items_held).
DUE_RESTAURANTS = """
SELECT DISTINCT restaurant_id FROM order_items WHERE status = 'held' AND fire_at <= now()"""

# $1 restaurant: its open orders with a line due, locked; those another process holds are left
# to it. Every other writer of an order's lines locks the order first (order_entry, orders).
LOCK_DUE_ORDERS = """
SELECT o.id FROM orders o
WHERE o.restaurant_id = $1 AND o.status = 'open'
  AND o.id IN (SELECT order_id FROM order_items
               WHERE restaurant_id = $1 AND status = 'held' AND fire_at <= now())
ORDER BY o.id
FOR NO KEY UPDATE SKIP LOCKED"""

# Tickets with lines of `{lines}` fired now (CTE `{name}`): back on the screens if they were
# bumped meanwhile, their time running from now if it had not started yet.
REOPENED = """{name} AS (
    UPDATE tickets k SET version = k.version + 1, bumped_at = NULL,
        fired_at = least(k.fired_at, now()),
        status = CASE WHEN k.status <> 'bumped' THEN k.status
                      WHEN k.started_at IS NULL THEN 'open' ELSE 'started' END
    WHERE k.restaurant_id = $1 AND k.id IN (SELECT ticket_id FROM {lines})
    RETURNING k.*
)"""

# $1 restaurant, $2 the orders locked: their due lines fire, their orders and tickets move on (a
# ticket bumped meanwhile comes back to the screens); an order.fired per order and a ticket.fired
# per ticket, on the restaurant's counter, in the one statement.
FIRE_DUE = f"""
WITH fired AS (
    UPDATE order_items oi SET status = 'fired', fired_at = now(), version = oi.version + 1
    FROM orders o
    WHERE o.restaurant_id = $1 AND o.id = ANY ($2::bigint[]) AND o.status = 'open'
      AND oi.restaurant_id = $1 AND oi.order_id = o.id AND oi.status = 'held'
      AND oi.fire_at <= now() AND oi.course <> ALL (o.held_courses)
    RETURNING oi.*
), order_row AS (
    UPDATE orders o SET version = o.version + 1
    WHERE o.restaurant_id = $1 AND o.id IN (SELECT order_id FROM fired)
    RETURNING o.*
), {REOPENED.format(name="woken", lines="fired")}, lines_now AS (
    SELECT oi.* FROM order_items oi
    WHERE oi.restaurant_id = $1 AND oi.order_id IN (SELECT id FROM order_row)
      AND oi.id NOT IN (SELECT id FROM fired)
    UNION ALL SELECT * FROM fired
), order_docs AS (
    SELECT o.id, {ORDER_JSON}::jsonb AS doc FROM order_row o {LINES_OF.format(items="lines_now")}
), ticket_docs AS (
    SELECT k.id, k.station, {kitchen.TICKET_JSON_OF.format(items="lines_now")}::jsonb AS doc
    FROM woken k JOIN order_row o ON o.id = k.order_id
    LEFT JOIN dining_tables dt ON dt.restaurant_id = o.restaurant_id AND dt.id = o.table_id
    LEFT JOIN users u ON u.id = o.server_id
), batch AS (
    SELECT row_number() OVER (ORDER BY id) AS n, 'orders' AS channel, 'order.fired' AS name,
           jsonb_build_object('order', doc) AS data
    FROM order_docs
    UNION ALL
    SELECT (SELECT count(*) FROM order_docs) + row_number() OVER (ORDER BY id),
           'kitchen:' || station, 'ticket.fired', jsonb_build_object('ticket', doc)
    FROM ticket_docs
), {events.APPEND_TAIL}
SELECT (SELECT count(*) FROM fired) AS fired, (SELECT last_seq FROM told) AS last_seq,
       (SELECT families FROM told) AS families"""

EVERY_SECONDS = 1.0  # how late a held line may go to the cook, at most (and a round's cost)


async def fire_due_in(pool: asyncpg.Pool, rid: int) -> int:
    """Fire one restaurant's due held lines (those of orders no other process holds); how many."""
    async with pool.acquire() as conn, conn.transaction():
        order_ids = [row["id"] for row in await conn.fetch(LOCK_DUE_ORDERS, rid)]
        if not order_ids:
            return 0
        row = await conn.fetchrow(FIRE_DUE, rid, order_ids)
    if row["last_seq"] is not None:
        events.tell(rid, row["last_seq"], row["families"])
    return row["fired"]


async def fire_due(pool: asyncpg.Pool) -> int:
    """Fire every due held line, one transaction per restaurant; how many fired."""
    fired = 0
    for row in await pool.fetch(DUE_RESTAURANTS):
        fired += await fire_due_in(pool, row["restaurant_id"])
    return fired


async def keep_firing(pool: asyncpg.Pool, seconds: float = EVERY_SECONDS) -> None:
    """Fire due held lines every `seconds` until cancelled (started with the app; the first round
    a period later, leaving the pool to start-up's own work)."""
    while True:
        await asyncio.sleep(seconds)
        try:
            if fired := await fire_due(pool):
                log.debug("fired %d held lines", fired)
        except Exception:  # the database may be restarting; try again next round
            log.warning("firing held lines failed; retrying in %.0f s", seconds, exc_info=True)


# The course $3 of the order $2 as it stands: held by hand or not, its live lines, and those of
# them not yet cooking (unsent, or held on a ticket).
COURSE_STATE = """course AS (
    SELECT $3 = ANY (o.held_courses) AS held,
           count(oi.id) FILTER (WHERE oi.status <> 'void') AS live,
           count(oi.id) FILTER (WHERE oi.status IN ('new', 'held')) AS waiting
    FROM orders o
    LEFT JOIN order_items oi ON oi.restaurant_id = $1 AND oi.order_id = o.id AND oi.course = $3
    WHERE o.restaurant_id = $1 AND o.id = $2
    GROUP BY o.held_courses
)"""

# $1 restaurant, $2 order, $3 course, $4 Idempotency-Key, $5 fingerprint, $6 headers kept,
# $7 the seq's header. The course's held lines stop their clocks and wait on their tickets;
# nothing of it goes until fired by hand. Nothing is written if it is held already or all sent.
HOLD_COURSE = f"""
WITH {COURSE_STATE}, order_row AS (
    UPDATE orders o SET version = o.version + 1,
        held_courses = (SELECT array_agg(c ORDER BY c) FROM unnest(array_append(o.held_courses, $3::int)) c)
    WHERE o.restaurant_id = $1 AND o.id = $2
      AND (SELECT NOT held AND (live = 0 OR waiting > 0) FROM course)
    RETURNING o.*
), paused AS (
    UPDATE order_items oi SET fire_at = NULL, version = oi.version + 1
    FROM order_row o
    WHERE oi.restaurant_id = $1 AND oi.order_id = o.id AND oi.course = $3 AND oi.status = 'held'
    RETURNING oi.*
), waiting_tickets AS (
    UPDATE tickets k SET version = k.version + 1
    WHERE k.restaurant_id = $1 AND k.id IN (SELECT ticket_id FROM paused)
    RETURNING k.*
), {order_lines("$2", "paused")}, ticket_lines AS (SELECT * FROM lines_now),
{announced("order.course_held", 200, "$4", "$5", "$6", "$7", "waiting_tickets", "'ticket.held'")}
SELECT {ANSWERS}, (SELECT held FROM course) AS held"""

# $1 restaurant, $2 order, $3 course, $4.. as HOLD_COURSE. Fired by hand: no longer held, its
# unsent lines go timed by prep, its held lines go now. The order's fired course moves up to it
# unless a course before it still waits (unsent and not held by hand).
FIRE_COURSE = f"""
WITH {COURSE_STATE}, order_row AS (
    UPDATE orders o SET version = o.version + 1, held_courses = array_remove(o.held_courses, $3),
        fired_course = CASE WHEN EXISTS (
            SELECT 1 FROM order_items oi WHERE oi.restaurant_id = $1 AND oi.order_id = $2
              AND oi.status = 'new' AND oi.course > o.fired_course AND oi.course < $3
              AND oi.course <> ALL (o.held_courses)) THEN o.fired_course
            ELSE greatest(o.fired_course, $3) END
    WHERE o.restaurant_id = $1 AND o.id = $2 AND (SELECT held OR waiting > 0 FROM course)
    RETURNING o.*
), {unsent("$2", "oi.course = $3")}, {timing("SELECT course, prep FROM due")},
{DUE_TICKETS.format(course="$3")}, {REFIRED}, woken AS (
    UPDATE order_items oi SET status = 'fired', fired_at = now(), version = oi.version + 1
    FROM order_row o
    WHERE oi.restaurant_id = $1 AND oi.order_id = o.id AND oi.course = $3 AND oi.status = 'held'
    RETURNING oi.*
), {REOPENED.format(name="reopened", lines="woken")}, sent_tickets AS (
    SELECT * FROM new_tickets UNION ALL SELECT * FROM reopened
), {order_lines("$2", "refired", "woken")}, ticket_lines AS (SELECT * FROM lines_now),
{announced("order.fired", 200, "$4", "$5", "$6", "$7", "sent_tickets")}
SELECT {ANSWERS}"""


def _course(course: int) -> None:
    if not 1 <= course <= 9:
        raise Invalid("a course is 1–9", [{"path": "course", "message": "between 1 and 9"}])


async def hold_course(pool: asyncpg.Pool, rid: int, order_id: int, course: int,
                      expected: int | None, key: Key | None, answer: Answer) -> Outcome:
    """Hold a course by hand: nothing of it goes, its held lines stop their clocks."""
    _course(course)
    row = await change(pool, rid, order_id, expected, key, HOLD_COURSE, rid, order_id, course,
                       *key_args(key, answer))
    if isinstance(row, idempotency.Stored):
        return row
    if row["doc"] is None:
        if row["held"]:
            raise Conflict(f"course {course} is already held", [{"course": course}],
                           code="course_already_held")
        raise Conflict(f"course {course} has all gone to the kitchen; nothing is left to hold",
                       [{"course": course}], code="course_already_sent")
    return written(rid, row)


async def fire_course(pool: asyncpg.Pool, rid: int, order_id: int, course: int,
                      expected: int | None, key: Key | None, answer: Answer) -> Outcome:
    """Fire a course by hand: no longer held, its unsent lines go (timed by prep), held ones now."""
    _course(course)
    row = await change(pool, rid, order_id, expected, key, FIRE_COURSE, rid, order_id, course,
                       *key_args(key, answer))
    if isinstance(row, idempotency.Stored):
        return row
    if row["doc"] is None:
        raise Conflict(f"nothing of course {course} is waiting to be fired", [{"course": course}],
                       code="nothing_to_fire")
    return written(rid, row)
