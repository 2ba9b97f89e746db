"""Changes to an order after it was taken: a line's qty, note, course or seat (PATCH), and the
rule that a table has one open order however many iPads take orders for it.

A line already sent to the kitchen may still change its qty, note or seat: its ticket keeps
what changed (`tickets.changes`) and its station is told, so the ticket flashes with it. Its
course may not change once sent (the ticket would lose a line the cook has read).
"""
from __future__ import annotations

from typing import Annotated, Any

import asyncpg
import msgspec
from msgspec import UNSET, UnsetType

from store import events, idempotency, order_entry, orders
from store.errors import Conflict, Invalid, NotFound, Stale
from store.orders import ORDER_ITEM_COLUMNS, Course, Note, OrderIn, Qty

Seat = Annotated[int, msgspec.Meta(ge=1, le=100)]
FIELDS = ("qty", "note", "course", "seat")


class ItemPatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Any of a line's qty, note, course and seat (null: no seat); at least one."""
    qty: Qty | UnsetType = UNSET
    note: Note | UnsetType = UNSET
    course: Course | UnsetType = UNSET
    seat: Seat | None | UnsetType = UNSET


LOCK_ITEM = f"""
SELECT oi.status, oi.version, oi.qty, oi.note, oi.course, oi.seat, oi.ticket_id, oi.name,
       (SELECT to_json(t)::text FROM (SELECT {ORDER_ITEM_COLUMNS}) t) AS item
FROM order_items oi WHERE oi.restaurant_id = $1 AND oi.order_id = $2 AND oi.id = $3
FOR UPDATE"""

# $4..$7 the new qty, note, course, seat (NULL: kept, but for seat, where $8 says it was sent).
PATCH_ITEM = """
UPDATE order_items SET qty = coalesce($4, qty), note = coalesce($5, note),
                       course = coalesce($6, course), seat = CASE WHEN $8 THEN $7 ELSE seat END,
                       version = version + 1
WHERE restaurant_id = $1 AND order_id = $2 AND id = $3"""

BUMP_ORDER = "UPDATE orders SET version = version + 1 WHERE restaurant_id = $1 AND id = $2"


def _changed(body: ItemPatch, line: asyncpg.Record) -> dict[str, Any]:
    """The fields the patch sends with a value other than the line's."""
    return {name: getattr(body, name) for name in FIELDS
            if getattr(body, name) is not UNSET and getattr(body, name) != line[name]}


def _refusal(line: asyncpg.Record, changed: dict[str, Any]) -> Conflict | None:
    status = line["status"]
    if status in ("void", "served"):
        return Conflict(f"this item is {status}; it cannot change", [{"status": status}])
    if "course" in changed and status != "new":
        return Conflict(f"this item was already sent to the kitchen ({status}); its course "
                        "cannot change — void it and add it to the other course",
                        [{"path": "$.course", "status": status}], code="already_sent")
    if status == "ready" and ("qty" in changed or "note" in changed):
        return Conflict("this item is ready at the pass; void it and add a new one instead",
                        [{"status": status}], code="already_sent")
    return None


def _ticket_changes(item_id: int, line: asyncpg.Record, changed: dict[str, Any]) -> list[dict]:
    """What the kitchen is shown: "qty 1 → 2", "note: no onions", "seat 1 → 3"."""
    said = []
    if "qty" in changed:
        said.append(("qty", f"qty {line['qty']} → {changed['qty']}"))
    if "note" in changed:
        said.append(("note", f"note: {changed['note']}" if changed["note"] else "note removed"))
    if "seat" in changed:
        said.append(("moved", f"seat {line['seat'] or '–'} → {changed['seat'] or '–'}"))
    return [{"kind": kind, "item_id": item_id, "name": line["name"], "text": text}
            for kind, text in said]


async def patch_item(pool: asyncpg.Pool, rid: int, order_id: int, item_id: int, body: ItemPatch,
                     expected: int | None) -> tuple[msgspec.Raw, int]:
    """Change a line of an open order (`expected`: the line's version, from If-Match)."""
    if all(getattr(body, name) is UNSET for name in FIELDS):
        raise Invalid("send at least one of qty, note, course, seat",
                      [{"path": "$", "message": "nothing to change"}])
    async with events.write(pool) as tx:
        order = await tx.conn.fetchrow(orders.LOCK_OPEN_ORDER, rid, order_id)
        orders.check_open(order and order["status"], order and order["version"], None)
        await tx.conn.execute(orders.LOCK_TICKET_OF_ITEM, rid, order_id, item_id)
        line = await tx.conn.fetchrow(LOCK_ITEM, rid, order_id, item_id)
        if line is None:
            raise NotFound("no such item on this order")
        if expected is not None and line["version"] != expected:
            raise Stale(f"the item changed (now version {line['version']}); reload and retry",
                        [{"version": line["version"], "item": msgspec.Raw(line["item"].encode())}])
        changed = _changed(body, line)
        refusal = _refusal(line, changed)
        if refusal is not None:
            raise refusal
        await tx.conn.execute(PATCH_ITEM, rid, order_id, item_id, changed.get("qty"),
                              changed.get("note"), changed.get("course"), changed.get("seat"),
                              "seat" in changed)
        await tx.conn.execute(BUMP_ORDER, rid, order_id)
        raw = await orders.order_json(tx.conn, rid, order_id)
        tx.emit(rid, "orders", "item.updated", {"order": raw, "item_id": item_id})
        said = _ticket_changes(item_id, line, changed)
        if line["ticket_id"] is not None and said:  # sent: its ticket shows what changed
            await orders.record_ticket_changes(tx, rid, line["ticket_id"], said)
    return raw, tx.last_seq[rid]


async def create_order(pool: asyncpg.Pool, rid: int, server_id: int | None, body: OrderIn,
                       key: order_entry.Key | None,
                       answer: order_entry.Answer) -> order_entry.Outcome:
    """Take an order (store/order_entry.py); a table that already has an open order gets none
    more: 409 `table_has_open_order` naming it, so the iPad adds to it instead."""
    try:
        return await order_entry.create(pool, rid, server_id, body, key, answer)
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name != orders.ONE_OPEN_ORDER:
            raise
    if key is not None:  # the same request, sent twice at once: the first one's answer
        kept = await pool.fetchrow(idempotency.STORED, rid, key.key)
        if kept is not None:
            return idempotency.Stored(fingerprint=kept["request_hash"], status=kept["status"],
                                      headers=kept["headers"], body=kept["body"])
    async with pool.acquire() as conn:
        await orders.refuse_second_order(conn, rid, body.table_id)
    raise Conflict("the table's open order has just closed; send the order again")
