"""Alerts: conditions that need a manager's eye, raised and cleared once as events on `manager`.

Every instance evaluates the rules; the partial unique index on open alerts and the
conditional UPDATE that clears one let exactly one instance announce each change.
Rules read from the database (late tickets, screens) hold for the whole restaurant; rules
about an instance (slow requests, pool waiters, event lag) name the instance as subject and
are kept alive by it (`seen_at`), so an instance that died does not leave them open forever.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple

import asyncpg
import msgspec

from store import events
from store.dashboard import RED_MINUTES, station_red
from store.pages import Page, fetch_page, paged

Rule = Literal["late_ticket", "device_dark", "device_lagging", "slow_requests", "pool_waiters",
               "event_lag"]
INSTANCE_RULES = frozenset({"slow_requests", "pool_waiters", "event_lag"})
DATABASE_RULES = frozenset({"late_ticket", "device_dark", "device_lagging"})


class Alert(msgspec.Struct, frozen=True):
    id: int
    rule: Rule
    subject: str  # what it is about: a ticket id, a device id, an instance
    message: str
    details: dict[str, Any]
    raised_at: datetime
    seen_at: datetime
    cleared_at: datetime | None


class Wanted(NamedTuple):
    """A rule's condition holding now for a subject of a restaurant."""
    restaurant_id: int
    rule: str
    subject: str
    message: str
    details: dict[str, Any]


ALERT_JSON = """json_build_object(
    'id', a.id, 'rule', a.rule, 'subject', a.subject, 'message', a.message, 'details', a.details,
    'raised_at', a.raised_at, 'seen_at', a.seen_at, 'cleared_at', a.cleared_at)"""

# Newest first; $3: the last id of the previous page (0: from the newest), $4: open only.
LIST = paged(f"""
SELECT {ALERT_JSON} AS j, json_build_array(a.id) AS cursor, row_number() OVER (ORDER BY a.id DESC) AS n
FROM alerts a
WHERE a.restaurant_id = $1 AND ($3::bigint = 0 OR a.id < $3) AND (NOT $4 OR a.cleared_at IS NULL)
ORDER BY a.id DESC LIMIT $2 + 1""")

# A ticket is late at its station's own red (settings.station_thresholds), else the restaurant's.
STATION_RED = station_red(RED_MINUTES)

LATE_TICKETS = f"""
SELECT k.restaurant_id, k.id, k.station, dt.label, k.fired_at,
       floor(extract(epoch FROM now() - k.fired_at) / 60)::int AS minutes, {STATION_RED} AS red
FROM tickets k
JOIN restaurants r ON r.id = k.restaurant_id
JOIN orders o ON o.restaurant_id = k.restaurant_id AND o.id = k.order_id
LEFT JOIN dining_tables dt ON dt.restaurant_id = o.restaurant_id AND dt.id = o.table_id
WHERE k.status <> 'bumped' AND k.fired_at <= now() - make_interval(mins => {STATION_RED})"""

SCREENS = """
SELECT restaurant_id, id, name, alert, last_seen_at FROM devices
WHERE expected AND alert IS NOT NULL AND revoked_at IS NULL"""

OPEN = """
SELECT restaurant_id, rule, subject, seen_at < now() - $1::interval AS abandoned
FROM alerts WHERE cleared_at IS NULL"""

RAISE = """
INSERT INTO alerts (restaurant_id, rule, subject, message, details)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (restaurant_id, rule, subject) WHERE cleared_at IS NULL DO NOTHING
RETURNING id"""

CLEAR = """
UPDATE alerts SET cleared_at = now()
WHERE restaurant_id = $1 AND rule = $2 AND subject = $3 AND cleared_at IS NULL
RETURNING id"""

STILL_HOLDS = """
UPDATE alerts a SET seen_at = now(), message = v.message
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS v(restaurant_id, rule, subject, message)
WHERE a.restaurant_id = v.restaurant_id AND a.rule = v.rule AND a.subject = v.subject
  AND a.cleared_at IS NULL"""

RESTAURANTS = "SELECT id FROM restaurants"

GET = f"SELECT {ALERT_JSON}::text FROM alerts a WHERE a.restaurant_id = $1 AND a.id = $2"

PURGE = "DELETE FROM alerts WHERE cleared_at < now() - $1::interval"


async def list_alerts(pool: asyncpg.Pool, restaurant_id: int, limit: int, after: int,
                      open_only: bool) -> tuple[Page, int]:
    return await fetch_page(pool, LIST, restaurant_id, limit, after, open_only)


async def from_the_database(pool: asyncpg.Pool) -> list[Wanted]:
    """Late tickets (past the restaurant's red threshold) and expected screens dark or behind."""
    wanted = []
    for row in await pool.fetch(LATE_TICKETS):
        where = f"Table {row['label']}" if row["label"] else "A ticket"
        wanted.append(Wanted(row["restaurant_id"], "late_ticket", str(row["id"]),
                             f"{where} · {row['station']}: open {row['minutes']} min "
                             f"(late at {row['red']})",
                             {"ticket_id": row["id"], "station": row["station"],
                              "table_label": row["label"], "fired_at": row["fired_at"].isoformat()}))
    for row in await pool.fetch(SCREENS):
        state = "dark" if row["alert"] == "dark" else "behind"
        wanted.append(Wanted(row["restaurant_id"], f"device_{row['alert']}", str(row["id"]),
                             f"{row['name']} is {state}",
                             {"device_id": row["id"], "name": row["name"],
                              "last_seen_at": row["last_seen_at"].isoformat()
                              if row["last_seen_at"] else None}))
    return wanted


async def restaurant_ids(pool: asyncpg.Pool) -> list[int]:
    return [row["id"] for row in await pool.fetch(RESTAURANTS)]


async def _announce(pool: asyncpg.Pool, restaurant_id: int, sql: str, name: str, *args: Any) -> bool:
    async with events.write(pool) as tx:
        alert_id = await tx.conn.fetchval(sql, restaurant_id, *args)
        if alert_id is None:
            return False  # another instance got there first
        raw = await tx.conn.fetchval(GET, restaurant_id, alert_id)
        tx.emit(restaurant_id, "manager", name, {"alert": msgspec.Raw(raw.encode())})
    return True


async def reconcile(pool: asyncpg.Pool, wanted: list[Wanted], instance: str,
                    abandoned_after: timedelta) -> list[str]:
    """Raise what holds and is not open, clear what is open and no longer holds: the events sent."""
    sent = []
    now_open = {(r["restaurant_id"], r["rule"], r["subject"]): r["abandoned"]
                for r in await pool.fetch(OPEN, abandoned_after)}
    wanted_by_key = {(w.restaurant_id, w.rule, w.subject): w for w in wanted}
    for key, want in wanted_by_key.items():
        if key not in now_open and await _announce(
                pool, want.restaurant_id, RAISE, "alert.raised", want.rule, want.subject,
                want.message, want.details):
            sent.append("alert.raised")
    mine = [w for key, w in wanted_by_key.items() if key in now_open and w.rule in INSTANCE_RULES]
    if mine:
        await pool.execute(STILL_HOLDS, [w.restaurant_id for w in mine], [w.rule for w in mine],
                           [w.subject for w in mine], [w.message for w in mine])
    for (restaurant_id, rule, subject), stale in now_open.items():
        if (restaurant_id, rule, subject) in wanted_by_key:
            continue
        ours = rule in DATABASE_RULES or subject == instance
        abandoned = rule in INSTANCE_RULES and stale  # its instance stopped saying it holds
        if (ours or abandoned) and await _announce(pool, restaurant_id, CLEAR, "alert.cleared",
                                                   rule, subject):
            sent.append("alert.cleared")
    return sent


async def purge(pool: asyncpg.Pool, keep: timedelta) -> int:
    """Forget cleared alerts older than `keep`; the count removed."""
    return int((await pool.execute(PURGE, keep)).split()[-1])
