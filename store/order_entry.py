"""Order entry, the busy hour's hottest writes: create an order, add items, fire a course.

Each change is one statement: the lines priced from the menu and checked, the order, its
tickets (one per station for what goes to the kitchen now), its lines, the order and ticket
JSON its events carry, the events themselves (`events.APPEND_TAIL`) and the answer kept under
the request's Idempotency-Key are CTEs of one chain. The restaurant's event counter is locked
only for the end of that statement and its commit, never across a round trip to Python, and a
problem with a line writes nothing (every insert waits for there being none).

The lines of a course going out in one statement finish together: each waits (`held`, on its
ticket, with its fire_at) for the course's longest prep time less its own, and store/firing.py
fires it then. A course held by hand sends nothing until it is fired by hand (both there too,
built from the CTEs here).

Creating only inserts, so it is the statement alone (one round trip). Adding items and firing
change an order that others may change too, so they first lock the order (a statement of its
own, which also finds an answer already kept under the key); the change then runs with a
snapshot taken after the lock and sees every commit before it.
"""
from __future__ import annotations

import asyncpg
import msgspec

from store import events, idempotency, kitchen
from store.errors import Conflict, Invalid
from store.orders import LINES_OF, ORDER_JSON, AddItemsIn, OrderIn, check_open

Outcome = tuple[msgspec.Raw, int] | idempotency.Stored  # (order, seq), or the answer kept earlier


class Key(msgspec.Struct, frozen=True):
    """An Idempotency-Key and the fingerprint of the request that came with it."""
    key: str
    fingerprint: bytes


class Answer(msgspec.Struct, frozen=True):
    """What is kept with a first answer: its headers, and the header that carries its seq."""
    headers: dict[str, str]
    seq_header: str


# The rows a change's new rows will reference are key-share locked at its start (a condition of
# its first write, so they are locked whenever it writes), as its foreign keys would lock them at
# its end: a writer that holds one of them (a table being seated, a
# menu item being deleted) and then queues for the restaurant's event counter would otherwise
# wait for this statement while this one, holding the counter, waits for it.
REFERENCED = """table_held AS (
    SELECT 1 FROM dining_tables WHERE restaurant_id = $1 AND id = $3 FOR KEY SHARE
), party_held AS (
    SELECT 1 FROM waitlist_parties WHERE restaurant_id = $1 AND id = $4 FOR KEY SHARE
), server_held AS (
    SELECT 1 FROM users WHERE id = $5 FOR KEY SHARE
), referenced AS (
    SELECT (SELECT count(*) FROM table_held) + (SELECT count(*) FROM party_held)
           + (SELECT count(*) FROM server_held) AS rows
)"""


def _pricing(lines: str) -> str:
    """CTEs `wanted`, `priced` (the lines of `lines`, a jsonb array of n, menu_item_id, qty,
    modifiers, note, course, seat, with name, station, prices and prep time from the menu) and
    `problem` (the first line the menu refuses, if any)."""
    return f"""wanted AS (
    SELECT * FROM jsonb_to_recordset({lines}::jsonb) AS l(n int, menu_item_id bigint, qty int,
                                                        modifiers jsonb, note text, course int,
                                                        seat int)
), priced AS (
    SELECT w.n, w.menu_item_id, w.qty, w.note, w.course, w.seat, i.id IS NOT NULL AS known,
           i.name, i.station, i.price_minor, i.available, coalesce(i.prep_seconds, 0) AS prep,
           m.modifiers, m.minor, m.missing, m.twice
    FROM wanted w
    LEFT JOIN menu_items i ON i.restaurant_id = $1 AND i.id = w.menu_item_id
    CROSS JOIN LATERAL (
        SELECT coalesce(jsonb_agg(jsonb_build_object('id', mm.id, 'name', mm.name,
                                                     'price_delta_minor', mm.price_delta_minor)
                                  ORDER BY asked.k), '[]') AS modifiers,
               coalesce(sum(mm.price_delta_minor), 0)::int AS minor,
               min(asked.k) FILTER (WHERE mm.id IS NULL) - 1 AS missing,
               count(DISTINCT asked.id) <> count(*) AS twice
        FROM jsonb_array_elements_text(w.modifiers) WITH ORDINALITY AS asked(id, k)
        LEFT JOIN menu_modifiers mm ON mm.restaurant_id = $1 AND mm.item_id = w.menu_item_id
                                   AND mm.id = asked.id::bigint
    ) m
), menu_held AS (  -- the menu rows asked for, see REFERENCED
    SELECT id FROM menu_items
    WHERE restaurant_id = $1 AND id IN (SELECT menu_item_id FROM wanted)
    FOR KEY SHARE
), problem AS (
    SELECT n, menu_item_id, name, missing,
           CASE WHEN NOT known THEN 'unknown_item' WHEN NOT available THEN 'unavailable'
                WHEN twice THEN 'modifier_twice' WHEN missing IS NOT NULL THEN 'unknown_modifier'
                ELSE 'below_zero' END AS kind
    FROM priced
    WHERE NOT known OR NOT available OR twice OR missing IS NOT NULL OR price_minor + minor < 0
    ORDER BY n LIMIT 1
)"""


def timing(going: str) -> str:
    """CTE `timing`: each course going to the kitchen now (`going`: rows of course, prep) and
    its longest prep; a line of it waits that less its own, so the course finishes together."""
    return f"""timing AS (
    SELECT course, max(prep) AS longest FROM ({going}) going GROUP BY course
)"""


def _sent(prep: str) -> str:
    """status, fired_at, fire_at of a line with prep time `prep` going out now (`t`: its course's
    `timing`): the longest fires, the others are held until their time."""
    return f"""CASE WHEN t.longest > {prep} THEN 'held' ELSE 'fired' END,
           CASE WHEN t.longest <= {prep} THEN now() END,
           CASE WHEN t.longest > {prep} THEN now() + make_interval(secs => t.longest - {prep}) END"""


def _new_items(order_id: str, fires: str, tickets: str = "new_tickets") -> str:
    """CTE `new_items`: the priced lines inserted on the order `order_row`, those for which
    `fires` holds (a condition on p, the line, and o, the order) on their station's ticket among
    `tickets` (for adds, of the line's course), timed by `timing`."""
    return f"""new_items AS (
    INSERT INTO order_items (restaurant_id, order_id, menu_item_id, name, station, qty,
                             unit_price_minor, modifiers, modifiers_minor, note, course, seat,
                             ticket_id, status, fired_at, fire_at)
    SELECT $1, {order_id}, p.menu_item_id, p.name, p.station, p.qty, p.price_minor, p.modifiers,
           p.minor, p.note, p.course, p.seat, k.id,
           CASE WHEN k.id IS NULL THEN 'new' WHEN t.longest > p.prep THEN 'held' ELSE 'fired' END,
           CASE WHEN k.id IS NOT NULL AND t.longest <= p.prep THEN now() END,
           CASE WHEN k.id IS NOT NULL AND t.longest > p.prep
                THEN now() + make_interval(secs => t.longest - p.prep) END
    FROM order_row o CROSS JOIN priced p
    LEFT JOIN {tickets} k ON k.station = p.station AND {fires}
    LEFT JOIN timing t ON t.course = p.course
    ORDER BY p.n
    RETURNING *
)"""


def unsent(order_id: str, condition: str) -> str:
    """CTE `due`: the order's unsent lines for which `condition` holds (on oi, the line, and o,
    `order_row`), with their prep time from the menu."""
    return f"""due AS (
    SELECT oi.order_id, oi.id, oi.station, oi.course, coalesce(mi.prep_seconds, 0) AS prep
    FROM order_items oi JOIN order_row o ON true
    LEFT JOIN menu_items mi ON mi.restaurant_id = $1 AND mi.id = oi.menu_item_id
    WHERE oi.restaurant_id = $1 AND oi.order_id = {order_id} AND oi.status = 'new' AND {condition}
)"""


# A new ticket's fired_at: when the first of its lines (`{prep}`, `t` its course's `timing`)
# goes to the cook, now or later; a ticket of held lines only is not cooking yet.
STARTS = "now() + make_interval(secs => min(t.longest - {prep}))"

# The new tickets of the `due` lines, one per station; `{course}`: each one's course. New tickets
# are numbered (the kitchen's fire order) by when they start cooking, then by station.
DUE_TICKETS = f"""new_tickets AS (
    INSERT INTO tickets (restaurant_id, order_id, station, course, fired_at)
    SELECT $1, $2, due.station, {{course}}, {STARTS.format(prep="due.prep")}
    FROM due JOIN timing t ON t.course = due.course
    GROUP BY due.station ORDER BY min(t.longest - due.prep), due.station
    RETURNING *
)"""

# Lines already on the order that go to the kitchen now (`due`: id, station, course, prep), on
# the tickets `{tickets}` (by station; `{same_course}` adds a condition on k and due), timed by
# `timing`.
SENT_AGAIN = f"""refired AS (
    UPDATE order_items oi SET ticket_id = k.id, version = oi.version + 1,
                              (status, fired_at, fire_at) = ({_sent("due.prep")})
    FROM due JOIN {{tickets}} k ON k.station = due.station {{same_course}}
    JOIN timing t ON t.course = due.course
    WHERE oi.restaurant_id = $1 AND oi.order_id = due.order_id AND oi.id = due.id
    RETURNING oi.*
)"""
REFIRED = SENT_AGAIN.format(tickets="new_tickets", same_course="")


def order_lines(order_id: str, *changed: str) -> str:
    """CTE `lines_now`: the order's lines after this statement (`changed`: CTEs of lines it
    inserted or updated), read with the snapshot the statement started with."""
    rewritten = " UNION ALL ".join(f"SELECT * FROM {name}" for name in changed)
    return f"""lines_now AS (
    SELECT oi.* FROM order_items oi
    WHERE oi.restaurant_id = $1 AND oi.order_id = {order_id} AND EXISTS (SELECT 1 FROM order_row)
      AND oi.id NOT IN ({" UNION ALL ".join(f"SELECT id FROM {name}" for name in changed)})
    UNION ALL {rewritten}
)"""


def announced(event: str, status: int, key: str, fingerprint: str, headers: str,
               seq_header: str, tickets: str = "new_tickets", ticket_event: str = "'ticket.fired'",
               ticket_data: str = "jsonb_build_object('ticket', doc)") -> str:
    """CTEs from `order_row`, `lines_now`, `tickets` and `ticket_lines` to the events and
    the kept answer: `order_doc` (the order's JSON, the answer's body), `ticket_docs`, `batch`
    (the order's `event`, then per ticket the event `ticket_event` names with `ticket_data`, SQL
    on ticket_docs' id and doc), the counter and notify, `kept`."""
    return f"""order_doc AS (
    SELECT {ORDER_JSON}::text AS doc FROM order_row o {LINES_OF.format(items="lines_now")}
), ticket_docs AS (
    SELECT k.id, k.station, {kitchen.TICKET_JSON_OF.format(items="ticket_lines")}::jsonb AS doc
    FROM {tickets} k JOIN order_row o ON o.id = k.order_id
    LEFT JOIN dining_tables dt ON dt.restaurant_id = o.restaurant_id AND dt.id = o.table_id
    LEFT JOIN users u ON u.id = o.server_id
), batch AS (
    SELECT 1::bigint AS n, 'orders' AS channel, '{event}' AS name,
           jsonb_build_object('order', doc::jsonb) AS data
    FROM order_doc
    UNION ALL
    SELECT 1 + row_number() OVER (ORDER BY id), 'kitchen:' || station, {ticket_event},
           {ticket_data}
    FROM ticket_docs
), {events.APPEND_TAIL}, kept AS (
    INSERT INTO idempotency_keys (restaurant_id, key, request_hash, status, headers, body)
    SELECT $1, {key}, {fingerprint}, {status},
           {headers}::jsonb || jsonb_build_object({seq_header}::text, told.last_seq::text),
           convert_to(order_doc.doc, 'UTF8')
    FROM told, order_doc WHERE {key}::text IS NOT NULL
)"""


def _kept_answer(key: str) -> str:
    """CTEs `expired` (an answer past retention under the key, deleted) and `prior` (the one
    kept, if any)."""
    return f"""expired AS (
    DELETE FROM idempotency_keys
    WHERE {key}::text IS NOT NULL AND restaurant_id = $1 AND key = {key}
      AND created_at < now() - interval '{idempotency.RETENTION}'
    RETURNING key
), prior AS (
    SELECT request_hash, status, headers, body FROM idempotency_keys
    WHERE {key}::text IS NOT NULL AND restaurant_id = $1 AND key = {key}
      AND created_at >= now() - interval '{idempotency.RETENTION}'
)"""


# A line `{line}` of a course the order `o` has fired and no one holds by hand goes at once.
GOES = "{line}.course <= o.fired_course AND {line}.course <> ALL (o.held_courses)"

# What goes to the kitchen when lines are added: the unsent lines due, and the new lines that go.
ADDED_GOING = f"""SELECT course, prep FROM due UNION ALL
    SELECT p.course, p.prep FROM priced p, order_row o WHERE {GOES.format(line="p")} AND NOT $4"""

# A ticket of an add (`ticket_docs`' id, doc): new, or one the kitchen had, now with lines added.
ADDED_EVENT = ("CASE WHEN id IN (SELECT ticket_id FROM additions) THEN 'ticket.changed' "
               "ELSE 'ticket.fired' END")
ADDED_DATA = """jsonb_build_object('ticket', doc) || coalesce(
    (SELECT jsonb_build_object('changes', a.changes) FROM additions a WHERE a.ticket_id = id), '{}')"""

ANSWERS = """(SELECT doc FROM order_doc) AS doc, (SELECT last_seq FROM told) AS last_seq,
       (SELECT families FROM told) AS families"""

# $1 restaurant, $2 lines, $3 table, $4 party, $5 server, $6 guests, $7 note, $8 hold,
# $9 Idempotency-Key, $10 fingerprint, $11 headers kept, $12 the seq's header.
CREATE = f"""
WITH {_kept_answer("$9")}, {_pricing("$2")}, {REFERENCED}, go AS (
    SELECT NOT EXISTS (SELECT 1 FROM prior) AND NOT EXISTS (SELECT 1 FROM problem)
           AND (SELECT count(*) FROM expired) >= 0  -- the expired answer is gone first
           AND (SELECT rows FROM referenced) + (SELECT count(*) FROM menu_held) >= 0 AS ok
), order_row AS (
    INSERT INTO orders (restaurant_id, table_id, party_id, server_id, guests, note, fired_course)
    SELECT $1, $3, $4, $5, $6, $7, CASE WHEN $8 THEN 0 ELSE (SELECT min(course) FROM wanted) END
    FROM go WHERE go.ok
    RETURNING *
), {timing("SELECT p.course, p.prep FROM priced p, order_row o WHERE p.course <= o.fired_course")},
new_tickets AS (
    INSERT INTO tickets (restaurant_id, order_id, station, course, fired_at)
    SELECT $1, o.id, p.station, min(p.course), {STARTS.format(prep="p.prep")}
    FROM order_row o JOIN priced p ON p.course <= o.fired_course JOIN timing t ON t.course = p.course
    GROUP BY o.id, p.station ORDER BY min(t.longest - p.prep), p.station
    RETURNING *
), {_new_items("o.id", "p.course <= o.fired_course")},
lines_now AS (SELECT * FROM new_items),
ticket_lines AS (SELECT * FROM new_items),
{announced("order.created", 201, "$9", "$10", "$11", "$12")}
SELECT {ANSWERS}, p.request_hash, p.status, p.headers, p.body,
       pr.kind, pr.n, pr.missing, pr.name, pr.menu_item_id
FROM (SELECT) one LEFT JOIN prior p ON true LEFT JOIN problem pr ON true"""

# $1 restaurant, $2 order, $3 Idempotency-Key: lock the order (waiting for whoever changes it;
# NO KEY: new tickets' foreign keys may still read it);
# its state, or the answer kept under the key.
LOCK = f"""
WITH {_kept_answer("$3")}
SELECT o.status, o.version, p.request_hash, p.status AS answer_status, p.headers, p.body,
       (SELECT count(*) FROM expired) AS expired
FROM (SELECT) one
LEFT JOIN prior p ON true
LEFT JOIN LATERAL (SELECT status, version FROM orders
                   WHERE restaurant_id = $1 AND id = $2 FOR NO KEY UPDATE) o ON true"""

# $1 restaurant, $2 lines, $3 order, $4 hold, $5 Idempotency-Key, $6 fingerprint,
# $7 headers kept, $8 the seq's header. New lines of a fired course go to the kitchen at once
# (with any unsent line of such a course), unless held (by `hold`, or the course by hand).
ADD_ITEMS = f"""
WITH {_pricing("$2")}, order_row AS (
    UPDATE orders SET version = version + 1
    WHERE restaurant_id = $1 AND id = $3 AND NOT EXISTS (SELECT 1 FROM problem)
      AND (SELECT count(*) FROM menu_held) >= 0  -- see REFERENCED
    RETURNING *
), {unsent("$3", f"{GOES.format(line='oi')} AND NOT $4")}, {timing(ADDED_GOING)},
open_tickets AS (
    SELECT DISTINCT ON (k.station, k.course) k.id, k.station, k.course FROM tickets k
    WHERE k.restaurant_id = $1 AND k.order_id = $3 AND k.status <> 'bumped'
      AND EXISTS (SELECT 1 FROM order_row)
    ORDER BY k.station, k.course, k.id DESC
), going AS (
    SELECT station, course, prep FROM due
    UNION ALL
    SELECT p.station, p.course, p.prep FROM priced p, order_row o
    WHERE {GOES.format(line='p')} AND NOT $4
), new_tickets AS (
    INSERT INTO tickets (restaurant_id, order_id, station, course, fired_at)
    SELECT $1, $3, going.station, min(going.course), {STARTS.format(prep="going.prep")}
    FROM going JOIN timing t ON t.course = going.course
    WHERE NOT EXISTS (SELECT 1 FROM open_tickets ot
                      WHERE ot.station = going.station AND ot.course = going.course)
    GROUP BY going.station ORDER BY min(t.longest - going.prep), going.station
    RETURNING *
), targets AS (
    SELECT id, station, course, true AS open FROM open_tickets
    UNION ALL
    SELECT id, station, course, false FROM new_tickets
), {SENT_AGAIN.format(tickets="targets", same_course="AND (NOT k.open OR k.course = due.course)")},
{_new_items("$3", f"{GOES.format(line='p')} AND NOT $4 AND (NOT k.open OR k.course = p.course)",
            "targets")},
added_lines AS (
    SELECT * FROM refired WHERE ticket_id IN (SELECT id FROM open_tickets)
    UNION ALL
    SELECT * FROM new_items WHERE ticket_id IN (SELECT id FROM open_tickets)
), additions AS (
    SELECT ticket_id, jsonb_agg(jsonb_build_object(
               'at', now(), 'kind', 'added', 'item_id', id, 'name', name,
               'text', 'ADD ' || qty || '× ' || name) ORDER BY id) AS changes
    FROM added_lines GROUP BY ticket_id
), changed_tickets AS (  -- a ticket the kitchen has shows what was added to it
    UPDATE tickets k SET changed_at = now(), version = k.version + 1,
                         changes = k.changes || a.changes
    FROM additions a WHERE k.restaurant_id = $1 AND k.id = a.ticket_id
    RETURNING k.*
), sent_tickets AS (
    SELECT * FROM new_tickets UNION ALL SELECT * FROM changed_tickets
),
{order_lines("$3", "refired", "new_items")},
ticket_lines AS (
    SELECT * FROM lines_now WHERE ticket_id IN (SELECT id FROM changed_tickets)
    UNION ALL SELECT * FROM refired WHERE ticket_id IN (SELECT id FROM new_tickets)
    UNION ALL SELECT * FROM new_items WHERE ticket_id IN (SELECT id FROM new_tickets)
),
{announced("order.items_added", 200, "$5", "$6", "$7", "$8", "sent_tickets", ADDED_EVENT,
           ADDED_DATA)}
SELECT {ANSWERS}, pr.kind, pr.n, pr.missing, pr.name, pr.menu_item_id
FROM (SELECT) one LEFT JOIN problem pr ON true"""

# $1 restaurant, $2 order, $3 course, $4 Idempotency-Key, $5 fingerprint, $6 headers kept,
# $7 the seq's header. Every unsent line up to the course goes (but a course held by hand's),
# one ticket per station; nothing is written when nothing is waiting.
FIRE = f"""
WITH order_row AS (
    UPDATE orders o SET version = o.version + 1, fired_course = greatest(o.fired_course, $3)
    WHERE o.restaurant_id = $1 AND o.id = $2
      AND EXISTS (SELECT 1 FROM order_items oi WHERE oi.restaurant_id = $1 AND oi.order_id = $2
                  AND oi.status = 'new' AND oi.course <= $3
                  AND oi.course <> ALL (o.held_courses))
    RETURNING *
), {unsent("$2", "oi.course <= $3 AND oi.course <> ALL (o.held_courses)")},
{timing("SELECT course, prep FROM due")}, {DUE_TICKETS.format(course="min(due.course)")},
{REFIRED},
{order_lines("$2", "refired")},
ticket_lines AS (SELECT * FROM refired),
{announced("order.fired", 200, "$4", "$5", "$6", "$7")}
SELECT {ANSWERS}"""

def _lines(items: list) -> list[dict]:
    return [{"n": n, "menu_item_id": line.menu_item_id, "qty": line.qty,
             "modifiers": line.modifiers, "note": line.note, "course": line.course,
             "seat": line.seat}
            for n, line in enumerate(items)]


def _problem(row: asyncpg.Record) -> Invalid | Conflict:
    """The first line the menu refuses, as the error its path points at."""
    n, kind = row["n"], row["kind"]
    if kind == "unknown_item":
        return Invalid("no such menu item", [{"path": f"$.items[{n}].menu_item_id",
                                               "message": "no such menu item"}])
    if kind == "unavailable":
        return Conflict(f"{row['name']} is 86'd (not available)",
                        [{"path": f"$.items[{n}].menu_item_id", "menu_item_id": row["menu_item_id"]}])
    if kind == "modifier_twice":
        return Invalid("a modifier is listed twice", [{"path": f"$.items[{n}].modifiers",
                                                      "message": "each modifier once"}])
    if kind == "unknown_modifier":
        return Invalid(f"{row['name']} has no such modifier",
                       [{"path": f"$.items[{n}].modifiers[{row['missing']}]",
                         "message": "no such modifier"}])
    return Invalid("modifiers would price this line below zero",
                   [{"path": f"$.items[{n}].modifiers", "message": "price below zero"}])


def _reference_error(error: asyncpg.ForeignKeyViolationError) -> Invalid:
    field = "party_id" if "party" in (error.constraint_name or "") else "table_id"
    return Invalid(f"no such {field.removesuffix('_id')}", [{"path": f"$.{field}",
                                                            "message": "not in this restaurant"}])


def written(rid: int, row: asyncpg.Record) -> tuple[msgspec.Raw, int]:
    events.tell(rid, row["last_seq"], row["families"])
    return msgspec.Raw(row["doc"].encode()), row["last_seq"]


def key_args(key: Key | None, answer: Answer) -> tuple:
    return (key and key.key, key and key.fingerprint, answer.headers, answer.seq_header)


async def create(pool: asyncpg.Pool, rid: int, server_id: int | None, body: OrderIn,
                 key: Key | None, answer: Answer) -> Outcome:
    """Create and fire an order in one statement; or the answer already kept under `key`."""
    try:
        row = await pool.fetchrow(CREATE, rid, _lines(body.items), body.table_id, body.party_id,
                                  server_id, body.guests, body.note, body.hold,
                                  *key_args(key, answer))
    except asyncpg.ForeignKeyViolationError as error:
        raise _reference_error(error) from None
    except asyncpg.UniqueViolationError as error:
        return await _first_answer(pool, rid, key, error)
    if row["kind"] is not None:
        raise _problem(row)
    if row["doc"] is None:
        return idempotency.Stored(fingerprint=row["request_hash"], status=row["status"],
                                  headers=row["headers"], body=row["body"])
    return written(rid, row)


async def _first_answer(pool: asyncpg.Pool, rid: int, key: Key | None,
                        error: asyncpg.UniqueViolationError) -> idempotency.Stored:
    """A duplicate sent at the same moment committed first: its answer is the answer."""
    if key is None or error.table_name != "idempotency_keys":
        raise error
    return await idempotency.stored(pool, rid, key.key)


async def change(pool: asyncpg.Pool, rid: int, order_id: int, expected: int | None,
                  key: Key | None, statement: str, *args: object) -> asyncpg.Record | idempotency.Stored:
    """Lock the open order (404, 412 or 409 otherwise) or find the kept answer, then change it."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(LOCK, rid, order_id, key and key.key)
            if row["request_hash"] is not None:
                return idempotency.Stored(fingerprint=row["request_hash"],
                                          status=row["answer_status"], headers=row["headers"],
                                          body=row["body"])
            check_open(row["status"], row["version"], expected)
            return await conn.fetchrow(statement, *args)
    except asyncpg.UniqueViolationError as error:
        return await _first_answer(pool, rid, key, error)


async def add_items(pool: asyncpg.Pool, rid: int, order_id: int, body: AddItemsIn,
                    expected: int | None, key: Key | None, answer: Answer) -> Outcome:
    """Add lines; those of a course already fired go to the kitchen at once unless held."""
    row = await change(pool, rid, order_id, expected, key, ADD_ITEMS, rid, _lines(body.items),
                        order_id, body.hold, *key_args(key, answer))
    if isinstance(row, idempotency.Stored):
        return row
    if row["kind"] is not None:
        raise _problem(row)
    return written(rid, row)


async def fire(pool: asyncpg.Pool, rid: int, order_id: int, course: int | None,
               expected: int | None, key: Key | None, answer: Answer) -> Outcome:
    """Fire every held item up to `course` (all courses if None)."""
    course = course or 9
    row = await change(pool, rid, order_id, expected, key, FIRE, rid, order_id, course,
                        *key_args(key, answer))
    if isinstance(row, idempotency.Stored):
        return row
    if row["doc"] is None:
        raise Conflict(f"nothing is waiting to be fired up to course {course} (a course held by "
                       "hand goes only when fired by hand)", [{"course": course}],
                       code="nothing_to_fire")
    return written(rid, row)

