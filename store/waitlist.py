"""The waitlist: parties waiting for a table, notified, seated (onto a table, in one transaction), or gone.

Notifying a party records the "your table is ready" message and its delivery on the party. With
the webhook notifier the message *is* a `guest.notify` event written in the same transaction:
the webhook queue delivers it, and `follow_deliveries` copies the outcome back onto the party.
Other notifiers (server/notify.py) send after the commit and `record_delivery` keeps the outcome.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import msgspec
from msgspec import UNSET, UnsetType

from store import events, floor, wait_estimate
from store.errors import Conflict, NotFound, Stale
from store.pages import Page, fetch_page, paged
from store.patches import sent
from store.restaurants import Settings

PartyStatus = Literal["waiting", "notified", "seated", "left", "no_show"]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Size = Annotated[int, msgspec.Meta(ge=1, le=100)]
Phone = Annotated[str, msgspec.Meta(min_length=3, max_length=40, pattern=r"^[0-9+() .-]+$")]
Minutes = Annotated[int, msgspec.Meta(ge=0, le=600)]
Note = Annotated[str, msgspec.Meta(max_length=500)]


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


NotifyStatus = Literal["queued", "retrying", "delivered", "failed"]
GUEST_NOTIFY = "guest.notify"
# Webhook patterns that take a `guest.notify` event (store/webhooks.py check_patterns' forms).
NOTIFY_PATTERNS = ["guest.notify", "guest.*", "*"]


class Notification(msgspec.Struct, frozen=True):
    """The last "your table is ready" sent to a party, and whether it reached them."""
    via: str  # the notifier: "webhook" or "sms:<provider>"
    message: str
    count: int  # how many times the party has been told
    status: NotifyStatus
    attempts: int  # tries of the last message so far
    error: str | None  # why it failed (or is being retried)
    at: datetime | None  # when the status last changed


class Guest(msgspec.Struct, frozen=True):
    """What a notifier needs to tell a party their table is ready."""
    restaurant_id: int
    party_id: int
    name: str
    size: int
    phone: str | None
    message: str
    via: str
    count: int  # this message's number: an outcome is kept only for the latest one


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
    quote_due_at: datetime | None  # joined_at + quoted_minutes: when the quote runs out
    notification: Notification | None
    version: int


PARTY_JSON = """json_build_object(
    'id', w.id, 'name', w.name, 'size', w.size, 'phone', w.phone, 'note', w.note,
    'quoted_minutes', w.quoted_minutes, 'status', w.status, 'table_id', w.table_id,
    'joined_at', w.joined_at, 'notified_at', w.notified_at, 'seated_at', w.seated_at,
    'left_at', w.left_at,
    'waited_minutes',
        floor(extract(epoch FROM coalesce(w.seated_at, w.left_at, now()) - w.joined_at) / 60)::int,
    'quote_due_at', w.joined_at + make_interval(mins => w.quoted_minutes),
    'notification', CASE WHEN w.notify_count > 0 THEN json_build_object(
        'via', w.notify_via, 'message', w.notify_message, 'count', w.notify_count,
        'status', w.notify_status, 'attempts', w.notify_attempts, 'error', w.notify_error,
        'at', w.notify_status_at) END,
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
SELECT w.status, w.version, w.size, w.name,
       array(SELECT to_status FROM waitlist_transitions WHERE from_status = w.status ORDER BY 1) AS allowed
FROM waitlist_parties w WHERE w.restaurant_id = $1 AND w.id = $2"""
ESTIMATE = wait_estimate.ESTIMATE  # the estimate's one read (store/wait_estimate.py)

RESTAURANT = "SELECT name, settings FROM restaurants WHERE id = $1"

# Tell a waiting or notified party (again): the message and how it goes. A webhook message with
# no active endpoint that would take `guest.notify` fails at once, saying so.
NOTIFY = f"""
UPDATE waitlist_parties w SET status = 'notified', version = w.version + 1, notified_at = now(),
    notify_via = $4, notify_message = $5, notify_count = w.notify_count + 1, notify_attempts = 0,
    notify_status = CASE WHEN $4 <> 'webhook' OR listening.any THEN 'queued' ELSE 'failed' END,
    notify_error = CASE WHEN $4 <> 'webhook' OR listening.any THEN NULL
                        ELSE 'no active webhook subscribes to {GUEST_NOTIFY}' END,
    notify_status_at = now(), notify_seq = NULL
FROM (SELECT EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.restaurant_id = $1 AND e.active
                       AND e.events && $6::text[]) AS any) listening
WHERE w.restaurant_id = $1 AND w.id = $2 AND w.status IN ('waiting', 'notified')
  AND ($3::int IS NULL OR w.version = $3)
RETURNING w.name, w.size, w.phone, w.notify_count, w.notify_status"""

NOTIFY_SEQ = "UPDATE waitlist_parties SET notify_seq = $3 WHERE restaurant_id = $1 AND id = $2"

# A notifier's outcome, kept if no later message was sent meanwhile. Not an edit: no new version.
RECORD = f"""
UPDATE waitlist_parties w SET notify_status = $4, notify_attempts = w.notify_attempts + $5,
    notify_error = $6, notify_status_at = now()
WHERE w.restaurant_id = $1 AND w.id = $2 AND w.notify_count = $3
RETURNING {PARTY_JSON}::text"""

# The webhook messages on their way, in every restaurant: their `guest.notify` deliveries'
# outcome (any delivered: delivered; all given up: failed; tried: retrying), copied onto the
# party when it changed. No delivery and no endpoint left to queue the event: nobody took it.
FOLLOW = f"""
WITH watched AS (
    SELECT w.restaurant_id, w.id, w.notify_seq FROM waitlist_parties w
    WHERE w.notify_status IN ('queued', 'retrying') AND w.notify_via = 'webhook'
      AND w.notify_seq IS NOT NULL
    ORDER BY w.notify_seq LIMIT $1
    FOR NO KEY UPDATE SKIP LOCKED
), sent AS (
    SELECT wa.restaurant_id, wa.id, count(d.id) AS deliveries,
           bool_or(d.status = 'delivered') AS delivered, bool_and(d.status = 'failed') AS given_up,
           coalesce(max(d.attempts), 0) AS attempts, max(d.last_error) AS error,
           coalesce(max(d.delivered_at), max(d.last_attempt_at)) AS at,
           EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.restaurant_id = wa.restaurant_id
                     AND e.active AND e.enqueued_seq < wa.notify_seq
                     AND e.events && $2::text[]) AS to_queue
    FROM watched wa
    LEFT JOIN webhook_deliveries d ON d.restaurant_id = wa.restaurant_id AND d.seq = wa.notify_seq
    GROUP BY wa.restaurant_id, wa.id, wa.notify_seq
), outcome AS (
    SELECT restaurant_id, id, attempts, at,
           CASE WHEN delivered THEN 'delivered'
                WHEN deliveries > 0 AND given_up THEN 'failed'
                WHEN deliveries = 0 AND NOT to_queue THEN 'failed'
                WHEN attempts > 0 THEN 'retrying' ELSE 'queued' END AS status,
           CASE WHEN delivered THEN NULL
                WHEN deliveries = 0 AND NOT to_queue THEN 'no active webhook took {GUEST_NOTIFY}'
                ELSE error END AS error
    FROM sent
)
UPDATE waitlist_parties w SET notify_status = o.status, notify_attempts = o.attempts,
    notify_error = o.error, notify_status_at = coalesce(o.at, now())
FROM outcome o
WHERE w.restaurant_id = o.restaurant_id AND w.id = o.id
  AND (w.notify_status, w.notify_attempts, w.notify_error)
      IS DISTINCT FROM (o.status, o.attempts, o.error)
RETURNING w.restaurant_id, {PARTY_JSON}::text AS party"""


def ready_message(template: str, name: str, restaurant: str, size: int) -> str:
    """The restaurant's words with {name}, {restaurant} and {size} filled in (other braces kept)."""
    values = {"name": name, "restaurant": restaurant, "size": str(size)}
    return re.sub(r"\{(name|restaurant|size)\}", lambda m: values[m[1]], template)[:500]


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


async def notify(pool: asyncpg.Pool, rid: int, party_id: int,
                 expected: int | None) -> tuple[Guest, msgspec.Raw, int]:
    """Tell a party their table is ready (again, if already told), by the restaurant's notifier.

    With the webhook notifier the `guest.notify` event is the message; its seq is kept on the
    party so the webhook deliveries of that event can be followed.
    """
    async with events.write(pool) as tx:
        restaurant = await tx.conn.fetchrow(RESTAURANT, rid)
        settings = msgspec.convert(restaurant["settings"], Settings)
        via = settings.guest_notifier
        row = await tx.conn.fetchrow(STATE, rid, party_id)
        if row is None:
            raise NotFound("no such party")
        message = ready_message(settings.guest_ready_message, row["name"], restaurant["name"],
                                row["size"])
        told = await tx.conn.fetchrow(NOTIFY, rid, party_id, expected, via, message, NOTIFY_PATTERNS)
        if told is None:
            await _refuse(tx.conn, rid, party_id, expected, "notified")
        guest = Guest(restaurant_id=rid, party_id=party_id, name=told["name"], size=told["size"],
                      phone=told["phone"], message=message, via=via, count=told["notify_count"])
        raw = await _emit(tx, rid, party_id, "waitlist.updated")
        if via == "webhook" and told["notify_status"] == "queued":
            tx.emit(rid, "floor", GUEST_NOTIFY, {
                "party_id": party_id, "name": guest.name, "size": guest.size, "phone": guest.phone,
                "message": message, "count": guest.count})
            await tx.append_pending()  # the event's seq names its webhook deliveries
            await tx.conn.execute(NOTIFY_SEQ, rid, party_id, tx.last_seq[rid])
    return guest, raw, tx.last_seq[rid]


async def record_delivery(pool: asyncpg.Pool, guest: Guest, status: str, attempts: int,
                          error: str | None) -> tuple[msgspec.Raw, int] | None:
    """Keep a notifier's outcome on the party; None when a later message replaced this one."""
    async with events.write(pool) as tx:
        text = await tx.conn.fetchval(RECORD, guest.restaurant_id, guest.party_id, guest.count,
                                      status, attempts, error)
        if text is None:
            return None
        raw = msgspec.Raw(text.encode())
        tx.emit(guest.restaurant_id, "floor", "waitlist.updated", {"party": raw})
    return raw, tx.last_seq[guest.restaurant_id]


async def follow_deliveries(pool: asyncpg.Pool, limit: int = 500) -> int:
    """Copy the webhook queue's outcome of `guest.notify` messages onto their parties, with a
    `waitlist.updated` event for each party that changed; how many changed."""
    async with events.write(pool) as tx:
        rows = await tx.conn.fetch(FOLLOW, limit, NOTIFY_PATTERNS)
        for row in rows:
            tx.emit(row["restaurant_id"], "floor", "waitlist.updated",
                    {"party": msgspec.Raw(row["party"].encode())})
    return len(rows)
