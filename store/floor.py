"""The floor: areas, tables, and each table's status with a turn per party (seat → free)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import msgspec
from msgspec import UNSET, UnsetType

from store import events, orders
from store.errors import Conflict, Invalid, NotFound, Stale
from store.pages import Page, fetch_page, paged
from store.patches import sent

TableStatus = Literal["free", "seated", "ordering", "waiting_food", "eating", "paying", "dirty",
                      "blocked"]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=20)]
Seats = Annotated[int, msgspec.Meta(ge=1, le=50)]
Coordinate = Annotated[int, msgspec.Meta(ge=0, le=10_000)]
Shape = Literal["square", "round", "rect"]
AreaName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
PartySize = Annotated[int, msgspec.Meta(ge=1, le=100)]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]  # a bigint key: larger is a 422, not a 500
Sort = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]  # an integer column


class AreaIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: AreaName
    sort: Sort = 0


class Area(msgspec.Struct, frozen=True):
    id: int
    name: str
    sort: int
    version: int


class TableIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    label: Label
    seats: Seats
    area_id: Id
    x: Coordinate = 0
    y: Coordinate = 0
    shape: Shape = "square"


class TablePatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    label: Label | UnsetType = UNSET
    seats: Seats | UnsetType = UNSET
    area_id: Id | UnsetType = UNSET
    x: Coordinate | UnsetType = UNSET
    y: Coordinate | UnsetType = UNSET
    shape: Shape | UnsetType = UNSET


class StatusIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    status: TableStatus
    party_size: PartySize | None = None  # covers, when seating


class MoveIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    to_table_id: Id  # a free table that seats the party


class Moved(msgspec.Struct, frozen=True):
    table: Table  # where the party sits now
    left: Table  # the table it left, now dirty
    order_ids: list[int]  # its open orders, now on `table`


class Table(msgspec.Struct, frozen=True):
    id: int
    label: str
    seats: int
    area_id: int
    x: int
    y: int
    shape: str
    status: TableStatus
    status_changed_at: datetime
    turn_id: int | None
    seated_at: datetime | None  # when the current party sat down
    party_size: int | None
    version: int
    merged_into: int | None = None  # the main table whose party this one has joined
    merged_tables: list[int] = []  # tables joined to this one's party (store/table_merges.py)


AREA_JSON = "json_build_object('id', a.id, 'name', a.name, 'sort', a.sort, 'version', a.version)"

TABLE_JSON = """json_build_object(
    'id', t.id, 'label', t.label, 'seats', t.seats, 'area_id', t.area_id, 'x', t.x, 'y', t.y,
    'shape', t.shape, 'status', t.status, 'status_changed_at', t.status_changed_at,
    'turn_id', t.turn_id, 'seated_at', tt.seated_at, 'party_size', tt.party_size,
    'version', t.version, 'merged_into', t.merged_into,
    'merged_tables', array(SELECT m.id FROM dining_tables m
                           WHERE m.restaurant_id = t.restaurant_id AND m.merged_into = t.id
                           ORDER BY m.id))"""

TABLE_FROM = """dining_tables t
LEFT JOIN table_turns tt ON tt.restaurant_id = t.restaurant_id AND tt.id = t.turn_id"""

LIST_AREAS = paged(f"""
SELECT {AREA_JSON} AS j, json_build_array(a.id) AS cursor, row_number() OVER (ORDER BY a.id) AS n
FROM areas a WHERE a.restaurant_id = $1 AND a.id > $3
ORDER BY a.id LIMIT $2 + 1""")

INSERT_AREA = f"""
INSERT INTO areas AS a (restaurant_id, name, sort) VALUES ($1, $2, $3)
ON CONFLICT (restaurant_id, name) DO NOTHING
RETURNING {AREA_JSON}::text"""

LIST_TABLES = paged(f"""
SELECT {TABLE_JSON} AS j, json_build_array(t.id) AS cursor, row_number() OVER (ORDER BY t.id) AS n
FROM {TABLE_FROM}
WHERE t.restaurant_id = $1 AND t.id > $3
  AND ($4::bigint IS NULL OR t.area_id = $4) AND ($5::text IS NULL OR t.status = $5)
ORDER BY t.id LIMIT $2 + 1""")

GET_TABLE = f"SELECT {TABLE_JSON}::text FROM {TABLE_FROM} WHERE t.restaurant_id = $1 AND t.id = $2"

AREA_EXISTS = "SELECT EXISTS (SELECT 1 FROM areas WHERE restaurant_id = $1 AND id = $2)"

INSERT_TABLE = """
INSERT INTO dining_tables (restaurant_id, label, seats, area_id, x, y, shape)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (restaurant_id, label) DO NOTHING
RETURNING id"""

PATCH_TABLE = """
UPDATE dining_tables SET label = coalesce($3, label), seats = coalesce($4, seats),
    area_id = coalesce($5, area_id), x = coalesce($6, x), y = coalesce($7, y),
    shape = coalesce($8, shape), version = version + 1
WHERE restaurant_id = $1 AND id = $2 AND ($9::int IS NULL OR version = $9)
RETURNING id"""

# One statement moves a table one legal step and keeps its turn's timestamps:
# seating opens a turn, each later step stamps it once, freeing closes it. Tables merged into
# it follow its status (they have no turn of their own); when its party leaves (dirty or free)
# the merge ends. A table merged into another one does not move on its own.
SET_STATUS = """
WITH legal AS (
    SELECT t.id, t.turn_id FROM dining_tables t
    JOIN table_transitions tr ON tr.from_status = t.status AND tr.to_status = $3
    WHERE t.restaurant_id = $1 AND t.id = $2 AND ($4::int IS NULL OR t.version = $4)
      AND t.merged_into IS NULL
    FOR NO KEY UPDATE OF t  -- orders' foreign keys still read the table meanwhile
), followers AS (
    UPDATE dining_tables m SET status = $3, status_changed_at = now(), version = m.version + 1,
        merged_into = CASE WHEN $3 IN ('dirty', 'free') THEN NULL ELSE m.merged_into END
    FROM legal WHERE m.restaurant_id = $1 AND m.merged_into = legal.id
    RETURNING m.id
), new_turn AS (
    INSERT INTO table_turns (restaurant_id, table_id, party_size)
    SELECT $1, id, $5 FROM legal WHERE $3 = 'seated'
    RETURNING id
), stamped AS (
    UPDATE table_turns tt SET
        ordering_at = CASE WHEN $3 = 'ordering' THEN coalesce(tt.ordering_at, now()) ELSE tt.ordering_at END,
        waiting_food_at = CASE WHEN $3 = 'waiting_food' THEN coalesce(tt.waiting_food_at, now())
                               ELSE tt.waiting_food_at END,
        eating_at = CASE WHEN $3 = 'eating' THEN coalesce(tt.eating_at, now()) ELSE tt.eating_at END,
        paying_at = CASE WHEN $3 = 'paying' THEN coalesce(tt.paying_at, now()) ELSE tt.paying_at END,
        dirty_at = CASE WHEN $3 = 'dirty' THEN coalesce(tt.dirty_at, now()) ELSE tt.dirty_at END,
        freed_at = CASE WHEN $3 = 'free' THEN now() ELSE tt.freed_at END
    FROM legal WHERE tt.restaurant_id = $1 AND tt.id = legal.turn_id
)
UPDATE dining_tables t SET status = $3, status_changed_at = now(), version = t.version + 1,
    turn_id = CASE WHEN $3 = 'seated' THEN (SELECT id FROM new_turn)
                   WHEN $3 IN ('free', 'blocked') THEN NULL ELSE t.turn_id END
FROM legal WHERE t.restaurant_id = $1 AND t.id = legal.id
RETURNING t.id, array(SELECT id FROM followers ORDER BY id) AS followers"""

SEATED = ("seated", "ordering", "waiting_food", "eating", "paying")

# One statement moves a party to a free table that seats it: its turn at the old table ends,
# a turn of the same stay (same party, same steps so far) starts at the new one, its open
# orders follow it, and the old table is left dirty. Nothing goes to the kitchen.
MOVE_PARTY = f"""
WITH src AS (
    SELECT t.id, t.status, t.turn_id FROM dining_tables t
    WHERE t.restaurant_id = $1 AND t.id = $2 AND t.status = ANY('{{{",".join(SEATED)}}}')
      AND ($4::int IS NULL OR t.version = $4) AND t.merged_into IS NULL
      AND NOT EXISTS (SELECT 1 FROM dining_tables m WHERE m.restaurant_id = $1 AND m.merged_into = t.id)
    FOR NO KEY UPDATE
), dst AS (
    SELECT t.id FROM dining_tables t
    JOIN table_turns tt ON tt.restaurant_id = $1 AND tt.id = (SELECT turn_id FROM src)
    WHERE t.restaurant_id = $1 AND t.id = $3 AND t.id <> $2 AND t.status = 'free'
      AND t.seats >= coalesce(tt.party_size, 1)
    FOR NO KEY UPDATE OF t
), ended AS (
    UPDATE table_turns tt SET freed_at = now() FROM src, dst
    WHERE tt.restaurant_id = $1 AND tt.id = src.turn_id
    RETURNING tt.*
), turn AS (
    INSERT INTO table_turns (restaurant_id, table_id, party_size, stay_id, ordering_at,
                             waiting_food_at, eating_at, paying_at)
    SELECT $1, dst.id, e.party_size, coalesce(e.stay_id, e.id), e.ordering_at,
           e.waiting_food_at, e.eating_at, e.paying_at
    FROM ended e, dst
    RETURNING id
), followed AS (
    UPDATE orders o SET table_id = dst.id, version = o.version + 1 FROM src, dst, turn
    WHERE o.restaurant_id = $1 AND o.table_id = src.id AND o.status = 'open'
    RETURNING o.id
), left_dirty AS (
    UPDATE dining_tables t SET status = 'dirty', turn_id = NULL, status_changed_at = now(),
        version = t.version + 1
    FROM turn WHERE t.restaurant_id = $1 AND t.id = $2
), taken AS (
    UPDATE dining_tables t SET status = src.status, turn_id = turn.id,
        status_changed_at = now(), version = t.version + 1
    FROM src, turn WHERE t.restaurant_id = $1 AND t.id = $3
    RETURNING t.id
)
SELECT (SELECT count(*) FROM taken) AS moved,
       coalesce((SELECT array_agg(id ORDER BY id) FROM followed), '{{}}') AS order_ids"""

# The best free table for a party: the fewest seats that fit, then the lowest id.
PICK_FREE = """
SELECT id FROM dining_tables
WHERE restaurant_id = $1 AND status = 'free' AND seats >= $2
ORDER BY seats, id LIMIT 1
FOR NO KEY UPDATE SKIP LOCKED"""

TABLE_SEATS = "SELECT seats FROM dining_tables WHERE restaurant_id = $1 AND id = $2"

HAS_MERGED = """
SELECT EXISTS (SELECT 1 FROM dining_tables WHERE restaurant_id = $1 AND merged_into = $2)"""

WHY_NOT = """
SELECT t.status, t.version, t.merged_into,
       array(SELECT to_status FROM table_transitions WHERE from_status = t.status ORDER BY 1) AS allowed
FROM dining_tables t WHERE t.restaurant_id = $1 AND t.id = $2"""


async def list_areas(pool: asyncpg.Pool, rid: int, limit: int, after: int) -> tuple[Page, int]:
    return await fetch_page(pool, LIST_AREAS, rid, limit, after)


async def create_area(pool: asyncpg.Pool, rid: int, body: AreaIn) -> tuple[msgspec.Raw, int]:
    async with events.write(pool) as tx:
        area = await tx.conn.fetchval(INSERT_AREA, rid, body.name, body.sort)
        if area is None:
            raise Conflict(f"there is already an area named {body.name!r}")
        raw = msgspec.Raw(area.encode())
        tx.emit(rid, "floor", "area.created", {"area": raw})
    return raw, tx.last_seq[rid]


async def list_tables(pool: asyncpg.Pool, rid: int, limit: int, after: int,
                      area_id: int | None, status: str | None) -> tuple[Page, int]:
    return await fetch_page(pool, LIST_TABLES, rid, limit, after, area_id, status)


async def table_json(conn: asyncpg.Connection, rid: int, table_id: int) -> msgspec.Raw:
    text = await conn.fetchval(GET_TABLE, rid, table_id)
    if text is None:
        raise NotFound("no such table")
    return msgspec.Raw(text.encode())


async def get_table(pool: asyncpg.Pool, rid: int, table_id: int) -> msgspec.Raw:
    async with pool.acquire() as conn:
        return await table_json(conn, rid, table_id)


async def _check_area(conn: asyncpg.Connection, rid: int, area_id: int) -> None:
    if not await conn.fetchval(AREA_EXISTS, rid, area_id):
        raise Invalid("no such area", [{"path": "$.area_id", "message": "no such area"}])


async def create_table(pool: asyncpg.Pool, rid: int, body: TableIn) -> tuple[msgspec.Raw, int]:
    async with events.write(pool) as tx:
        await _check_area(tx.conn, rid, body.area_id)
        table_id = await tx.conn.fetchval(INSERT_TABLE, rid, body.label, body.seats, body.area_id,
                                          body.x, body.y, body.shape)
        if table_id is None:
            raise Conflict(f"there is already a table labelled {body.label!r}")
        raw = await table_json(tx.conn, rid, table_id)
        tx.emit(rid, "floor", "table.created", {"table": raw})
    return raw, tx.last_seq[rid]



async def _stale_or_missing(conn: asyncpg.Connection, rid: int, table_id: int,
                            expected: int | None) -> None:
    row = await conn.fetchrow(WHY_NOT, rid, table_id)
    if row is None:
        raise NotFound("no such table")
    if expected is not None and row["version"] != expected:
        raise Stale(f"the table changed (now version {row['version']}); reload and retry",
                    [{"version": row["version"]}])


async def patch_table(pool: asyncpg.Pool, rid: int, table_id: int, body: TablePatch,
                      expected: int | None) -> tuple[msgspec.Raw, int]:
    async with events.write(pool) as tx:
        if body.area_id is not UNSET:
            await _check_area(tx.conn, rid, body.area_id)
        try:
            updated = await tx.conn.fetchval(
                PATCH_TABLE, rid, table_id, sent(body.label), sent(body.seats),
                sent(body.area_id), sent(body.x), sent(body.y), sent(body.shape), expected)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"there is already a table labelled {body.label!r}") from None
        if updated is None:
            await _stale_or_missing(tx.conn, rid, table_id, expected)
        raw = await table_json(tx.conn, rid, table_id)
        tx.emit(rid, "floor", "table.updated", {"table": raw})
    return raw, tx.last_seq[rid]


async def move_table(tx: events.Write, rid: int, table_id: int, status: str,
                     party_size: int | None = None, expected: int | None = None) -> msgspec.Raw:
    """One legal step of a table's status inside a write; emits `table.status` (for the tables
    merged into it too: they follow)."""
    moved = await tx.conn.fetchrow(SET_STATUS, rid, table_id, status, expected, party_size)
    if moved is None:
        await _stale_or_missing(tx.conn, rid, table_id, expected)
        row = await tx.conn.fetchrow(WHY_NOT, rid, table_id)
        if row["merged_into"] is not None:
            raise Conflict("this table is merged into another one: change that table, or unmerge",
                           [{"merged_into": row["merged_into"]}])
        raise Conflict(f"a table cannot go from {row['status']} to {status}",
                       [{"status": row["status"], "allowed": list(row["allowed"])}])
    raw = await table_json(tx.conn, rid, table_id)
    tx.emit(rid, "floor", "table.status", {"table": raw})
    for follower in moved["followers"]:
        tx.emit(rid, "floor", "table.status", {"table": await table_json(tx.conn, rid, follower)})
    return raw


async def set_status(pool: asyncpg.Pool, rid: int, table_id: int, body: StatusIn,
                     expected: int | None) -> tuple[msgspec.Raw, int]:
    async with events.write(pool) as tx:
        raw = await move_table(tx, rid, table_id, body.status, body.party_size, expected)
    return raw, tx.last_seq[rid]


async def move_party(pool: asyncpg.Pool, rid: int, table_id: int, body: MoveIn,
                     expected: int | None) -> tuple[Moved, int]:
    """The party at `table_id` moves to a free table with its open orders (409 when either
    table is not in a state for it, 412 on a stale version)."""
    async with events.write(pool) as tx:
        await orders.refuse_second_order(tx.conn, rid, body.to_table_id, "$.to_table_id")
        try:
            row = await tx.conn.fetchrow(MOVE_PARTY, rid, table_id, body.to_table_id, expected)
        except asyncpg.UniqueViolationError:  # an order opened at the free table meanwhile
            raise Conflict("that table has just got an open order", [{"path": "$.to_table_id"}],
                           code="table_has_open_order") from None
        if not row["moved"]:
            await _stale_or_missing(tx.conn, rid, table_id, expected)
            await _why_not_moved(tx.conn, rid, table_id, body.to_table_id)
        table = await table_json(tx.conn, rid, body.to_table_id)
        left = await table_json(tx.conn, rid, table_id)
        tx.emit(rid, "floor", "table.status", {"table": left})
        tx.emit(rid, "floor", "table.status", {"table": table})
        for order_id in row["order_ids"]:
            tx.emit(rid, "orders", "order.moved", {
                "order": await orders.order_json(tx.conn, rid, order_id),
                "from_table_id": table_id})
    moved = Moved(msgspec.json.decode(table, type=Table), msgspec.json.decode(left, type=Table),
                  list(row["order_ids"]))
    return moved, tx.last_seq[rid]


async def _why_not_moved(conn: asyncpg.Connection, rid: int, table_id: int, to_id: int) -> None:
    source = await conn.fetchrow(WHY_NOT, rid, table_id)
    if source["merged_into"] is not None or await conn.fetchval(HAS_MERGED, rid, table_id):
        raise Conflict("a merged party cannot move: unmerge its tables first")
    if source["status"] not in SEATED:
        raise Conflict(f"no party sits at that table (it is {source['status']})",
                       [{"status": source["status"]}])
    target = await conn.fetchrow("SELECT status, seats FROM dining_tables "
                                 "WHERE restaurant_id = $1 AND id = $2", rid, to_id)
    if target is None or to_id == table_id:
        raise Invalid("no such other table", [{"path": "$.to_table_id",
                                               "message": "not another table of this restaurant"}])
    if target["status"] != "free":
        raise Conflict(f"the table to move to is {target['status']}, not free",
                       [{"path": "$.to_table_id", "status": target["status"]}])
    raise Conflict(f"the table to move to seats {target['seats']}, fewer than the party",
                   [{"path": "$.to_table_id", "seats": target["seats"]}])


async def pick_free_table(conn: asyncpg.Connection, rid: int, size: int) -> int:
    table_id = await conn.fetchval(PICK_FREE, rid, size)
    if table_id is None:
        raise Conflict(f"no free table seats {size} right now")
    return table_id


async def check_fits(conn: asyncpg.Connection, rid: int, table_id: int | None, size: int) -> None:
    """A table named in a body must be this restaurant's and seat the party (422 otherwise)."""
    if table_id is None:
        return
    seats = await conn.fetchval(TABLE_SEATS, rid, table_id)
    if seats is None:
        raise Invalid("no such table", [{"path": "$.table_id", "message": "not in this restaurant"}])
    if seats < size:
        raise Invalid(f"that table seats {seats}, the party is {size}",
                      [{"path": "$.table_id", "message": f"seats {seats}"}])
