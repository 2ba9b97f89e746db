"""Orders and their items: read, voided, served, closed (taking them: store/order_entry.py).

Totals are SQL: each line's total is a generated column, an order's total is a
SUM over its live lines in the query that renders it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
import msgspec

from store import events, kitchen
from store.errors import Conflict, Invalid, NotFound, Stale
from store.pages import Page, fetch_page, paged

Qty = Annotated[int, msgspec.Meta(ge=1, le=99)]
Course = Annotated[int, msgspec.Meta(ge=1, le=9)]
Note = Annotated[str, msgspec.Meta(max_length=300)]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]  # a bigint key: larger is a 422, not a 500
ItemStatus = Literal["new", "held", "fired", "cooking", "ready", "served", "void"]


class OrderItemIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    menu_item_id: Id
    qty: Qty = 1
    modifiers: Annotated[list[Id], msgspec.Meta(max_length=20)] = []  # menu modifier ids
    note: Note = ""
    course: Course = 1
    seat: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None


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
    seat: int | None
    fire_at: datetime | None  # a held line's time to go to the cook


class Order(msgspec.Struct, frozen=True):
    id: int
    status: Literal["open", "closed"]
    table_id: int | None
    party_id: int | None
    server_id: int | None
    guests: int | None
    note: str
    fired_course: int
    held_courses: list[int]  # courses held by hand: nothing of them goes until fired by hand
    payment: dict[str, Any] | None
    created_at: datetime
    closed_at: datetime | None
    version: int
    items: list[OrderItem]
    total_minor: int
    void_minor: int


# JSON is made from rows (to_json of a row, json_agg of rows): a third less of PostgreSQL's time
# than json_build_object with the same keys, and no spaces in the output.
ORDER_ITEM_COLUMNS = """oi.id, oi.menu_item_id, oi.name, oi.station, oi.qty, oi.unit_price_minor,
    oi.modifiers, oi.modifiers_minor, oi.line_total_minor, oi.note, oi.course, oi.status,
    oi.ticket_id, oi.created_at, oi.fired_at, oi.cooking_at, oi.ready_at, oi.served_at,
    oi.voided_at, oi.void_reason, oi.version, oi.seat, oi.fire_at"""

# An order `o` beside its `lines` (below), as JSON.
ORDER_JSON = """(SELECT to_json(t) FROM (SELECT
    o.id, o.status, o.table_id, o.party_id, o.server_id, o.guests, o.note, o.fired_course,
    o.held_courses, o.payment, o.created_at, o.closed_at, o.version, lines.items, lines.total_minor,
    lines.void_minor) t)"""

# An order's lines and totals, beside the order `o`; `{items}`: where the lines are read from.
LINES_OF = f"""CROSS JOIN LATERAL (
    SELECT coalesce(json_agg(line ORDER BY line.id), '[]') AS items,
           coalesce(sum(line.line_total_minor) FILTER (WHERE line.status <> 'void'), 0) AS total_minor,
           coalesce(sum(line.line_total_minor) FILTER (WHERE line.status = 'void'), 0) AS void_minor
    FROM (SELECT {ORDER_ITEM_COLUMNS} FROM {{items}} oi
          WHERE oi.restaurant_id = o.restaurant_id AND oi.order_id = o.id) line
) lines"""
ORDER_FROM = "orders o " + LINES_OF.format(items="order_items")

GET_ORDER = f"SELECT {ORDER_JSON}::text FROM {ORDER_FROM} WHERE o.restaurant_id = $1 AND o.id = $2"

LIST_ORDERS = paged(f"""
SELECT {ORDER_JSON} AS j, json_build_array(o.id) AS cursor, row_number() OVER (ORDER BY o.id) AS n
FROM {ORDER_FROM}
WHERE o.restaurant_id = $1 AND o.id > $3 AND ($4::text IS NULL OR o.status = $4)
  AND ($5::bigint IS NULL OR o.table_id = $5)
ORDER BY o.id LIMIT $2 + 1""")

LOCK_OPEN_ORDER = """
SELECT status, version, fired_course FROM orders WHERE restaurant_id = $1 AND id = $2 FOR NO KEY UPDATE"""

BUMP_ORDER = """
UPDATE orders SET version = version + 1, fired_course = greatest(fired_course, $3)
WHERE restaurant_id = $1 AND id = $2"""

VOID_ITEM = """
UPDATE order_items SET status = 'void', voided_at = now(), void_reason = $4, version = version + 1
WHERE restaurant_id = $1 AND order_id = $2 AND id = $3 AND status <> 'void'
RETURNING station, ticket_id, qty, name"""

# A line's ticket, locked before the line is (kitchen steps lock a ticket, then its lines).
LOCK_TICKET_OF_ITEM = """
SELECT k.id FROM tickets k
WHERE k.restaurant_id = $1 AND k.id = (SELECT ticket_id FROM order_items
                                       WHERE restaurant_id = $1 AND order_id = $2 AND id = $3)
FOR NO KEY UPDATE"""

SERVE_ITEM = """
UPDATE order_items SET status = 'served', served_at = now(), version = version + 1
WHERE restaurant_id = $1 AND order_id = $2 AND id = $3 AND status = 'ready'
RETURNING id"""

ITEM_STATUS = "SELECT status FROM order_items WHERE restaurant_id = $1 AND order_id = $2 AND id = $3"

UNFIRED = """
SELECT array_agg(id ORDER BY id) FROM order_items
WHERE restaurant_id = $1 AND order_id = $2 AND status IN ('new', 'held')"""

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


# What changed on a ticket after it was sent ($3: [{"kind", "item_id", "name", "text"}], each
# stamped now), so its screen shows it; a bumped ticket has left the screens and is not told.
TICKET_CHANGED = f"""
WITH stamped AS (
    SELECT jsonb_agg(c || jsonb_build_object('at', now()) ORDER BY n) AS changes
    FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS e(c, n)
), k AS (
    UPDATE tickets SET changed_at = now(), version = version + 1,
                       changes = changes || (SELECT changes FROM stamped)
    WHERE restaurant_id = $1 AND id = $2 AND status <> 'bumped'
    RETURNING *
)
SELECT k.station, {kitchen.TICKET_JSON}::text AS ticket, (SELECT changes FROM stamped)::text AS changes
FROM k
JOIN orders o ON o.restaurant_id = k.restaurant_id AND o.id = k.order_id
LEFT JOIN dining_tables dt ON dt.restaurant_id = o.restaurant_id AND dt.id = o.table_id
LEFT JOIN users u ON u.id = o.server_id"""


async def record_ticket_changes(tx: events.Write, rid: int, ticket_id: int,
                                changes: list[dict[str, Any]]) -> None:
    """Append `changes` to a sent ticket and tell its station (`ticket.changed`), so the
    kitchen redraws it and sees what changed."""
    row = await tx.conn.fetchrow(TICKET_CHANGED, rid, ticket_id, changes)
    if row is None:
        return
    tx.emit(rid, f"kitchen:{row['station']}", "ticket.changed",
            {"ticket": msgspec.Raw(row["ticket"].encode()),
             "changes": msgspec.Raw(row["changes"].encode())})


OPEN_ORDER_OF_TABLE = """
SELECT id FROM orders WHERE restaurant_id = $1 AND table_id = $2 AND status = 'open'"""
ONE_OPEN_ORDER = "orders_one_open_per_table"  # the unique index of migration 0016


async def refuse_second_order(conn: asyncpg.Connection, rid: int, table_id: int,
                              path: str = "$.table_id") -> None:
    """409 `table_has_open_order` naming the table's open order, if it has one: a table has one
    open order at a time (so two iPads never open two), and lines go into it instead."""
    there = await conn.fetchval(OPEN_ORDER_OF_TABLE, rid, table_id)
    if there is not None:
        raise Conflict(f"this table already has an open order ({there}); add the items to it",
                       [{"path": path, "table_id": table_id, "order_id": there}],
                       code="table_has_open_order")


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


def check_open(status: str | None, version: int | None, expected: int | None) -> None:
    """A locked order may change: it exists (404), is the version asked for (412), is open (409)."""
    if status is None:
        raise NotFound("no such order")
    if expected is not None and version != expected:
        raise Stale(f"the order changed (now version {version}); reload and retry",
                    [{"version": version}])
    if status != "open":
        raise Conflict("this order is closed")


async def _lock_open(conn: asyncpg.Connection, rid: int, order_id: int,
                     expected: int | None) -> asyncpg.Record:
    row = await conn.fetchrow(LOCK_OPEN_ORDER, rid, order_id)
    check_open(row and row["status"], row and row["version"], expected)
    return row


async def void_item(pool: asyncpg.Pool, rid: int, order_id: int, item_id: int, reason: str,
                    expected: int | None) -> tuple[msgspec.Raw, int]:
    async with events.write(pool) as tx:
        await _lock_open(tx.conn, rid, order_id, expected)
        await tx.conn.execute(LOCK_TICKET_OF_ITEM, rid, order_id, item_id)
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
            await record_ticket_changes(tx, rid, voided["ticket_id"], [{
                "kind": "voided", "item_id": item_id, "name": voided["name"],
                "text": f"VOID {voided['qty']}× {voided['name']}"}])
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


# What split checks of the order have paid already (store/checks.py), and the open checks a
# payment of the rest replaces.
PAID_CHECKS = """
SELECT count(*) AS paid, coalesce(sum(subtotal_minor), 0)::bigint AS minor,
       coalesce(sum((payment->>'amount_minor')::bigint), 0)::bigint AS amount_minor,
       coalesce(sum((payment->>'tip_minor')::bigint), 0)::bigint AS tip_minor,
       coalesce(jsonb_agg(payment || jsonb_build_object('check_id', id, 'number', number)
                          ORDER BY number), '[]') AS checks
FROM checks WHERE restaurant_id = $1 AND order_id = $2 AND status = 'paid'"""
DROP_OPEN_CHECKS = "DELETE FROM checks WHERE restaurant_id = $1 AND order_id = $2 AND status = 'open'"


async def close(pool: asyncpg.Pool, rid: int, order_id: int, payment: Payment,
                expected: int | None) -> tuple[msgspec.Raw, int]:
    """Close with one payment of what is due: the total, less what paid checks of a split have
    paid (their payments are kept with this one; its open checks go)."""
    async with events.write(pool) as tx:
        await _lock_open(tx.conn, rid, order_id, expected)
        unfired = await tx.conn.fetchval(UNFIRED, rid, order_id)
        if unfired:
            raise Conflict("fire or void the held items before closing", [{"item_ids": unfired}])
        total = await tx.conn.fetchval(ORDER_TOTAL, rid, order_id)
        checks = await tx.conn.fetchrow(PAID_CHECKS, rid, order_id)
        due = max(total - checks["minor"], 0)
        if payment.amount_minor < due:
            raise Invalid(f"the payment ({payment.amount_minor}) is less than what is due ({due})",
                          [{"path": "$.payment.amount_minor", "total_minor": total,
                            "due_minor": due}])
        paid = {**msgspec.structs.asdict(payment), "total_minor": total}
        if checks["paid"]:
            paid = {**paid, "amount_minor": payment.amount_minor + checks["amount_minor"],
                    "tip_minor": payment.tip_minor + checks["tip_minor"],
                    "checks": checks["checks"], "rest": msgspec.structs.asdict(payment)}
        await tx.conn.execute(DROP_OPEN_CHECKS, rid, order_id)
        text = await tx.conn.fetchval(CLOSE_ORDER, rid, order_id, paid)
        raw = msgspec.Raw(text.encode())
        tx.emit(rid, "orders", "order.closed", {"order": raw})
    return raw, tx.last_seq[rid]
