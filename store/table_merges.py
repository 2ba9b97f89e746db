"""Tables joined for a large party, orders moved to another table, lines moved between orders.

Each is one transaction with its events, and none of them sends anything to the kitchen again:
lines keep their ids, tickets, statuses and times; no ticket is written. A ticket shows its
order's table through a join; when an order changes table, its unbumped tickets are sent to
their stations as `ticket.moved` (the same ticket, redrawn with the new table), never as new.
"""
from __future__ import annotations

from typing import Annotated

import asyncpg
import msgspec

from store import checks, events, floor, kitchen, orders
from store.errors import Conflict, Invalid, NotFound, Stale
from store.floor import SEATED, Id

TableIds = Annotated[list[Id], msgspec.Meta(min_length=1, max_length=20)]
ItemIds = Annotated[list[Id], msgspec.Meta(min_length=1, max_length=100)]


class MergeIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    table_ids: TableIds  # free or seated tables that join this table's party


class Merged(msgspec.Struct, frozen=True):
    table: floor.Table  # the main table, with `merged_tables`
    tables: list[floor.Table]  # the tables that joined (or, unmerging, left) its party
    order_id: int | None  # the party's open order, holding every joined table's lines
    closed_order_ids: list[int]  # orders emptied into it, closed with nothing to pay


class TransferIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    table_id: Id  # a free table, or a seated one without an open order


class ItemsTransferIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    item_ids: ItemIds
    to_order_id: Id  # another open order of this restaurant


class ItemsTransferred(msgspec.Struct, frozen=True):
    order: orders.Order  # the order the lines left
    to_order: orders.Order  # the order they joined


LOCK_TABLES = """
SELECT t.id, t.status, t.version, t.merged_into,
       EXISTS (SELECT 1 FROM dining_tables m
               WHERE m.restaurant_id = $1 AND m.merged_into = t.id) AS has_merged
FROM dining_tables t WHERE t.restaurant_id = $1 AND t.id = ANY($2::bigint[])
ORDER BY t.id FOR NO KEY UPDATE OF t"""

# The open orders at some tables, the main table's first: the one the others are emptied into.
OPEN_ORDERS_AT = """
SELECT o.id, o.table_id, o.guests,
       EXISTS (SELECT 1 FROM checks c WHERE c.restaurant_id = $1 AND c.order_id = o.id
               AND c.status = 'paid') AS paid_checks
FROM orders o WHERE o.restaurant_id = $1 AND o.table_id = ANY($2::bigint[]) AND o.status = 'open'
ORDER BY o.table_id <> $3, o.id FOR NO KEY UPDATE"""

# Lines change order and nothing else: ticket, status and times stay.
MOVE_LINES = """
UPDATE order_items SET order_id = $3, version = version + 1
WHERE restaurant_id = $1 AND order_id = ANY($2::bigint[])
RETURNING course, status"""

# Tickets follow their lines to the party's order (the same tickets: not sent again), so the
# kitchen's lookups by order (ready, the pass, lines added later) find them there.
MOVE_TICKETS = """
UPDATE tickets k SET order_id = $3
FROM orders o WHERE k.restaurant_id = $1 AND k.order_id = ANY($2::bigint[])
  AND o.restaurant_id = $1 AND o.id = k.order_id
RETURNING k.id, k.status, o.table_id AS from_table_id"""

# A ticket all of whose lines move to another order goes with them ($4: the order they leave).
MOVE_WHOLE_TICKETS = """
UPDATE tickets k SET order_id = $3
FROM orders o WHERE k.restaurant_id = $1 AND k.order_id = $4 AND o.restaurant_id = $1 AND o.id = $4
  AND EXISTS (SELECT 1 FROM order_items oi WHERE oi.restaurant_id = $1 AND oi.ticket_id = k.id)
  AND NOT EXISTS (SELECT 1 FROM order_items oi WHERE oi.restaurant_id = $1 AND oi.ticket_id = k.id
                  AND oi.id <> ALL ($2::bigint[]))
RETURNING k.id, k.status, o.table_id AS from_table_id"""

# Orders emptied into the party's order: closed, nothing to pay, saying where their lines went.
CLOSE_EMPTIED = """
UPDATE orders SET status = 'closed', closed_at = now(), version = version + 1,
    payment = jsonb_build_object('merged_into', $3::bigint, 'total_minor', 0, 'tip_minor', 0)
WHERE restaurant_id = $1 AND id = ANY($2::bigint[])"""

TAKE_PARTY_ORDER = """
UPDATE orders SET table_id = $3, version = version + 1,
    guests = CASE WHEN $4::int IS NULL THEN guests ELSE least(100, coalesce(guests, 0) + $4) END,
    fired_course = greatest(fired_course, $5)
WHERE restaurant_id = $1 AND id = $2"""

# Joining tables end any turn of their own (its guests stay counted there) and mirror the main
# table, which keeps the party's one turn.
JOIN_TABLES = """
WITH ended AS (
    UPDATE table_turns tt SET freed_at = now() FROM dining_tables t
    WHERE t.restaurant_id = $1 AND t.id = ANY($2::bigint[])
      AND tt.restaurant_id = $1 AND tt.id = t.turn_id
)
UPDATE dining_tables t SET merged_into = $3, status = $4, turn_id = NULL,
    status_changed_at = now(), version = t.version + 1
WHERE t.restaurant_id = $1 AND t.id = ANY($2::bigint[])"""

BUMP_TABLE = "UPDATE dining_tables SET version = version + 1 WHERE restaurant_id = $1 AND id = $2"

# Unmerged tables were the party's: they are left dirty, to be reset and freed.
UNMERGE = """
UPDATE dining_tables t SET merged_into = NULL, status = 'dirty', status_changed_at = now(),
    version = t.version + 1
WHERE t.restaurant_id = $1 AND t.merged_into = $2
RETURNING t.id"""

LOCK_ORDER = """
SELECT status, version, table_id, guests FROM orders
WHERE restaurant_id = $1 AND id = $2 FOR NO KEY UPDATE"""

REPOINT_ORDER = """
UPDATE orders SET table_id = $3, version = version + 1 WHERE restaurant_id = $1 AND id = $2"""

LOCK_ORDERS = """
SELECT id, status, version FROM orders WHERE restaurant_id = $1 AND id = ANY($2::bigint[])
ORDER BY id FOR NO KEY UPDATE"""

LINES_OF = """
SELECT id, order_id, status, course FROM order_items
WHERE restaurant_id = $1 AND id = ANY($2::bigint[])"""

MOVE_SOME_LINES = """
UPDATE order_items SET order_id = $3, version = version + 1
WHERE restaurant_id = $1 AND id = ANY($2::bigint[])"""

BUMP_ORDER = orders.BUMP_ORDER

# The order's tickets still on the line, as the screens draw them (with the table's label now).
OPEN_TICKETS_OF = f"""
SELECT k.station, {kitchen.TICKET_JSON}::text AS ticket FROM {kitchen.TICKET_FROM}
WHERE k.restaurant_id = $1 AND k.order_id = $2 AND k.status <> 'bumped' ORDER BY k.id"""


async def merge(pool: asyncpg.Pool, rid: int, table_id: int, body: MergeIn,
                expected: int | None) -> tuple[Merged, int]:
    """Tables join the party at `table_id`: they take its status, their open orders' lines move
    into the party's order (the first found, when the main table has none, becomes it)."""
    joining = sorted(set(body.table_ids))
    if table_id in joining or len(joining) != len(body.table_ids):
        raise Invalid("list each other table once", [{"path": "$.table_ids",
                                                       "message": "repeats a table or names this one"}])
    async with events.write(pool) as tx:
        # Every table in one statement, in id order: two merges of the same tables never deadlock.
        locked = {r["id"]: r for r in await tx.conn.fetch(LOCK_TABLES, rid, [table_id, *joining])}
        main = _main_table(locked.get(table_id), expected)
        _check_joining(locked, joining)
        found = await tx.conn.fetch(OPEN_ORDERS_AT, rid, [table_id, *joining], table_id)
        if any(o["paid_checks"] for o in found):
            raise Conflict("an order at these tables has a paid check; settle it first",
                           [{"order_ids": [o["id"] for o in found if o["paid_checks"]]}])
        party_order = found[0]["id"] if found else None
        emptied = [o["id"] for o in found[1:]]
        tickets_moved: list[asyncpg.Record] = []
        if found:
            # Read again under the orders' locks: a check paid while this waited counts.
            if await checks.drop_unpaid(tx.conn, rid, [o["id"] for o in found]):
                raise Conflict("an order at these tables has a paid check; settle it first")
            moved = await tx.conn.fetch(MOVE_LINES, rid, emptied, party_order) if emptied else []
            if emptied:
                tickets_moved = await tx.conn.fetch(MOVE_TICKETS, rid, emptied, party_order)
            fired = max((m["course"] for m in moved if m["status"] not in ("new", "held")), default=0)
            guests = sum(o["guests"] or 0 for o in found[1:]) or None
            try:
                await tx.conn.execute(TAKE_PARTY_ORDER, rid, party_order, table_id, guests, fired)
            except asyncpg.UniqueViolationError:  # an order was opened at this table meanwhile
                raise Conflict("an order has just been opened at this table; merge again",
                               [{"path": "$", "table_id": table_id}],
                               code="table_has_open_order") from None
            if emptied:
                await tx.conn.execute(CLOSE_EMPTIED, rid, emptied, party_order)
        await tx.conn.execute(JOIN_TABLES, rid, joining, table_id, main["status"])
        await tx.conn.execute(BUMP_TABLE, rid, table_id)
        merged = await _answer(tx, rid, table_id, joining, party_order, emptied)
        tx.emit(rid, "floor", "table.merged", {"table": merged.table, "tables": merged.tables})
        for order_id in emptied:
            tx.emit(rid, "orders", "order.closed", {"order": await orders.order_json(tx.conn, rid,
                                                                                     order_id)})
        if found and found[0]["table_id"] != table_id:
            await _redraw_tickets(tx, rid, party_order, found[0]["table_id"])
        await _redraw_moved(tx, rid, tickets_moved)
        if party_order is not None:
            tx.emit(rid, "orders", "order.merged", {
                "order": await orders.order_json(tx.conn, rid, party_order),
                "from_order_ids": emptied, "table_ids": joining})
    return merged, tx.last_seq[rid]


async def unmerge(pool: asyncpg.Pool, rid: int, table_id: int,
                  expected: int | None) -> tuple[Merged, int]:
    """The tables joined to `table_id` leave its party, dirty; the party's order stays here."""
    async with events.write(pool) as tx:
        rows = await tx.conn.fetch(LOCK_TABLES, rid, [table_id])
        if not rows:
            raise NotFound("no such table")
        _check_version(rows[0], expected)
        left = await tx.conn.fetch(UNMERGE, rid, table_id)
        if not left:
            raise Conflict("no table is merged into this one")
        await tx.conn.execute(BUMP_TABLE, rid, table_id)
        order_id = await tx.conn.fetchval(orders.OPEN_ORDER_OF_TABLE, rid, table_id)
        merged = await _answer(tx, rid, table_id, [r["id"] for r in left], order_id, [])
        tx.emit(rid, "floor", "table.unmerged", {"table": merged.table, "tables": merged.tables})
    return merged, tx.last_seq[rid]


def _main_table(main: asyncpg.Record | None, expected: int | None) -> asyncpg.Record:
    if main is None:
        raise NotFound("no such table")
    _check_version(main, expected)
    if main["merged_into"] is not None:
        raise Conflict("this table is merged into another one: merge into that one",
                       [{"merged_into": main["merged_into"]}])
    if main["status"] not in SEATED:
        raise Conflict(f"no party sits at this table (it is {main['status']})",
                       [{"status": main["status"]}])
    return main


def _check_version(row: asyncpg.Record, expected: int | None) -> None:
    if expected is not None and row["version"] != expected:
        raise Stale(f"the table changed (now version {row['version']}); reload and retry",
                    [{"version": row["version"]}])


def _check_joining(locked: dict[int, asyncpg.Record], joining: list[int]) -> None:
    rows = {table_id: locked[table_id] for table_id in joining if table_id in locked}
    missing = [i for i, t in enumerate(joining) if t not in rows]
    if missing:
        raise Invalid("no such table", [{"path": "$.table_ids", "message": "not a table of this "
                                         f"restaurant: {joining[i]}"} for i in missing])
    for table_id, row in rows.items():
        if row["merged_into"] is not None or row["has_merged"]:
            raise Conflict("that table is already part of a merge",
                           [{"path": "$.table_ids", "table_id": table_id}])
        if row["status"] != "free" and row["status"] not in SEATED:
            raise Conflict(f"a {row['status']} table cannot join a party",
                           [{"path": "$.table_ids", "table_id": table_id, "status": row["status"]}])


async def _answer(tx: events.Write, rid: int, table_id: int, others: list[int],
                  order_id: int | None, emptied: list[int]) -> Merged:
    def table(raw: msgspec.Raw) -> floor.Table:
        return msgspec.json.decode(raw, type=floor.Table)
    main = table(await floor.table_json(tx.conn, rid, table_id))
    tables = [table(await floor.table_json(tx.conn, rid, other)) for other in others]
    return Merged(main, tables, order_id, emptied)


async def transfer_order(pool: asyncpg.Pool, rid: int, order_id: int, body: TransferIn,
                         expected: int | None) -> tuple[msgspec.Raw, int]:
    """An open order goes to another table: a free one is seated for it; a seated one must have
    no open order. The table it left keeps its status (its guests may still be there)."""
    async with events.write(pool) as tx:
        order = await tx.conn.fetchrow(LOCK_ORDER, rid, order_id)
        orders.check_open(order and order["status"], order and order["version"], expected)
        rows = await tx.conn.fetch(LOCK_TABLES, rid, [body.table_id])
        if not rows or body.table_id == order["table_id"]:
            raise Invalid("no such other table", [{"path": "$.table_id",
                                                   "message": "not another table of this restaurant"}])
        target = rows[0]
        if target["merged_into"] is not None:
            raise Conflict("that table is merged into another one: transfer to that one",
                           [{"path": "$.table_id", "merged_into": target["merged_into"]}])
        if target["status"] != "free" and target["status"] not in SEATED:
            raise Conflict(f"the table is {target['status']}, not free or seated",
                           [{"path": "$.table_id", "status": target["status"]}])
        await orders.refuse_second_order(tx.conn, rid, body.table_id)
        if target["status"] == "free":
            await floor.move_table(tx, rid, body.table_id, "seated", order["guests"])
        try:
            await tx.conn.execute(REPOINT_ORDER, rid, order_id, body.table_id)
        except asyncpg.UniqueViolationError:  # an order opened there meanwhile (one per table)
            raise Conflict("that table has just got an open order; move lines into it instead",
                           [{"path": "$.table_id", "table_id": body.table_id}],
                           code="table_has_open_order") from None
        raw = await orders.order_json(tx.conn, rid, order_id)
        tx.emit(rid, "orders", "order.transferred", {"order": raw,
                                                     "from_table_id": order["table_id"]})
        await _redraw_tickets(tx, rid, order_id, order["table_id"])
    return raw, tx.last_seq[rid]


async def _redraw_tickets(tx: events.Write, rid: int, order_id: int,
                          from_table_id: int | None) -> None:
    """Stations redraw the order's unbumped tickets with its new table: not a new ticket."""
    for row in await tx.conn.fetch(OPEN_TICKETS_OF, rid, order_id):
        tx.emit(rid, f"kitchen:{row['station']}", "ticket.moved", {
            "ticket": msgspec.Raw(row["ticket"].encode()), "from_table_id": from_table_id})


async def _redraw_moved(tx: events.Write, rid: int, moved: list[asyncpg.Record]) -> None:
    """Stations redraw the unbumped tickets that went to another order: not new tickets."""
    open_ids = [row["id"] for row in moved if row["status"] != "bumped"]
    came_from = {row["id"]: row["from_table_id"] for row in moved}
    for row in await tx.conn.fetch(kitchen.TICKETS_BY_ID, rid, open_ids) if open_ids else []:
        tx.emit(rid, f"kitchen:{row['station']}", "ticket.moved", {
            "ticket": msgspec.Raw(row["ticket"].encode()), "from_table_id": came_from[row["id"]]})


async def transfer_items(pool: asyncpg.Pool, rid: int, order_id: int, body: ItemsTransferIn,
                         expected: int | None) -> tuple[ItemsTransferred, int]:
    """Lines move from one open order to another; both versions go up. An unpaid split of either
    order is dropped (its checks no longer match); a paid one refuses the move."""
    async with events.write(pool) as tx:
        if body.to_order_id == order_id:
            raise Invalid("the lines are on this order already",
                          [{"path": "$.to_order_id", "message": "the same order"}])
        locked = {r["id"]: r for r in await tx.conn.fetch(LOCK_ORDERS, rid,
                                                          [order_id, body.to_order_id])}
        source = locked.get(order_id)
        orders.check_open(source and source["status"], source and source["version"], expected)
        target = locked.get(body.to_order_id)
        if target is None:
            raise Invalid("no such order", [{"path": "$.to_order_id",
                                             "message": "not an order of this restaurant"}])
        if target["status"] != "open":
            raise Conflict("the order to move to is closed", [{"path": "$.to_order_id"}])
        lines = await _lines_to_move(tx.conn, rid, order_id, body.item_ids)
        if await checks.drop_unpaid(tx.conn, rid, [order_id, body.to_order_id]):
            raise Conflict("one of these orders has a paid check: its lines stay")
        tickets_moved = await tx.conn.fetch(MOVE_WHOLE_TICKETS, rid, body.item_ids,
                                            body.to_order_id, order_id)
        await tx.conn.execute(MOVE_SOME_LINES, rid, body.item_ids, body.to_order_id)
        fired = max((r["course"] for r in lines if r["status"] not in ("new", "held")), default=0)
        await tx.conn.execute(BUMP_ORDER, rid, order_id, 0)
        await tx.conn.execute(BUMP_ORDER, rid, body.to_order_id, fired)
        raw = await orders.order_json(tx.conn, rid, order_id)
        to_raw = await orders.order_json(tx.conn, rid, body.to_order_id)
        tx.emit(rid, "orders", "order.items_transferred",
                {"order": raw, "to_order": to_raw, "item_ids": body.item_ids})
        await _redraw_moved(tx, rid, tickets_moved)
    answer = ItemsTransferred(msgspec.json.decode(raw, type=orders.Order),
                              msgspec.json.decode(to_raw, type=orders.Order))
    return answer, tx.last_seq[rid]


async def _lines_to_move(conn: asyncpg.Connection, rid: int, order_id: int,
                         item_ids: list[int]) -> list[asyncpg.Record]:
    rows = {r["id"]: r for r in await conn.fetch(LINES_OF, rid, item_ids)}
    problems = []
    for i, item_id in enumerate(item_ids):
        row = rows.get(item_id)
        if item_ids.index(item_id) != i:
            problems.append({"path": f"$.item_ids[{i}]", "message": "listed twice"})
        elif row is None or row["order_id"] != order_id:
            problems.append({"path": f"$.item_ids[{i}]", "message": "not a line of this order"})
        elif row["status"] == "void":
            problems.append({"path": f"$.item_ids[{i}]", "message": "void"})
    if problems:
        raise Invalid("only this order's live lines can move, each once", problems)
    return list(rows.values())
