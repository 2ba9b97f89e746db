"""Kitchen tickets: fired items grouped per station, started, bumped, recalled within the
restaurant's recall window; item-level ready; the recently bumped list."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
import msgspec

from store import events
from store.errors import Conflict, NotFound, Stale
from store.pages import Page, fetch_page, paged
from store.restaurants import Settings

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
TicketStatus = Literal["open", "started", "bumped"]


class TicketItem(msgspec.Struct, frozen=True):
    id: int
    menu_item_id: int
    name: str
    qty: int
    modifiers: list[dict[str, Any]]
    note: str
    course: int
    status: str
    seat: int | None
    fire_at: datetime | None  # a held line's time to go to the cook


class TicketChange(msgspec.Struct, frozen=True):
    at: datetime
    kind: Literal["added", "voided", "note", "qty", "moved"]
    item_id: int
    name: str
    text: str


class Ticket(msgspec.Struct, frozen=True):
    id: int
    order_id: int
    station: str
    course: int
    status: TicketStatus
    fired_at: datetime
    started_at: datetime | None
    bumped_at: datetime | None
    recalled_at: datetime | None
    changed_at: datetime | None
    changes: list[TicketChange]
    version: int
    table_id: int | None
    table_label: str | None
    server_name: str | None
    guests: int | None
    order_note: str
    items: list[TicketItem]


# A ticket as the screens get it (JSON from rows, as orders'); `{items}`: where its lines are
# read from (order_items, or the lines a statement has just written).
TICKET_JSON_OF = """(SELECT to_json(t) FROM (SELECT
    k.id, k.order_id, k.station, k.course, k.status, k.fired_at, k.started_at, k.bumped_at,
    k.recalled_at, k.changed_at, k.changes, k.version, o.table_id, dt.label AS table_label, u.name AS server_name,
    o.guests, o.note AS order_note,
    (SELECT coalesce(json_agg(line ORDER BY line.id), '[]')
     FROM (SELECT oi.id, oi.menu_item_id, oi.name, oi.qty, oi.modifiers, oi.note, oi.course,
                  oi.status, oi.seat, oi.fire_at
           FROM {items} oi WHERE oi.restaurant_id = k.restaurant_id AND oi.ticket_id = k.id) line
    ) AS items) t)"""
TICKET_JSON = TICKET_JSON_OF.format(items="order_items")

TICKET_FROM = """tickets k
JOIN orders o ON o.restaurant_id = k.restaurant_id AND o.id = k.order_id
LEFT JOIN dining_tables dt ON dt.restaurant_id = o.restaurant_id AND dt.id = o.table_id
LEFT JOIN users u ON u.id = o.server_id"""

# Open tickets in fire order (ids are handed out as tickets fire).
LIST_OPEN = paged(f"""
SELECT {TICKET_JSON} AS j, json_build_array(k.id) AS cursor, row_number() OVER (ORDER BY k.id) AS n
FROM {TICKET_FROM}
WHERE k.restaurant_id = $1 AND k.status <> 'bumped' AND k.id > $3
  AND ($4::text IS NULL OR k.station = $4)
ORDER BY k.id LIMIT $2 + 1""")

# How long a bumped ticket can still be recalled: the restaurant's recall_minutes.
RECALL_WINDOW = f"""make_interval(mins => (SELECT coalesce((r.settings->>'recall_minutes')::int,
    {Settings().recall_minutes}) FROM restaurants r WHERE r.id = $1))"""

# Tickets bumped within the recall window, newest first; `$3, $4`: the (bumped_at, id) the page
# starts before. A ticket closed because every line was voided has nothing to recall.
LIST_RECENT = paged(f"""
SELECT {TICKET_JSON} AS j, json_build_array(k.bumped_at, k.id) AS cursor,
       row_number() OVER (ORDER BY k.bumped_at DESC, k.id DESC) AS n
FROM {TICKET_FROM}
WHERE k.restaurant_id = $1 AND k.status = 'bumped' AND k.bumped_at > now() - {RECALL_WINDOW}
  AND (k.bumped_at, k.id) < ($3::timestamptz, $4::bigint)
  AND ($5::text IS NULL OR k.station = $5)
  AND EXISTS (SELECT 1 FROM order_items oi WHERE oi.restaurant_id = k.restaurant_id
              AND oi.ticket_id = k.id AND oi.status <> 'void')
ORDER BY k.bumped_at DESC, k.id DESC LIMIT $2 + 1""")


class PassItem(msgspec.Struct, frozen=True):
    id: int
    name: str
    qty: int
    modifiers: list[dict[str, Any]]
    note: str
    station: str
    status: str


class AtThePass(msgspec.Struct, frozen=True):
    """An order whose fired tickets are all bumped, with food waiting to go out."""
    order_id: int
    table_id: int | None
    table_label: str | None
    server_name: str | None
    ready_at: datetime
    items: list[PassItem]


# Orders at the pass (expo): every ticket bumped, some item ready and not yet served.
LIST_PASS = paged("""
SELECT json_build_object(
           'order_id', o.id, 'table_id', o.table_id, 'table_label', dt.label, 'server_name', u.name,
           'ready_at', (SELECT max(k.bumped_at) FROM tickets k
                        WHERE k.restaurant_id = o.restaurant_id AND k.order_id = o.id),
           'items', (SELECT json_agg(json_build_object(
                         'id', oi.id, 'name', oi.name, 'qty', oi.qty, 'modifiers', oi.modifiers,
                         'note', oi.note, 'station', oi.station, 'status', oi.status) ORDER BY oi.id)
                     FROM order_items oi WHERE oi.restaurant_id = o.restaurant_id
                       AND oi.order_id = o.id AND oi.status = 'ready')) AS j,
       json_build_array(o.id) AS cursor, row_number() OVER (ORDER BY o.id) AS n
FROM orders o
LEFT JOIN dining_tables dt ON dt.restaurant_id = o.restaurant_id AND dt.id = o.table_id
LEFT JOIN users u ON u.id = o.server_id
WHERE o.restaurant_id = $1 AND o.status = 'open' AND o.id > $3
  AND EXISTS (SELECT 1 FROM order_items oi WHERE oi.restaurant_id = o.restaurant_id
              AND oi.order_id = o.id AND oi.status = 'ready')
  AND NOT EXISTS (SELECT 1 FROM tickets k WHERE k.restaurant_id = o.restaurant_id
                  AND k.order_id = o.id AND k.status <> 'bumped')
ORDER BY o.id LIMIT $2 + 1""")

TICKETS_BY_ID = f"""
SELECT k.id, k.station, k.order_id, {TICKET_JSON}::text AS ticket FROM {TICKET_FROM}
WHERE k.restaurant_id = $1 AND k.id = ANY($2::bigint[]) ORDER BY k.id"""

# Ticket steps move the ticket and its items together; each answers 1 if the ticket moved.
START = """
WITH k AS (
    UPDATE tickets SET status = 'started', started_at = now(), version = version + 1
    WHERE restaurant_id = $1 AND id = $2 AND status = 'open' AND ($3::int IS NULL OR version = $3)
    RETURNING id
), items AS (
    UPDATE order_items oi SET status = 'cooking', cooking_at = now(), version = oi.version + 1
    FROM k WHERE oi.restaurant_id = $1 AND oi.ticket_id = $2 AND oi.ticket_id = k.id  -- $2: the plan
      AND oi.status = 'fired'                                    -- stays on this ticket's lines
    RETURNING oi.id
)
SELECT count(*) FROM k"""

BUMP = """
WITH k AS (
    UPDATE tickets SET status = 'bumped', bumped_at = now(), version = version + 1
    WHERE restaurant_id = $1 AND id = $2 AND status IN ('open', 'started')
      AND ($3::int IS NULL OR version = $3)
    RETURNING id
), items AS (
    UPDATE order_items oi SET status = 'ready', ready_at = now(), version = oi.version + 1
    FROM k WHERE oi.restaurant_id = $1 AND oi.ticket_id = $2 AND oi.ticket_id = k.id
      AND oi.status IN ('fired', 'cooking')
    RETURNING oi.id
)
SELECT count(*) FROM k"""

RECALL = f"""
WITH k AS (
    UPDATE tickets SET status = 'started', recalled_at = now(), bumped_at = NULL,
                       version = version + 1
    WHERE restaurant_id = $1 AND id = $2 AND status = 'bumped' AND ($3::int IS NULL OR version = $3)
      AND bumped_at > now() - {RECALL_WINDOW}
    RETURNING id
), items AS (
    UPDATE order_items oi SET status = 'cooking', ready_at = NULL, version = oi.version + 1
    FROM k WHERE oi.restaurant_id = $1 AND oi.ticket_id = $2 AND oi.ticket_id = k.id
      AND oi.status = 'ready'
    RETURNING oi.id
)
SELECT count(*) FROM k"""

STEPS = {"start": (START, "ticket.started", "open"),
         "bump": (BUMP, "ticket.bumped", "open or started"),
         "recall": (RECALL, "ticket.recalled", "bumped")}

TICKET_STATE = f"""
SELECT status, version, order_id, bumped_at <= now() - {RECALL_WINDOW} AS past_recall,
       extract(epoch FROM {RECALL_WINDOW})::int / 60 AS recall_minutes
FROM tickets WHERE restaurant_id = $1 AND id = $2"""

OPEN_TICKETS_OF_ORDER = """
SELECT count(*) FROM tickets WHERE restaurant_id = $1 AND order_id = $2 AND status <> 'bumped'"""

# A ticket whose every item was voided has nothing left to cook: it is done.
CLOSE_IF_EMPTY = """
UPDATE tickets k SET status = 'bumped', bumped_at = now(), version = k.version + 1
WHERE k.restaurant_id = $1 AND k.id = $2 AND k.status <> 'bumped'
  AND NOT EXISTS (SELECT 1 FROM order_items oi
                  WHERE oi.restaurant_id = $1 AND oi.ticket_id = $2 AND oi.status <> 'void')
RETURNING k.id"""

ITEM_READY = """
UPDATE order_items SET status = 'ready', ready_at = now(), version = version + 1
WHERE restaurant_id = $1 AND ticket_id = $2 AND id = $3 AND status IN ('fired', 'cooking')
RETURNING id"""

ITEM_ON_TICKET = "SELECT status FROM order_items WHERE restaurant_id = $1 AND ticket_id = $2 AND id = $3"


async def _tickets(conn: asyncpg.Connection, rid: int, ids: list[int]) -> list[asyncpg.Record]:
    return await conn.fetch(TICKETS_BY_ID, rid, ids) if ids else []


async def close_if_empty(tx: events.Write, rid: int, ticket_id: int) -> None:
    """After a void: a ticket with nothing left to cook leaves the screens (`ticket.bumped`)."""
    if await tx.conn.fetchval(CLOSE_IF_EMPTY, rid, ticket_id) is None:
        return
    ticket = (await _tickets(tx.conn, rid, [ticket_id]))[0]
    tx.emit(rid, f"kitchen:{ticket['station']}", "ticket.bumped",
            {"ticket": msgspec.Raw(ticket["ticket"].encode())})


class RecallWindowPassed(Conflict):
    code = "recall_window_passed"


async def recently_bumped(pool: asyncpg.Pool, rid: int, limit: int,
                          before: tuple[datetime, int] | None, station: str | None) -> tuple[Page, int]:
    """Tickets bumped within the recall window, newest first: any of them can be recalled."""
    before_at, before_id = before if before else (FAR_FUTURE, 2**63 - 1)
    return await fetch_page(pool, LIST_RECENT, rid, limit, before_at, before_id, station)


async def list_open(pool: asyncpg.Pool, rid: int, limit: int, after: int,
                    station: str | None) -> tuple[Page, int]:
    return await fetch_page(pool, LIST_OPEN, rid, limit, after, station)


async def at_the_pass(pool: asyncpg.Pool, rid: int, limit: int, after: int) -> tuple[Page, int]:
    return await fetch_page(pool, LIST_PASS, rid, limit, after)


async def _refused(conn: asyncpg.Connection, rid: int, ticket_id: int, expected: int | None,
                   allowed_from: str) -> None:
    row = await conn.fetchrow(TICKET_STATE, rid, ticket_id)
    if row is None:
        raise NotFound("no such ticket")
    if expected is not None and row["version"] != expected:
        raise Stale(f"the ticket changed (now version {row['version']}); reload and retry",
                    [{"version": row["version"]}])
    if allowed_from == "bumped" and row["past_recall"]:
        raise RecallWindowPassed(
            f"this ticket was bumped more than {row['recall_minutes']} minutes ago (the restaurant's "
            "recall window); it can no longer be recalled",
            [{"recall_minutes": row["recall_minutes"]}])
    raise Conflict(f"this needs a ticket that is {allowed_from}; it is {row['status']}",
                   [{"status": row["status"]}])


async def step(pool: asyncpg.Pool, rid: int, ticket_id: int, action: str,
               expected: int | None) -> tuple[msgspec.Raw, int]:
    """Start, bump or recall a ticket; bumping an order's last ticket says the order is ready."""
    sql, name, allowed_from = STEPS[action]
    async with events.write(pool) as tx:
        if not await tx.conn.fetchval(sql, rid, ticket_id, expected):
            await _refused(tx.conn, rid, ticket_id, expected, allowed_from)
        ticket = (await _tickets(tx.conn, rid, [ticket_id]))[0]
        raw = msgspec.Raw(ticket["ticket"].encode())
        tx.emit(rid, f"kitchen:{ticket['station']}", name, {"ticket": raw})
        if action == "bump" and not await tx.conn.fetchval(OPEN_TICKETS_OF_ORDER, rid,
                                                           ticket["order_id"]):
            tx.emit(rid, "orders", "order.ready", {"order_id": ticket["order_id"]})
    return raw, tx.last_seq[rid]


async def item_ready(pool: asyncpg.Pool, rid: int, ticket_id: int, item_id: int) -> tuple[msgspec.Raw, int]:
    async with events.write(pool) as tx:
        if await tx.conn.fetchval(ITEM_READY, rid, ticket_id, item_id) is None:
            status = await tx.conn.fetchval(ITEM_ON_TICKET, rid, ticket_id, item_id)
            if status is None:
                raise NotFound("no such item on this ticket")
            raise Conflict(f"only a fired or cooking item can be ready; this one is {status}",
                           [{"status": status}])
        ticket = (await _tickets(tx.conn, rid, [ticket_id]))[0]
        raw = msgspec.Raw(ticket["ticket"].encode())
        tx.emit(rid, f"kitchen:{ticket['station']}", "item.ready",
                {"ticket_id": ticket_id, "item_id": item_id, "ticket": raw})
    return raw, tx.last_seq[rid]
