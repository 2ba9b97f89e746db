"""The waitlist: parties waiting for a table, notified, seated (onto a table, in one transaction), or gone."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import msgspec
from msgspec import UNSET, UnsetType

from store import events, floor
from store.errors import Conflict, Invalid, NotFound, Stale
from store.pages import Page, fetch_page, paged
from store.patches import sent

PartyStatus = Literal["waiting", "notified", "seated", "left", "no_show"]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Size = Annotated[int, msgspec.Meta(ge=1, le=100)]
Phone = Annotated[str, msgspec.Meta(min_length=3, max_length=40, pattern=r"^[0-9+() .-]+$")]
Minutes = Annotated[int, msgspec.Meta(ge=0, le=600)]
Note = Annotated[str, msgspec.Meta(max_length=500)]
DEFAULT_TURN_MINUTES = 60


class PartyIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Name
    size: Size
    phone: Phone | None = None
    note: Note = ""
    quoted_minutes: Minutes | None = None


class PartyPatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Name | UnsetType = UNSET
    size: Size | UnsetType = UNSET
    phone: Phone | UnsetType = UNSET
    note: Note | UnsetType = UNSET
    quoted_minutes: Minutes | UnsetType = UNSET


class SeatIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    table_id: floor.Id | None = None  # None: the smallest free table that fits


class LeaveIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    no_show: bool = False


class Party(msgspec.Struct, frozen=True):
    id: int
    name: str
    size: int
    phone: str | None
    note: str
    quoted_minutes: int | None
    status: PartyStatus
    table_id: int | None
    joined_at: datetime
    notified_at: datetime | None
    seated_at: datetime | None
    left_at: datetime | None
    waited_minutes: int  # joined until seated/left, or until now while waiting
    version: int


class Estimate(msgspec.Struct, frozen=True):
    size: int
    minutes: int
    parties_ahead: int
    fitting_tables: int
    free_tables: int
    turn_minutes: int
    basis: Literal["recent_turns", "default"]


PARTY_JSON = """json_build_object(
    'id', w.id, 'name', w.name, 'size', w.size, 'phone', w.phone, 'note', w.note,
    'quoted_minutes', w.quoted_minutes, 'status', w.status, 'table_id', w.table_id,
    'joined_at', w.joined_at, 'notified_at', w.notified_at, 'seated_at', w.seated_at,
    'left_at', w.left_at,
    'waited_minutes',
        floor(extract(epoch FROM coalesce(w.seated_at, w.left_at, now()) - w.joined_at) / 60)::int,
    'version', w.version)"""

LIST = paged(f"""
SELECT {PARTY_JSON} AS j, json_build_array(w.id) AS cursor, row_number() OVER (ORDER BY w.id) AS n
FROM waitlist_parties w
WHERE w.restaurant_id = $1 AND w.id > $3
  AND CASE $4::text WHEN 'open' THEN w.status IN ('waiting', 'notified')
                    WHEN 'all' THEN true ELSE w.status = $4 END
ORDER BY w.id LIMIT $2 + 1""")

GET = f"SELECT {PARTY_JSON}::text FROM waitlist_parties w WHERE w.restaurant_id = $1 AND w.id = $2"

INSERT = """
INSERT INTO waitlist_parties (restaurant_id, name, size, phone, note, quoted_minutes)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"""

PATCH = """
UPDATE waitlist_parties SET name = coalesce($3, name), size = coalesce($4, size),
    phone = coalesce($5, phone), note = coalesce($6, note),
    quoted_minutes = coalesce($7, quoted_minutes), version = version + 1
WHERE restaurant_id = $1 AND id = $2 AND ($8::int IS NULL OR version = $8)
RETURNING id"""

# A legal step of a party's status, stamping when it happened.
MOVE = """
UPDATE waitlist_parties w SET status = $3, version = w.version + 1, table_id = coalesce($5, w.table_id),
    notified_at = CASE WHEN $3 = 'notified' THEN now() ELSE w.notified_at END,
    seated_at = CASE WHEN $3 = 'seated' THEN now() ELSE w.seated_at END,
    left_at = CASE WHEN $3 IN ('left', 'no_show') THEN now() ELSE w.left_at END
FROM waitlist_transitions tr
WHERE w.restaurant_id = $1 AND w.id = $2 AND tr.from_status = w.status AND tr.to_status = $3
  AND ($4::int IS NULL OR w.version = $4)
RETURNING w.size"""

STATE = """
SELECT w.status, w.version, w.size,
       array(SELECT to_status FROM waitlist_transitions WHERE from_status = w.status ORDER BY 1) AS allowed
FROM waitlist_parties w WHERE w.restaurant_id = $1 AND w.id = $2"""

# What an estimate needs, in one read: this restaurant's recent turn length for
# tables that fit, when each fitting table's current party sat down, and how
# many parties that fit the same tables are already waiting.
ESTIMATE = """
WITH fitting AS (
    SELECT t.id, t.status, tt.seated_at FROM dining_tables t
    LEFT JOIN table_turns tt ON tt.restaurant_id = t.restaurant_id AND tt.id = t.turn_id
    WHERE t.restaurant_id = $1 AND t.seats >= $2 AND t.status <> 'blocked'
), recent AS (
    SELECT avg(extract(epoch FROM tt.freed_at - tt.seated_at) / 60) AS minutes, count(*) AS turns
    FROM table_turns tt JOIN dining_tables t ON t.restaurant_id = tt.restaurant_id AND t.id = tt.table_id
    WHERE tt.restaurant_id = $1 AND tt.freed_at IS NOT NULL AND t.seats >= $2
      AND tt.seated_at > now() - interval '14 days'
)
SELECT recent.minutes AS turn_minutes, recent.turns,
       (SELECT count(*) FROM waitlist_parties w WHERE w.restaurant_id = $1
          AND w.status IN ('waiting', 'notified') AND w.size <= $2 + 2 AND w.size >= $2 - 2) AS ahead,
       array(SELECT CASE WHEN f.status = 'free' THEN -1
                         ELSE extract(epoch FROM now() - coalesce(f.seated_at, now())) / 60 END
             FROM fitting f) AS elapsed
FROM recent"""



async def list_parties(pool: asyncpg.Pool, rid: int, limit: int, after: int,
                       status: str) -> tuple[Page, int]:
    return await fetch_page(pool, LIST, rid, limit, after, status)


async def party_json(conn: asyncpg.Connection, rid: int, party_id: int) -> msgspec.Raw:
    text = await conn.fetchval(GET, rid, party_id)
    if text is None:
        raise NotFound("no such party")
    return msgspec.Raw(text.encode())


async def get_party(pool: asyncpg.Pool, rid: int, party_id: int) -> msgspec.Raw:
    async with pool.acquire() as conn:
        return await party_json(conn, rid, party_id)


async def _emit(tx: events.Write, rid: int, party_id: int, name: str) -> msgspec.Raw:
    raw = await party_json(tx.conn, rid, party_id)
    tx.emit(rid, "floor", name, {"party": raw})
    return raw


async def add(pool: asyncpg.Pool, rid: int, body: PartyIn) -> tuple[msgspec.Raw, int]:
    async with events.write(pool) as tx:
        party_id = await tx.conn.fetchval(INSERT, rid, body.name, body.size, body.phone, body.note,
                                          body.quoted_minutes)
        raw = await _emit(tx, rid, party_id, "waitlist.added")
    return raw, tx.last_seq[rid]


async def _refuse(conn: asyncpg.Connection, rid: int, party_id: int, expected: int | None,
                  status: str | None) -> None:
    row = await conn.fetchrow(STATE, rid, party_id)
    if row is None:
        raise NotFound("no such party")
    if expected is not None and row["version"] != expected:
        raise Stale(f"the party changed (now version {row['version']}); reload and retry",
                    [{"version": row["version"]}])
    raise Conflict(f"a {row['status']} party cannot become {status}",
                   [{"status": row["status"], "allowed": list(row["allowed"])}])


async def patch(pool: asyncpg.Pool, rid: int, party_id: int, body: PartyPatch,
                expected: int | None) -> tuple[msgspec.Raw, int]:
    async with events.write(pool) as tx:
        updated = await tx.conn.fetchval(PATCH, rid, party_id, sent(body.name), sent(body.size),
                                         sent(body.phone), sent(body.note),
                                         sent(body.quoted_minutes), expected)
        if updated is None:
            await _refuse(tx.conn, rid, party_id, expected, None)
        raw = await _emit(tx, rid, party_id, "waitlist.updated")
    return raw, tx.last_seq[rid]


async def move(pool: asyncpg.Pool, rid: int, party_id: int, status: str,
               expected: int | None) -> tuple[msgspec.Raw, int]:
    """Notify, or mark a party as left / no-show."""
    async with events.write(pool) as tx:
        if await tx.conn.fetchval(MOVE, rid, party_id, status, expected, None) is None:
            await _refuse(tx.conn, rid, party_id, expected, status)
        raw = await _emit(tx, rid, party_id, "waitlist.updated")
    return raw, tx.last_seq[rid]


async def seat(pool: asyncpg.Pool, rid: int, party_id: int, table_id: int | None,
               expected: int | None) -> tuple[msgspec.Raw, int]:
    """Seat a party: the party and its table change together, or neither does."""
    async with events.write(pool) as tx:
        state = await tx.conn.fetchrow(STATE, rid, party_id)
        if state is None:
            raise NotFound("no such party")
        if table_id is None:
            table_id = await floor.pick_free_table(tx.conn, rid, state["size"])
        else:
            await floor.check_fits(tx.conn, rid, table_id, state["size"])
        if await tx.conn.fetchval(MOVE, rid, party_id, "seated", expected, table_id) is None:
            await _refuse(tx.conn, rid, party_id, expected, "seated")
        await floor.move_table(tx, rid, table_id, "seated", state["size"])
        raw = await _emit(tx, rid, party_id, "waitlist.updated")
    return raw, tx.last_seq[rid]


async def estimate(pool: asyncpg.Pool, rid: int, size: int) -> Estimate:
    """Minutes until a party of `size` is likely seated, from recent turns and who sits now.

    Each fitting table frees after (turn length − time its party has sat); the
    k-th party in line gets the k-th table to free, cycling when there are
    more parties than tables.
    """
    row = await pool.fetchrow(ESTIMATE, rid, size)
    turn = float(row["turn_minutes"] or DEFAULT_TURN_MINUTES)
    elapsed = [float(e) for e in row["elapsed"]]  # minutes seated; -1 for a free table
    free = sum(1 for e in elapsed if e < 0)
    position = row["ahead"]  # 0-based place of the new party in line
    if not elapsed:
        raise Invalid(f"no table seats a party of {size}",
                      [{"path": "query.size", "message": "larger than every table"}])
    frees_in = sorted(0.0 if e < 0 else max(turn - e, 5.0) for e in elapsed)
    rounds, slot = divmod(position, len(frees_in))
    minutes = frees_in[slot] + rounds * turn
    return Estimate(size=size, minutes=round(minutes), parties_ahead=position,
                    fitting_tables=len(elapsed), free_tables=free, turn_minutes=round(turn),
                    basis="recent_turns" if row["turns"] else "default")
