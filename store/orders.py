"""Orders and their items: priced from the menu, coursed, fired to the kitchen, voided, served, closed.

Totals are SQL: each line's total is a generated column, an order's total is a
SUM over its live lines in the query that renders it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
import msgspec

from store import events, idempotency, kitchen
from store.errors import Conflict, Invalid, NotFound, Stale
from store.pages import Page, fetch_page, paged

Qty = Annotated[int, msgspec.Meta(ge=1, le=99)]
Course = Annotated[int, msgspec.Meta(ge=1, le=9)]
Note = Annotated[str, msgspec.Meta(max_length=300)]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]  # a bigint key: larger is a 422, not a 500
ItemStatus = Literal["new", "fired", "cooking", "ready", "served", "void"]


class OrderItemIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    menu_item_id: Id
    qty: Qty = 1
    modifiers: Annotated[list[Id], msgspec.Meta(max_length=20)] = []  # menu modifier ids
    note: Note = ""
    course: Course = 1


Lines = Annotated[list[OrderItemIn], msgspec.Meta(min_length=1, max_length=100)]


class OrderIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    items: Lines
    table_id: Id | None = None
    party_id: Id | None = None
    guests: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None
    note: Note = ""
    hold: bool = False  # True: send nothing to the kitchen until a course is fired


class AddItemsIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    items: Lines
    hold: bool = False


class FireIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    course: Course | None = None  # None fires every held course


class VoidIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    reason: Annotated[str, msgspec.Meta(max_length=200)] = ""


class Payment(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    method: Literal["card", "cash", "other"]
    amount_minor: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)]
    tip_minor: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 0
    reference: Annotated[str, msgspec.Meta(max_length=100)] | None = None


class CloseIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    payment: Payment


class OrderItem(msgspec.Struct, frozen=True):
    id: int
    menu_item_id: int
    name: str
    station: str
    qty: int
    unit_price_minor: int
    modifiers: list[dict[str, Any]]
    modifiers_minor: int
    line_total_minor: int
    note: str
    course: int
    status: ItemStatus
    ticket_id: int | None
    created_at: datetime
    fired_at: datetime | None
    cooking_at: datetime | None
    ready_at: datetime | None
    served_at: datetime | None
    voided_at: datetime | None
    void_reason: str | None
    version: int


class Order(msgspec.Struct, frozen=True):
    id: int
    status: Literal["open", "closed"]
    table_id: int | None
    party_id: int | None
    server_id: int | None
    guests: int | None
    note: str
    fired_course: int
    payment: dict[str, Any] | None
    created_at: datetime
    closed_at: datetime | None
    version: int
    items: list[OrderItem]
    total_minor: int
    void_minor: int


ORDER_ITEM_JSON = """json_build_object(
    'id', oi.id, 'menu_item_id', oi.menu_item_id, 'name', oi.name, 'station', oi.station,
    'qty', oi.qty, 'unit_price_minor', oi.unit_price_minor, 'modifiers', oi.modifiers,
    'modifiers_minor', oi.modifiers_minor, 'line_total_minor', oi.line_total_minor,
    'note', oi.note, 'course', oi.course, 'status', oi.status, 'ticket_id', oi.ticket_id,
    'created_at', oi.created_at, 'fired_at', oi.fired_at, 'cooking_at', oi.cooking_at,
    'ready_at', oi.ready_at, 'served_at', oi.served_at, 'voided_at', oi.voided_at,
    'void_reason', oi.void_reason, 'version', oi.version)"""

ORDER_JSON = """json_build_object(
    'id', o.id, 'status', o.status, 'table_id', o.table_id, 'party_id', o.party_id,
    'server_id', o.server_id, 'guests', o.guests, 'note', o.note, 'fired_course', o.fired_course,
    'payment', o.payment, 'created_at', o.created_at, 'closed_at', o.closed_at,
    'version', o.version, 'items', lines.items, 'total_minor', lines.total_minor,
    'void_minor', lines.void_minor)"""

# An order's lines and totals, beside the order `o`; `{items}`: where the lines are read from.
LINES_OF = f"""CROSS JOIN LATERAL (
    SELECT coalesce(json_agg({ORDER_ITEM_JSON} ORDER BY oi.id), '[]') AS items,
           coalesce(sum(oi.line_total_minor) FILTER (WHERE oi.status <> 'void'), 0) AS total_minor,
           coalesce(sum(oi.line_total_minor) FILTER (WHERE oi.status = 'void'), 0) AS void_minor
    FROM {{items}} oi WHERE oi.restaurant_id = o.restaurant_id AND oi.order_id = o.id
) lines"""
ORDER_FROM = "orders o " + LINES_OF.format(items="order_items")

GET_ORDER = f"SELECT {ORDER_JSON}::text FROM {ORDER_FROM} WHERE o.restaurant_id = $1 AND o.id = $2"

LIST_ORDERS = paged(f"""
SELECT {ORDER_JSON} AS j, json_build_array(o.id) AS cursor, row_number() OVER (ORDER BY o.id) AS n
FROM {ORDER_FROM}
WHERE o.restaurant_id = $1 AND o.id > $3 AND ($4::text IS NULL OR o.status = $4)
  AND ($5::bigint IS NULL OR o.table_id = $5)
ORDER BY o.id LIMIT $2 + 1""")

# The menu rows an order needs, with each item's modifiers, in one read.
PRICES = """
SELECT i.id, i.name, i.station, i.price_minor, i.available,
       coalesce(json_object_agg(m.id, json_build_object('id', m.id, 'name', m.name,
                                'price_delta_minor', m.price_delta_minor))
                FILTER (WHERE m.id IS NOT NULL), '{}') AS modifiers
FROM menu_items i
LEFT JOIN menu_modifiers m ON m.restaurant_id = i.restaurant_id AND m.item_id = i.id
WHERE i.restaurant_id = $1 AND i.id = ANY($2::bigint[])
GROUP BY i.restaurant_id, i.id"""

# Creating an order is one statement, so the restaurant's event counter is locked only for the
# end of it and its commit. In order: a stored answer under the Idempotency-Key ($9; an expired
# one is deleted), the lines priced from the menu ($2: n, menu_item_id, qty, modifiers, note,
# course), the first problem with them, and, when there is no stored answer and no problem, the
# order, its tickets (one per station for the courses fired), its lines (fired ones on their
# ticket), their events, and the answer kept under the key ($10 fingerprint, $11 headers, $12 the
# header that carries the seq).
CREATE_ORDER = f"""
WITH expired AS (
    DELETE FROM idempotency_keys
    WHERE $9::text IS NOT NULL AND restaurant_id = $1 AND key = $9
      AND created_at < now() - interval '{idempotency.RETENTION}'
    RETURNING key
), prior AS (
    SELECT request_hash, status, headers, body FROM idempotency_keys
    WHERE $9::text IS NOT NULL AND restaurant_id = $1 AND key = $9
      AND created_at >= now() - interval '{idempotency.RETENTION}'
), wanted AS (
    SELECT * FROM jsonb_to_recordset($2::jsonb) AS l(n int, menu_item_id bigint, qty int,
                                                    modifiers jsonb, note text, course int)
), priced AS (
    SELECT w.n, w.menu_item_id, w.qty, w.note, w.course, i.id IS NOT NULL AS known, i.name,
           i.station, i.price_minor, i.available, m.modifiers, m.minor, m.missing, m.twice
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
), problem AS (
    SELECT n, menu_item_id, name, missing,
           CASE WHEN NOT known THEN 'unknown_item' WHEN NOT available THEN 'unavailable'
                WHEN twice THEN 'modifier_twice' WHEN missing IS NOT NULL THEN 'unknown_modifier'
                ELSE 'below_zero' END AS kind
    FROM priced
    WHERE NOT known OR NOT available OR twice OR missing IS NOT NULL OR price_minor + minor < 0
    ORDER BY n LIMIT 1
), go AS (
    SELECT NOT EXISTS (SELECT 1 FROM prior) AND NOT EXISTS (SELECT 1 FROM problem)
           AND (SELECT count(*) FROM expired) >= 0 AS ok  -- the expired answer is gone first
), new_order AS (
    INSERT INTO orders (restaurant_id, table_id, party_id, server_id, guests, note, fired_course)
    SELECT $1, $3, $4, $5, $6, $7, CASE WHEN $8 THEN 0 ELSE (SELECT min(course) FROM wanted) END
    FROM go WHERE go.ok
    RETURNING *
), new_tickets AS (
    INSERT INTO tickets (restaurant_id, order_id, station, course)
    SELECT $1, o.id, p.station, min(p.course)
    FROM new_order o JOIN priced p ON p.course <= o.fired_course
    GROUP BY o.id, p.station ORDER BY p.station
    RETURNING *
), new_items AS (
    INSERT INTO order_items (restaurant_id, order_id, menu_item_id, name, station, qty,
                             unit_price_minor, modifiers, modifiers_minor, note, course, status,
                             ticket_id, fired_at)
    SELECT $1, o.id, p.menu_item_id, p.name, p.station, p.qty, p.price_minor, p.modifiers,
           p.minor, p.note, p.course, CASE WHEN k.id IS NULL THEN 'new' ELSE 'fired' END, k.id,
           CASE WHEN k.id IS NOT NULL THEN now() END
    FROM new_order o CROSS JOIN priced p
    LEFT JOIN new_tickets k ON k.station = p.station AND p.course <= o.fired_course
    ORDER BY p.n
    RETURNING *
), order_doc AS (
    SELECT {ORDER_JSON}::text AS doc FROM new_order o {LINES_OF.format(items="new_items")}
), ticket_docs AS (
    SELECT k.id, k.station, {kitchen.TICKET_JSON_OF.format(items="new_items")}::jsonb AS doc
    FROM new_tickets k JOIN new_order o ON o.id = k.order_id
    LEFT JOIN dining_tables dt ON dt.restaurant_id = o.restaurant_id AND dt.id = o.table_id
    LEFT JOIN users u ON u.id = o.server_id
), batch AS (
    SELECT 1::bigint AS n, 'orders' AS channel, 'order.created' AS name,
           jsonb_build_object('order', doc::jsonb) AS data
    FROM order_doc
    UNION ALL
    SELECT 1 + row_number() OVER (ORDER BY id), 'kitchen:' || station, 'ticket.fired',
           jsonb_build_object('ticket', doc)
    FROM ticket_docs
), {events.APPEND_TAIL}, kept AS (
    INSERT INTO idempotency_keys (restaurant_id, key, request_hash, status, headers, body)
    SELECT $1, $9, $10, 201, $11::jsonb || jsonb_build_object($12::text, told.last_seq::text),
           convert_to(order_doc.doc, 'UTF8')
    FROM told, order_doc WHERE $9::text IS NOT NULL
)
SELECT (SELECT doc FROM order_doc) AS doc, (SELECT last_seq FROM told) AS last_seq,
       (SELECT families FROM told) AS families,
       p.request_hash, p.status, p.headers, p.body,
       pr.kind, pr.n, pr.missing, pr.name, pr.menu_item_id
FROM (SELECT) one LEFT JOIN prior p ON true LEFT JOIN problem pr ON true"""

INSERT_ORDER = """
INSERT INTO orders (restaurant_id, table_id, party_id, server_id, guests, note, fired_course)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id"""

INSERT_LINES = """
INSERT INTO order_items (restaurant_id, order_id, menu_item_id, name, station, qty,
                         unit_price_minor, modifiers, modifiers_minor, note, course)
SELECT $1, $2, l.menu_item_id, l.name, l.station, l.qty, l.unit_price_minor, l.modifiers,
       (SELECT coalesce(sum((m->>'price_delta_minor')::int), 0)
        FROM jsonb_array_elements(l.modifiers) m),
       l.note, l.course
FROM jsonb_to_recordset($3::jsonb) AS l(menu_item_id bigint, name text, station text, qty int,
                                        unit_price_minor int, modifiers jsonb, note text, course int)"""

LOCK_OPEN_ORDER = """
SELECT status, version, fired_course FROM orders WHERE restaurant_id = $1 AND id = $2 FOR UPDATE"""

BUMP_ORDER = """
UPDATE orders SET version = version + 1, fired_course = greatest(fired_course, $3)
WHERE restaurant_id = $1 AND id = $2"""

VOID_ITEM = """
UPDATE order_items SET status = 'void', voided_at = now(), void_reason = $4, version = version + 1
WHERE restaurant_id = $1 AND order_id = $2 AND id = $3 AND status <> 'void'
RETURNING station, ticket_id"""

SERVE_ITEM = """
UPDATE order_items SET status = 'served', served_at = now(), version = version + 1
WHERE restaurant_id = $1 AND order_id = $2 AND id = $3 AND status = 'ready'
RETURNING id"""

ITEM_STATUS = "SELECT status FROM order_items WHERE restaurant_id = $1 AND order_id = $2 AND id = $3"

UNFIRED = """
SELECT array_agg(id ORDER BY id) FROM order_items
WHERE restaurant_id = $1 AND order_id = $2 AND status = 'new'"""

CLOSE_ORDER = f"""
WITH closed AS (
    UPDATE orders o SET status = 'closed', closed_at = now(), payment = $3, version = o.version + 1
    WHERE o.restaurant_id = $1 AND o.id = $2
    RETURNING o.*
)
SELECT {ORDER_JSON}::text FROM closed o {LINES_OF.format(items="order_items")}"""

ORDER_TOTAL = """
SELECT coalesce(sum(line_total_minor) FILTER (WHERE status <> 'void'), 0)
FROM order_items WHERE restaurant_id = $1 AND order_id = $2"""


async def order_json(conn: asyncpg.Connection, rid: int, order_id: int) -> msgspec.Raw:
    text = await conn.fetchval(GET_ORDER, rid, order_id)
    if text is None:
        raise NotFound("no such order")
    return msgspec.Raw(text.encode())


async def get_order(pool: asyncpg.Pool, rid: int, order_id: int) -> msgspec.Raw:
    async with pool.acquire() as conn:
        return await order_json(conn, rid, order_id)


async def list_orders(pool: asyncpg.Pool, rid: int, limit: int, after: int, status: str | None,
                      table_id: int | None) -> tuple[Page, int]:
    return await fetch_page(pool, LIST_ORDERS, rid, limit, after, status, table_id)


async def _price_lines(conn: asyncpg.Connection, rid: int, lines: list[OrderItemIn]) -> list[dict]:
    """Snapshot name, station, price and modifiers of each line; reject unknown or 86'd items."""
    rows = {row["id"]: row for row in await conn.fetch(
        PRICES, rid, list({line.menu_item_id for line in lines}))}
    priced = []
    for n, line in enumerate(lines):
        row = rows.get(line.menu_item_id)
        if row is None:
            raise Invalid("no such menu item", [{"path": f"$.items[{n}].menu_item_id",
                                                 "message": "no such menu item"}])
        if not row["available"]:
            raise Conflict(f"{row['name']} is 86'd (not available)",
                           [{"path": f"$.items[{n}].menu_item_id", "menu_item_id": row["id"]}])
        if len(set(line.modifiers)) != len(line.modifiers):
            raise Invalid("a modifier is listed twice", [{"path": f"$.items[{n}].modifiers",
                                                         "message": "each modifier once"}])
        modifiers = []
        for m, modifier_id in enumerate(line.modifiers):
            modifier = row["modifiers"].get(str(modifier_id))
            if modifier is None:
                raise Invalid(f"{row['name']} has no such modifier",
                              [{"path": f"$.items[{n}].modifiers[{m}]", "message": "no such modifier"}])
            modifiers.append(modifier)
        if row["price_minor"] + sum(m["price_delta_minor"] for m in modifiers) < 0:
            raise Invalid("modifiers would price this line below zero",
                          [{"path": f"$.items[{n}].modifiers", "message": "price below zero"}])
        priced.append({"menu_item_id": row["id"], "name": row["name"], "station": row["station"],
                       "qty": line.qty, "unit_price_minor": row["price_minor"],
                       "modifiers": modifiers, "note": line.note, "course": line.course})
    return priced


def _reference_error(error: asyncpg.ForeignKeyViolationError) -> Invalid:
    field = "party_id" if "party" in (error.constraint_name or "") else "table_id"
    return Invalid(f"no such {field.removesuffix('_id')}", [{"path": f"$.{field}",
                                                            "message": "not in this restaurant"}])


async def _emit_order(tx: events.Write, rid: int, order_id: int, name: str,
                      tickets: list[int]) -> msgspec.Raw:
    raw = await order_json(tx.conn, rid, order_id)
    tx.emit(rid, "orders", name, {"order": raw})
    await kitchen.emit_fired(tx, rid, tickets)
    return raw


class Key(msgspec.Struct, frozen=True):
    """An Idempotency-Key and the fingerprint of the request that came with it."""
    key: str
    fingerprint: bytes


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


async def create(pool: asyncpg.Pool, rid: int, server_id: int | None, body: OrderIn,
                 key: Key | None = None, headers: dict[str, str] | None = None,
                 seq_header: str = "seq") -> tuple[msgspec.Raw, int] | idempotency.Stored:
    """Create and fire an order in one statement; or the answer already stored under `key`
    (`headers`: those kept with the answer, and `seq_header` with its seq)."""
    lines = [{"n": n, "menu_item_id": line.menu_item_id, "qty": line.qty,
              "modifiers": line.modifiers, "note": line.note, "course": line.course}
             for n, line in enumerate(body.items)]
    try:
        row = await pool.fetchrow(
            CREATE_ORDER, rid, lines, body.table_id, body.party_id, server_id, body.guests,
            body.note, body.hold, key and key.key, key and key.fingerprint, headers or {},
            seq_header)
    except asyncpg.ForeignKeyViolationError as error:
        raise _reference_error(error) from None
    except asyncpg.UniqueViolationError as error:
        if key is None or error.table_name != "idempotency_keys":
            raise
        # A duplicate sent at the same moment committed first: its answer is the answer.
        return await idempotency.stored(pool, rid, key.key)
    if row["kind"] is not None:
        raise _problem(row)
    if row["doc"] is None:
        return idempotency.Stored(fingerprint=row["request_hash"], status=row["status"],
                                  headers=row["headers"], body=row["body"])
    events.tell(rid, row["last_seq"], row["families"])
    return msgspec.Raw(row["doc"].encode()), row["last_seq"]


async def _lock_open(conn: asyncpg.Connection, rid: int, order_id: int,
                     expected: int | None) -> asyncpg.Record:
    row = await conn.fetchrow(LOCK_OPEN_ORDER, rid, order_id)
    if row is None:
        raise NotFound("no such order")
    if expected is not None and row["version"] != expected:
        raise Stale(f"the order changed (now version {row['version']}); reload and retry",
                    [{"version": row["version"]}])
    if row["status"] != "open":
        raise Conflict("this order is closed")
    return row


async def add_items(pool: asyncpg.Pool, rid: int, order_id: int, body: AddItemsIn,
                    expected: int | None) -> tuple[msgspec.Raw, int]:
    """Add lines; those of a course already fired go to the kitchen at once unless held."""
    async with events.write(pool) as tx:
        order = await _lock_open(tx.conn, rid, order_id, expected)
        lines = await _price_lines(tx.conn, rid, body.items)
        await tx.conn.execute(INSERT_LINES, rid, order_id, lines)
        await tx.conn.execute(BUMP_ORDER, rid, order_id, 0)
        tickets = [] if body.hold else await kitchen.fire(tx.conn, rid, order_id,
                                                           order["fired_course"])
        raw = await _emit_order(tx, rid, order_id, "order.items_added", tickets)
    return raw, tx.last_seq[rid]


async def fire(pool: asyncpg.Pool, rid: int, order_id: int, course: int | None,
               expected: int | None) -> tuple[msgspec.Raw, int]:
    """Fire every held item up to `course` (all courses if None)."""
    course = course or 9
    async with events.write(pool) as tx:
        await _lock_open(tx.conn, rid, order_id, expected)
        await tx.conn.execute(BUMP_ORDER, rid, order_id, course)
        tickets = await kitchen.fire(tx.conn, rid, order_id, course)
        if not tickets:
            raise Conflict(f"nothing is waiting to be fired up to course {course}")
        raw = await _emit_order(tx, rid, order_id, "order.fired", tickets)
    return raw, tx.last_seq[rid]


async def void_item(pool: asyncpg.Pool, rid: int, order_id: int, item_id: int, reason: str,
                    expected: int | None) -> tuple[msgspec.Raw, int]:
    async with events.write(pool) as tx:
        await _lock_open(tx.conn, rid, order_id, expected)
        voided = await tx.conn.fetchrow(VOID_ITEM, rid, order_id, item_id, reason or None)
        if voided is None:
            if await tx.conn.fetchval(ITEM_STATUS, rid, order_id, item_id) is None:
                raise NotFound("no such item on this order")
            raise Conflict("this item is already void")
        await tx.conn.execute(BUMP_ORDER, rid, order_id, 0)
        raw = await order_json(tx.conn, rid, order_id)
        tx.emit(rid, "orders", "item.voided", {"order": raw, "item_id": item_id})
        if voided["ticket_id"] is not None:
            tx.emit(rid, f"kitchen:{voided['station']}", "item.voided",
                    {"ticket_id": voided["ticket_id"], "item_id": item_id, "order_id": order_id})
            await kitchen.close_if_empty(tx, rid, voided["ticket_id"])
    return raw, tx.last_seq[rid]


async def serve_item(pool: asyncpg.Pool, rid: int, order_id: int, item_id: int,
                     expected: int | None) -> tuple[msgspec.Raw, int]:
    async with events.write(pool) as tx:
        await _lock_open(tx.conn, rid, order_id, expected)
        if await tx.conn.fetchval(SERVE_ITEM, rid, order_id, item_id) is None:
            status = await tx.conn.fetchval(ITEM_STATUS, rid, order_id, item_id)
            if status is None:
                raise NotFound("no such item on this order")
            raise Conflict(f"only a ready item can be served; this one is {status}",
                           [{"status": status}])
        await tx.conn.execute(BUMP_ORDER, rid, order_id, 0)
        raw = await order_json(tx.conn, rid, order_id)
        tx.emit(rid, "orders", "item.served", {"order": raw, "item_id": item_id})
    return raw, tx.last_seq[rid]


async def close(pool: asyncpg.Pool, rid: int, order_id: int, payment: Payment,
                expected: int | None) -> tuple[msgspec.Raw, int]:
    async with events.write(pool) as tx:
        await _lock_open(tx.conn, rid, order_id, expected)
        unfired = await tx.conn.fetchval(UNFIRED, rid, order_id)
        if unfired:
            raise Conflict("fire or void the held items before closing", [{"item_ids": unfired}])
        total = await tx.conn.fetchval(ORDER_TOTAL, rid, order_id)
        if payment.amount_minor < total:
            raise Invalid(f"the payment ({payment.amount_minor}) is less than the total ({total})",
                          [{"path": "$.payment.amount_minor", "total_minor": total}])
        text = await tx.conn.fetchval(CLOSE_ORDER, rid, order_id,
                                      {**msgspec.structs.asdict(payment), "total_minor": total})
        raw = msgspec.Raw(text.encode())
        tx.emit(rid, "orders", "order.closed", {"order": raw})
    return raw, tx.last_seq[rid]
