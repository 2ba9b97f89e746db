"""The menu: categories, items with a station and price in minor units, modifiers, 86'ing."""
from __future__ import annotations

from typing import Annotated

import asyncpg
import msgspec
from msgspec import UNSET, UnsetType

from store import events
from store.errors import Conflict, Invalid, NotFound, Stale
from store.patches import sent

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Minor = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
Delta = Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)]
Station = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,30}$")]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]  # a bigint key: larger is a 422, not a 500
Sort = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]  # an integer column
PrepSeconds = Annotated[int, msgspec.Meta(ge=0, le=14_400)]  # the cook's start to the pass, ≤ 4 h


class CategoryIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    sort: Sort = 0


class ModifierIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    price_delta_minor: Delta = 0


class ItemIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    category_id: Id
    name: Name
    price_minor: Minor
    station: Station
    description: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    available: bool = True
    sort: Sort = 0
    modifiers: Annotated[list[ModifierIn], msgspec.Meta(max_length=50)] = []
    prep_seconds: PrepSeconds = 0


class ItemPatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    category_id: Id | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    price_minor: Minor | UnsetType = UNSET
    station: Station | UnsetType = UNSET
    description: Annotated[str, msgspec.Meta(max_length=1000)] | UnsetType = UNSET
    sort: Sort | UnsetType = UNSET
    prep_seconds: PrepSeconds | UnsetType = UNSET


class AvailabilityIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    available: bool


class Modifier(msgspec.Struct, frozen=True):
    id: int
    name: str
    price_delta_minor: int


class Item(msgspec.Struct, frozen=True):
    id: int
    category_id: int
    name: str
    description: str
    price_minor: int
    station: str
    available: bool
    sort: int
    version: int
    modifiers: list[Modifier]
    prep_seconds: int


class Category(msgspec.Struct, frozen=True):
    id: int
    name: str
    sort: int
    version: int
    items: list[Item]


class Menu(msgspec.Struct, frozen=True):
    currency: str
    categories: list[Category]


MODIFIERS_JSON = """coalesce((
    SELECT json_agg(json_build_object('id', m.id, 'name', m.name,
                                      'price_delta_minor', m.price_delta_minor) ORDER BY m.sort, m.id)
    FROM menu_modifiers m WHERE m.restaurant_id = i.restaurant_id AND m.item_id = i.id), '[]')"""

ITEM_JSON = f"""json_build_object(
    'id', i.id, 'category_id', i.category_id, 'name', i.name, 'description', i.description,
    'price_minor', i.price_minor, 'station', i.station, 'available', i.available, 'sort', i.sort,
    'version', i.version, 'modifiers', {MODIFIERS_JSON}, 'prep_seconds', i.prep_seconds)"""

# The whole tree in one statement, with the seq it reflects.
MENU = f"""
SELECT r.seq, json_build_object('currency', r.currency, 'categories', coalesce((
    SELECT json_agg(json_build_object(
        'id', c.id, 'name', c.name, 'sort', c.sort, 'version', c.version,
        'items', coalesce((SELECT json_agg({ITEM_JSON} ORDER BY i.sort, i.id)
                           FROM menu_items i
                           WHERE i.restaurant_id = c.restaurant_id AND i.category_id = c.id), '[]'))
        ORDER BY c.sort, c.id)
    FROM menu_categories c WHERE c.restaurant_id = r.id), '[]'))::text AS menu
FROM restaurants r WHERE r.id = $1"""

GET_ITEM = f"SELECT {ITEM_JSON}::text FROM menu_items i WHERE i.restaurant_id = $1 AND i.id = $2"

INSERT_CATEGORY = """
INSERT INTO menu_categories AS c (restaurant_id, name, sort) VALUES ($1, $2, $3)
ON CONFLICT (restaurant_id, name) DO NOTHING
RETURNING json_build_object('id', c.id, 'name', c.name, 'sort', c.sort, 'version', c.version,
                            'items', '[]'::json)::text"""

CATEGORY_EXISTS = "SELECT EXISTS (SELECT 1 FROM menu_categories WHERE restaurant_id = $1 AND id = $2)"

INSERT_ITEM = """
WITH item AS (
    INSERT INTO menu_items (restaurant_id, category_id, name, description, price_minor, station,
                            available, sort, prep_seconds)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $11)
    ON CONFLICT (restaurant_id, name) DO NOTHING
    RETURNING id
), modifiers AS (
    INSERT INTO menu_modifiers (restaurant_id, item_id, name, price_delta_minor, sort)
    SELECT $1, item.id, m.name, m.delta, m.n
    FROM item, unnest($9::text[], $10::int[]) WITH ORDINALITY AS m(name, delta, n)
)
SELECT id FROM item"""

PATCH_ITEM = """
UPDATE menu_items SET category_id = coalesce($3, category_id), name = coalesce($4, name),
    price_minor = coalesce($5, price_minor), station = coalesce($6, station),
    description = coalesce($7, description), sort = coalesce($8, sort),
    prep_seconds = coalesce($10, prep_seconds), version = version + 1
WHERE restaurant_id = $1 AND id = $2 AND ($9::int IS NULL OR version = $9)
RETURNING id"""

SET_AVAILABLE = """
UPDATE menu_items SET available = $3, version = version + 1
WHERE restaurant_id = $1 AND id = $2 AND ($4::int IS NULL OR version = $4)
RETURNING id"""

ITEM_VERSION = "SELECT version FROM menu_items WHERE restaurant_id = $1 AND id = $2"


async def get_menu(pool: asyncpg.Pool, rid: int) -> tuple[msgspec.Raw, int]:
    row = await pool.fetchrow(MENU, rid)
    return msgspec.Raw(row["menu"].encode()), row["seq"]


async def _item_json(conn: asyncpg.Connection, rid: int, item_id: int) -> msgspec.Raw:
    return msgspec.Raw((await conn.fetchval(GET_ITEM, rid, item_id)).encode())


async def _check_category(conn: asyncpg.Connection, rid: int, category_id: int) -> None:
    if not await conn.fetchval(CATEGORY_EXISTS, rid, category_id):
        raise Invalid("no such category", [{"path": "$.category_id", "message": "no such category"}])


async def _stale_or_missing(conn: asyncpg.Connection, rid: int, item_id: int,
                            expected: int | None) -> None:
    version = await conn.fetchval(ITEM_VERSION, rid, item_id)
    if version is None:
        raise NotFound("no such menu item")
    raise Stale(f"the item changed (now version {version}); reload and retry", [{"version": version}])


async def create_category(pool: asyncpg.Pool, rid: int, body: CategoryIn) -> tuple[msgspec.Raw, int]:
    async with events.write(pool) as tx:
        text = await tx.conn.fetchval(INSERT_CATEGORY, rid, body.name, body.sort)
        if text is None:
            raise Conflict(f"there is already a category named {body.name!r}")
        raw = msgspec.Raw(text.encode())
        tx.emit(rid, "menu", "menu.category_created", {"category": raw})
    return raw, tx.last_seq[rid]


async def create_item(pool: asyncpg.Pool, rid: int, body: ItemIn) -> tuple[msgspec.Raw, int]:
    async with events.write(pool) as tx:
        await _check_category(tx.conn, rid, body.category_id)
        try:
            item_id = await tx.conn.fetchval(
                INSERT_ITEM, rid, body.category_id, body.name, body.description, body.price_minor,
                body.station, body.available, body.sort, [m.name for m in body.modifiers],
                [m.price_delta_minor for m in body.modifiers], body.prep_seconds)
        except asyncpg.UniqueViolationError:
            raise Invalid("modifier names must be unique within an item") from None
        if item_id is None:
            raise Conflict(f"there is already an item named {body.name!r}")
        raw = await _item_json(tx.conn, rid, item_id)
        tx.emit(rid, "menu", "menu.item_created", {"item": raw})
    return raw, tx.last_seq[rid]


async def patch_item(pool: asyncpg.Pool, rid: int, item_id: int, body: ItemPatch,
                     expected: int | None) -> tuple[msgspec.Raw, int]:
    async with events.write(pool) as tx:
        if body.category_id is not UNSET:
            await _check_category(tx.conn, rid, body.category_id)
        try:
            updated = await tx.conn.fetchval(
                PATCH_ITEM, rid, item_id, sent(body.category_id), sent(body.name),
                sent(body.price_minor), sent(body.station), sent(body.description),
                sent(body.sort), expected, sent(body.prep_seconds))
        except asyncpg.UniqueViolationError:
            raise Conflict(f"there is already an item named {body.name!r}") from None
        if updated is None:
            await _stale_or_missing(tx.conn, rid, item_id, expected)
        raw = await _item_json(tx.conn, rid, item_id)
        tx.emit(rid, "menu", "menu.item_updated", {"item": raw})
    return raw, tx.last_seq[rid]


async def set_availability(pool: asyncpg.Pool, rid: int, item_id: int, available: bool,
                           expected: int | None) -> tuple[msgspec.Raw, int]:
    """86 an item (available=false) or bring it back."""
    async with events.write(pool) as tx:
        if await tx.conn.fetchval(SET_AVAILABLE, rid, item_id, available, expected) is None:
            await _stale_or_missing(tx.conn, rid, item_id, expected)
        raw = await _item_json(tx.conn, rid, item_id)
        tx.emit(rid, "menu", "menu.item_availability",
                {"item_id": item_id, "available": available, "item": raw})
    return raw, tx.last_seq[rid]
