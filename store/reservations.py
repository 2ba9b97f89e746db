"""Reservations: booked on a table that can never be double-booked (an exclusion constraint holds it)."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from msgspec import UNSET, UnsetType

from store import events, floor, pacing, restaurants
from store.credentials import Principal
from store.errors import Conflict, Invalid, NotFound, Stale
from store.pages import Page, fetch_page, paged

ReservationStatus = Literal["booked", "confirmed", "seated", "completed", "cancelled", "no_show"]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Size = Annotated[int, msgspec.Meta(ge=1, le=100)]
Start = Annotated[datetime, msgspec.Meta(tz=True)]  # ISO 8601 with an offset
Duration = Annotated[int, msgspec.Meta(ge=1, le=720)]
Phone = Annotated[str, msgspec.Meta(min_length=3, max_length=40, pattern=r"^[0-9+() .-]+$")]
Note = Annotated[str, msgspec.Meta(max_length=500)]
PAST_GRACE = timedelta(minutes=5)


class ReservationIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Name
    size: Size
    starts_at: Start
    duration_min: Duration | None = None  # default: the restaurant's duration for the party size
    table_id: floor.Id | None = None
    phone: Phone | None = None
    note: Note = ""
    pacing_override: pacing.PacingOverrideIn | None = None  # book past a pacing limit, and why


class ReservationPatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Name | UnsetType = UNSET
    size: Size | UnsetType = UNSET
    starts_at: Start | UnsetType = UNSET
    duration_min: Duration | UnsetType = UNSET
    table_id: floor.Id | None | UnsetType = UNSET  # null takes the reservation off its table
    phone: Phone | UnsetType = UNSET
    note: Note | UnsetType = UNSET
    pacing_override: pacing.PacingOverrideIn | None = None  # a new time or size past a pacing limit


class ReservationStatusIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    status: Literal["confirmed", "completed", "cancelled", "no_show"]


class Reservation(msgspec.Struct, frozen=True):
    id: int
    name: str
    phone: str | None
    note: str
    size: int
    starts_at: datetime
    ends_at: datetime
    duration_min: int
    table_id: int | None
    status: ReservationStatus
    created_at: datetime
    status_changed_at: datetime
    version: int
    pacing_override: pacing.PacingOverride | None = None  # booked past a pacing limit: why, who, when


class Slot(msgspec.Struct, frozen=True):
    starts_at: datetime
    table_ids: list[int]


class Availability(msgspec.Struct, frozen=True):
    date: date
    size: int
    duration_min: int
    items: list[Slot]
    next: None = None
    paced_out: list[pacing.PacedSlot] = []  # slots with a free table that pacing does not offer
    kitchen: pacing.KitchenState | None = None  # whether the stricter kitchen-behind limit is on


RESERVATION_JSON = """json_build_object(
    'id', x.id, 'name', x.name, 'phone', x.phone, 'note', x.note, 'size', x.size,
    'starts_at', x.starts_at, 'ends_at', x.ends_at,
    'duration_min', (extract(epoch FROM x.ends_at - x.starts_at) / 60)::int,
    'table_id', x.table_id, 'status', x.status, 'created_at', x.created_at,
    'status_changed_at', x.status_changed_at, 'version', x.version,
    'pacing_override', CASE WHEN x.override_at IS NOT NULL THEN json_build_object(
        'reason', x.override_reason, 'by', x.override_by_name, 'by_user_id', x.override_by,
        'at', x.override_at) END)"""

# By start time; `$3, $4` is the (starts_at, id) after which the page begins,
# `$5, $6` an optional window.
LIST = paged(f"""
SELECT {RESERVATION_JSON} AS j, json_build_array(x.starts_at, x.id) AS cursor,
       row_number() OVER (ORDER BY x.starts_at, x.id) AS n
FROM reservations x
WHERE x.restaurant_id = $1 AND (x.starts_at, x.id) > ($3::timestamptz, $4::bigint)
  AND x.starts_at >= $5 AND x.starts_at < $6 AND ($7::text IS NULL OR x.status = $7)
ORDER BY x.starts_at, x.id LIMIT $2 + 1""")

GET = f"SELECT {RESERVATION_JSON}::text FROM reservations x WHERE x.restaurant_id = $1 AND x.id = $2"

# Writes that book one table take turns on its row: overlapping inserts racing
# inside the exclusion constraint would otherwise wait on each other and deadlock.
LOCK_TABLE = "SELECT 1 FROM dining_tables WHERE restaurant_id = $1 AND id = $2 FOR NO KEY UPDATE"

INSERT = """
INSERT INTO reservations (restaurant_id, name, phone, note, size, starts_at, ends_at, table_id,
                          override_reason, override_by, override_by_name, override_at)
VALUES ($1, $2, $3, $4, $5, $6::timestamptz, $6::timestamptz + make_interval(mins => $7), $8,
        $9::text, CASE WHEN $9::text IS NOT NULL THEN $10::bigint END,
        CASE WHEN $9::text IS NOT NULL THEN $11 END,
        CASE WHEN $9::text IS NOT NULL THEN now() END)
RETURNING id"""

CURRENT = "SELECT * FROM reservations WHERE restaurant_id = $1 AND id = $2 FOR UPDATE"

UPDATE = """
UPDATE reservations SET name = $3, phone = $4, note = $5, size = $6, starts_at = $7::timestamptz,
    ends_at = $7::timestamptz + make_interval(mins => $8), table_id = $9, version = version + 1,
    -- a new override replaces the one before; without one, the last stays on record
    override_reason = coalesce($10::text, override_reason),
    override_by = CASE WHEN $10::text IS NULL THEN override_by ELSE $11::bigint END,
    override_by_name = CASE WHEN $10::text IS NULL THEN override_by_name ELSE $12 END,
    override_at = CASE WHEN $10::text IS NULL THEN override_at ELSE now() END
WHERE restaurant_id = $1 AND id = $2"""

MOVE = """
UPDATE reservations x SET status = $3, status_changed_at = now(), version = x.version + 1,
    table_id = coalesce($5, x.table_id)
FROM reservation_transitions tr
WHERE x.restaurant_id = $1 AND x.id = $2 AND tr.from_status = x.status AND tr.to_status = $3
  AND ($4::int IS NULL OR x.version = $4)
RETURNING x.size, x.table_id"""

STATE = """
SELECT x.status, x.version, x.size, x.table_id,
       array(SELECT to_status FROM reservation_transitions WHERE from_status = x.status ORDER BY 1) AS allowed
FROM reservations x WHERE x.restaurant_id = $1 AND x.id = $2"""

CONFLICTING = f"""
SELECT {RESERVATION_JSON} FROM reservations x
WHERE x.restaurant_id = $1 AND x.table_id = $2 AND x.status IN ('booked', 'confirmed', 'seated')
  AND tstzrange(x.starts_at, x.ends_at, '[)')
      && tstzrange($3::timestamptz, $3::timestamptz + make_interval(mins => $4), '[)')
  AND x.id <> coalesce($5, 0)
ORDER BY x.starts_at LIMIT 1"""

# Open slots of a local day: every slot in service hours from now on, with the
# tables (smallest first) that fit the party and are free for the whole duration.
AVAILABILITY = """
WITH slots AS (
    SELECT s AS starts_at
    FROM generate_series($2::timestamptz, $3::timestamptz, make_interval(mins => $4)) s
    WHERE s >= now()
)
SELECT slots.starts_at, array_agg(t.id ORDER BY t.seats, t.id) AS table_ids
FROM slots
JOIN dining_tables t ON t.restaurant_id = $1 AND t.seats >= $6
WHERE NOT EXISTS (
    SELECT 1 FROM reservations x
    WHERE x.restaurant_id = $1 AND x.table_id = t.id AND x.status IN ('booked', 'confirmed', 'seated')
      AND tstzrange(x.starts_at, x.ends_at, '[)')
          && tstzrange(slots.starts_at, slots.starts_at + make_interval(mins => $5), '[)'))
GROUP BY slots.starts_at
ORDER BY slots.starts_at"""

FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def day_window(day: date, zone: str) -> tuple[datetime, datetime]:
    """The restaurant's local day as UTC instants (DST days are 23 or 25 hours long)."""
    from zoneinfo import ZoneInfo
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time(0), tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tz)
    return start, end


async def list_reservations(pool: asyncpg.Pool, rid: int, limit: int, after: tuple[datetime, int] | None,
                            day: date | None, status: str | None) -> tuple[Page, int]:
    if day is None:
        start, end = FAR_PAST, FAR_FUTURE
    else:
        start, end = day_window(day, (await restaurants.settings_of(pool, rid))[1])
    after_at, after_id = after if after else (FAR_PAST, 0)
    return await fetch_page(pool, LIST, rid, limit, after_at, after_id, start, end, status)


async def reservation_json(conn: asyncpg.Connection, rid: int, reservation_id: int) -> msgspec.Raw:
    text = await conn.fetchval(GET, rid, reservation_id)
    if text is None:
        raise NotFound("no such reservation")
    return msgspec.Raw(text.encode())


async def get(pool: asyncpg.Pool, rid: int, reservation_id: int) -> msgspec.Raw:
    async with pool.acquire() as conn:
        return await reservation_json(conn, rid, reservation_id)


def _check_future(starts_at: datetime) -> None:
    if starts_at < datetime.now(UTC) - PAST_GRACE:
        raise Invalid("a reservation cannot start in the past",
                      [{"path": "$.starts_at", "message": "in the past"}])
    if starts_at >= FAR_FUTURE:  # past it, lists would miss it and its end overflow the calendar
        raise Invalid("a reservation must start before the year 9999",
                      [{"path": "$.starts_at", "message": "too far in the future"}])


async def _save(tx: events.Write, rid: int, sql: str, args: list[Any], table_id: int | None,
                starts_at: datetime, minutes: int, reservation_id: int | None) -> Any:
    """Run an insert/update; a double booking becomes 409 naming the reservation in the way."""
    if table_id is not None:
        await tx.conn.execute(LOCK_TABLE, rid, table_id)
    try:
        async with tx.conn.transaction():  # a savepoint, so the conflict can be looked up after
            return await tx.conn.fetchval(sql, *args)
    except asyncpg.ExclusionViolationError:
        clash = await tx.conn.fetchval(CONFLICTING, rid, table_id, starts_at, minutes, reservation_id)
        raise Conflict("that table is already booked then",
                       [{"conflicting_reservation": clash}]
                       ) from None


async def _emit(tx: events.Write, rid: int, reservation_id: int, name: str) -> msgspec.Raw:
    raw = await reservation_json(tx.conn, rid, reservation_id)
    tx.emit(rid, "floor", name, {"reservation": raw})
    return raw


async def _pace(conn: asyncpg.Connection, rid: int, settings: restaurants.Settings, zone: str,
                starts_at: datetime, size: int, reservation_id: int | None,
                override: pacing.PacingOverrideIn | None) -> str | None:
    """Within the pacing limits: None. Past one: 409 pacing_limit naming it, unless the host
    overrides it; then the override's reason, to be recorded."""
    breach = await pacing.admit(conn, rid, settings, zone, starts_at, size, reservation_id)
    if breach is None:
        return None
    if override is None:
        raise pacing.PacingLimit(f"{breach.message(zone)}; a host may still book it with a "
                                 "pacing_override and a reason", [msgspec.to_builtins(breach)])
    return override.reason


async def create(pool: asyncpg.Pool, rid: int, body: ReservationIn,
                 by: Principal) -> tuple[msgspec.Raw, int]:
    _check_future(body.starts_at)
    async with events.write(pool) as tx:
        settings, zone = await restaurants.settings_of(tx.conn, rid)
        minutes = body.duration_min or settings.duration_for(body.size)
        await floor.check_fits(tx.conn, rid, body.table_id, body.size)
        reason = await _pace(tx.conn, rid, settings, zone, body.starts_at, body.size, None,
                             body.pacing_override)
        reservation_id = await _save(
            tx, rid, INSERT, [rid, body.name, body.phone, body.note, body.size, body.starts_at,
                              minutes, body.table_id, reason, by.user_id, by.name],
            body.table_id, body.starts_at, minutes, None)
        raw = await _emit(tx, rid, reservation_id, "reservation.created")
    return raw, tx.last_seq[rid]


async def patch(pool: asyncpg.Pool, rid: int, reservation_id: int, body: ReservationPatch,
                expected: int | None, by: Principal) -> tuple[msgspec.Raw, int]:
    async with events.write(pool) as tx:
        row = await tx.conn.fetchrow(CURRENT, rid, reservation_id)
        if row is None:
            raise NotFound("no such reservation")
        if expected is not None and row["version"] != expected:
            raise Stale(f"the reservation changed (now version {row['version']}); reload and retry",
                        [{"version": row["version"]}])
        if row["status"] not in ("booked", "confirmed"):
            raise Conflict(f"a {row['status']} reservation cannot be changed")
        merged = {**dict(row), "duration_min": int((row["ends_at"] - row["starts_at"]).total_seconds() // 60),
                  **{k: v for k, v in msgspec.structs.asdict(body).items()
                     if v is not UNSET and k != "pacing_override"}}
        if body.starts_at is not UNSET:
            _check_future(body.starts_at)
        await floor.check_fits(tx.conn, rid, merged["table_id"], merged["size"])
        reason = None
        if merged["starts_at"] != row["starts_at"] or merged["size"] > row["size"]:
            settings, zone = await restaurants.settings_of(tx.conn, rid)
            reason = await _pace(tx.conn, rid, settings, zone, merged["starts_at"], merged["size"],
                                 reservation_id, body.pacing_override)
        await _save(tx, rid, UPDATE, [rid, reservation_id, merged["name"], merged["phone"],
                                      merged["note"], merged["size"], merged["starts_at"],
                                      merged["duration_min"], merged["table_id"], reason,
                                      by.user_id, by.name],
                    merged["table_id"], merged["starts_at"], merged["duration_min"], reservation_id)
        raw = await _emit(tx, rid, reservation_id, "reservation.updated")
    return raw, tx.last_seq[rid]


async def _refuse(conn: asyncpg.Connection, rid: int, reservation_id: int, expected: int | None,
                  status: str) -> None:
    row = await conn.fetchrow(STATE, rid, reservation_id)
    if row is None:
        raise NotFound("no such reservation")
    if expected is not None and row["version"] != expected:
        raise Stale(f"the reservation changed (now version {row['version']}); reload and retry",
                    [{"version": row["version"]}])
    raise Conflict(f"a {row['status']} reservation cannot become {status}",
                   [{"status": row["status"], "allowed": list(row["allowed"])}])


async def move(pool: asyncpg.Pool, rid: int, reservation_id: int, status: str,
               expected: int | None) -> tuple[msgspec.Raw, int]:
    async with events.write(pool) as tx:
        if await tx.conn.fetchrow(MOVE, rid, reservation_id, status, expected, None) is None:
            await _refuse(tx.conn, rid, reservation_id, expected, status)
        raw = await _emit(tx, rid, reservation_id, "reservation.updated")
    return raw, tx.last_seq[rid]


async def seat(pool: asyncpg.Pool, rid: int, reservation_id: int, table_id: int | None,
               expected: int | None) -> tuple[msgspec.Raw, int]:
    """Seat the party: on the given table, else its booked table, else the best free one."""
    async with events.write(pool) as tx:
        state = await tx.conn.fetchrow(STATE, rid, reservation_id)
        if state is None:
            raise NotFound("no such reservation")
        table_id = table_id or state["table_id"] or await floor.pick_free_table(tx.conn, rid, state["size"])
        await floor.check_fits(tx.conn, rid, table_id, state["size"])
        try:
            async with tx.conn.transaction():
                moved = await tx.conn.fetchrow(MOVE, rid, reservation_id, "seated", expected, table_id)
        except asyncpg.ExclusionViolationError:
            raise Conflict("that table is booked by another reservation now") from None
        if moved is None:
            await _refuse(tx.conn, rid, reservation_id, expected, "seated")
        await floor.move_table(tx, rid, table_id, "seated", state["size"])
        raw = await _emit(tx, rid, reservation_id, "reservation.updated")
    return raw, tx.last_seq[rid]


async def availability(pool: asyncpg.Pool, rid: int, day: date, size: int,
                       kitchen: pacing.KitchenState) -> tuple[Availability, int]:
    """Open slots within the pacing limits (`kitchen`: pacing.kitchen_state, read by the caller),
    and a seq the answer is at least as new as (read before the slots)."""
    from zoneinfo import ZoneInfo
    settings, zone, seq = await restaurants.settings_at(pool, rid)
    minutes = settings.duration_for(size)
    tz = ZoneInfo(zone)
    opens = datetime.combine(day, time.fromisoformat(settings.service_start), tz)
    closes = datetime.combine(day, time.fromisoformat(settings.service_end), tz)
    if closes <= opens:
        closes += timedelta(days=1)  # service runs past midnight
    last_start = closes - timedelta(minutes=minutes)
    rows = await pool.fetch(AVAILABILITY, rid, opens, last_start, settings.slot_minutes, minutes, size)
    refused = await pacing.paced_out(pool, rid, settings, zone, kitchen,
                                     [r["starts_at"] for r in rows], size)
    return Availability(date=day, size=size, duration_min=minutes,
                        items=[Slot(starts_at=r["starts_at"], table_ids=list(r["table_ids"]))
                               for r in rows if r["starts_at"] not in refused],
                        paced_out=list(refused.values()), kitchen=kitchen), seq
