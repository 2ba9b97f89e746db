"""The event outbox: every state change and its events commit in one transaction.

    async with events.write(pool) as tx:
        row = await tx.conn.fetchrow(INSERT_DEVICE, ...)
        tx.emit(rid, "manager", "device.registered", {...})

Events are appended just before commit: the restaurant's counter row is bumped
with UPDATE … RETURNING, which numbers them and holds the row lock until commit,
so per restaurant seq order is commit order with no gaps. pg_notify in the same
transaction wakes every listening process at commit; a failed write leaves no
event and consumes no seq.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import asyncpg
import msgspec

NOTIFY_CHANNEL = "serveline_events"

# Every event name the service emits (docs/protocol.md gives each one's channel and data):
# what a webhook may subscribe to. A new event is added here too (tests/test_webhooks.py
# checks the names written in store/ against this list).
NAMES = frozenset({
    "restaurant.created", "restaurant.updated",
    "staff.logged_in", "staff.logged_out", "staff.added", "staff.role_changed", "staff.removed",
    "device.registered", "device.revoked", "device.updated", "device.dark", "device.lagging",
    "device.back",
    "api_key.created", "api_key.revoked",
    "webhook.created", "webhook.updated", "webhook.deleted", "webhook.secret_rotated",
    "alert.raised", "alert.cleared",
    "area.created", "table.created", "table.updated", "table.status",
    "waitlist.added", "waitlist.updated", "reservation.created", "reservation.updated",
    "guest.notify",
    "menu.category_created", "menu.item_created", "menu.item_updated", "menu.item_availability",
    "order.created", "order.items_added", "order.fired", "order.closed", "order.ready",
    "order.moved",
    "table.merged", "table.unmerged", "order.merged", "order.transferred",
    "order.items_transferred", "order.split", "check.paid", "ticket.moved",
    "order.course_held", "ticket.held",
    "item.voided", "item.served", "item.ready",
    "ticket.fired", "ticket.started", "ticket.bumped", "ticket.recalled",
    "item.updated", "ticket.changed",
})

# Writers of one restaurant queue for its counter on an advisory lock first: a lock's queue is
# served one waiter at a time, where dozens waiting on the counter row itself all wake at each
# commit to fight over it again (PostgreSQL's CPU per write tripled at 64 writers).
COUNTER_LOCKS = 0x5345_5100  # the advisory lock class of the event counters ("SEQ")

# The tail of a write that is one statement: number the `batch` CTE's events (n from 1, channel,
# name, data) on the restaurant's counter ($1), append them and notify. The counter row is
# locked only from here to the statement's commit, with no round trip in between. The
# notification carries "restaurant_id:last_seq:families" (families: the channels' first part);
# rooms read the rows, caches drop what those families touch. `told` has no row when the batch
# is empty (nothing written, no seq used), so whatever selects from it must not need one.
APPEND_TAIL = f"""queued AS (
    SELECT pg_advisory_xact_lock({COUNTER_LOCKS}, ($1 % 2147483647)::int)
    WHERE (SELECT count(*) FROM batch) > 0  -- the whole batch is made before the queue
), counter AS (
    UPDATE restaurants SET seq = seq + (SELECT count(*) FROM batch)
    WHERE id = $1 AND EXISTS (SELECT 1 FROM queued)
    RETURNING seq, epoch
), appended AS (
    INSERT INTO events (restaurant_id, seq, epoch, channel, name, data)
    SELECT $1, counter.seq - (SELECT count(*) FROM batch) + batch.n, counter.epoch,
           batch.channel, batch.name, batch.data
    FROM counter, batch
    RETURNING seq, split_part(channel, ':', 1) AS family
), told AS (
    SELECT max(seq) AS last_seq, array_agg(DISTINCT family) AS families,
           pg_notify('{NOTIFY_CHANNEL}',
                     $1::text || ':' || max(seq)::text || ':' || string_agg(DISTINCT family, ','))
    FROM appended HAVING count(*) > 0
)"""

# One round trip per restaurant for a write made of several statements: its events, at the end.
APPEND = f"""
WITH batch AS (
    SELECT e.n, e.body->>'channel' AS channel, e.body->>'name' AS name, e.body->'data' AS data
    FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS e(body, n)
), {APPEND_TAIL}
SELECT last_seq FROM told
"""


class Event(msgspec.Struct, frozen=True):
    channel: str
    name: str
    data: dict[str, Any]


class Write:
    """A transaction in progress: run SQL on `conn`, `emit` its events."""

    __slots__ = ("conn", "families", "last_seq", "pending")

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.pending: dict[int, list[Event]] = {}
        self.last_seq: dict[int, int] = {}
        self.families: dict[int, set[str]] = {}  # channel families written, per restaurant

    def emit(self, restaurant_id: int, channel: str, name: str, data: dict[str, Any]) -> None:
        self.pending.setdefault(restaurant_id, []).append(Event(channel, name, data))

    async def append_pending(self) -> None:
        # Lock counter rows in id order so writes touching several restaurants cannot deadlock.
        for restaurant_id in sorted(self.pending):
            batch = self.pending[restaurant_id]
            last = await self.conn.fetchval(APPEND, restaurant_id, batch)
            if last is None:
                raise LookupError(f"restaurant {restaurant_id} does not exist")
            self.last_seq[restaurant_id] = last
            self.families.setdefault(restaurant_id, set()).update(
                event.channel.partition(":")[0] for event in batch)
        self.pending.clear()

    def tell(self) -> None:
        for rid, seq in self.last_seq.items():
            tell(rid, seq, self.families[rid])


# A transaction the caller already holds for this task (an idempotent request
# stores its response in it): writes join it instead of opening their own.
ambient: ContextVar[asyncpg.Connection | None] = ContextVar("ambient", default=None)

# Set by a request that wants to know what its writes changed (restaurant, seq, families),
# so its own process can act on them before the commit's notification comes back.
following: ContextVar[list[tuple[int, int, frozenset[str]]] | None] = ContextVar(
    "following", default=None)


def tell(restaurant_id: int, seq: int, families: Iterable[str]) -> None:
    """Say what a write changed to whoever follows this task's writes (see `following`)."""
    heard = following.get()
    if heard is not None:
        heard.append((restaurant_id, seq, frozenset(families)))


@asynccontextmanager
async def write(pool: asyncpg.Pool) -> AsyncIterator[Write]:
    """Run a state change and its events as one transaction (the only way to write)."""
    held = ambient.get()
    if held is not None:
        async with held.transaction():  # a savepoint inside the held transaction
            tx = Write(held)
            yield tx
            await tx.append_pending()
        tx.tell()  # before the held transaction commits: early is only more cautious
        return
    async with pool.acquire() as conn, conn.transaction():
        tx = Write(conn)
        yield tx
        await tx.append_pending()
    tx.tell()


# What a room delivers: every channel, the data left as JSON text (sent as is).
READ_AFTER = """
SELECT seq, channel, name, at, data::text AS data FROM events
WHERE restaurant_id = $1 AND seq > $2
ORDER BY seq
LIMIT $3
"""

# What a resuming client missed, on its channels only (`$4`: every kitchen station too).
REPLAY = """
SELECT seq, channel, name, at, data::text AS data FROM events
WHERE restaurant_id = $1 AND seq > $2
  AND (channel = ANY($3::text[]) OR ($4 AND channel LIKE 'kitchen:%'))
ORDER BY seq
LIMIT $5
"""

# Where the restaurant's log stands: its epoch, its seq, and the oldest seq still kept.
POSITION = """
SELECT r.epoch, r.seq,
       (SELECT min(seq) FROM events e
        WHERE e.restaurant_id = r.id AND e.seq > r.purged_through_seq) AS oldest
FROM restaurants r WHERE r.id = $1
"""

async def read_after(conn: asyncpg.Connection | asyncpg.Pool, restaurant_id: int, after_seq: int,
                     limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(READ_AFTER, restaurant_id, after_seq, limit)


async def replay(conn: asyncpg.Connection | asyncpg.Pool, restaurant_id: int, after_seq: int,
                 channels: list[str], limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(REPLAY, restaurant_id, after_seq, channels, "kitchen" in channels, limit)


async def position(pool: asyncpg.Pool, restaurant_id: int) -> asyncpg.Record:
    return await pool.fetchrow(POSITION, restaurant_id)


# The last seq at which each channel family changed, per restaurant, in the last $1 seconds
# (the longest a cache entry lives, and a margin for transactions dated at their start): an
# older change cannot be newer than any entry still kept. Only the newest month is read.
LAST_CHANGES = """
SELECT restaurant_id, split_part(channel, ':', 1) AS family, max(seq) AS seq
FROM events WHERE at > now() - make_interval(secs => $1) GROUP BY 1, 2"""

IDENTITY = "SELECT identity::text || ':' || current_database() FROM deployment"


async def last_changes(pool: asyncpg.Pool, within_seconds: float) -> list[tuple[int, str, int]]:
    return [tuple(row) for row in await pool.fetch(LAST_CHANGES, within_seconds)]


async def database_identity(pool: asyncpg.Pool) -> str:
    """A random id made with this database, and its name (a copy made with CREATE DATABASE …
    TEMPLATE keeps the id): what a shared cache keys it by."""
    return await pool.fetchval(IDENTITY)
