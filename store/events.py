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

from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, AsyncIterator

import asyncpg
import msgspec

NOTIFY_CHANNEL = "serveline_events"

# One round trip per restaurant: bump the counter, insert the batch, notify.
# The notification carries "restaurant_id:last_seq:families" (families: the channels' first
# part, comma-separated); rooms read the rows, caches drop what those families touch.
APPEND = """
WITH batch AS (
    SELECT e.body, e.n FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS e(body, n)
), counter AS (
    UPDATE restaurants SET seq = seq + (SELECT count(*) FROM batch)
    WHERE id = $1
    RETURNING seq, epoch
), appended AS (
    INSERT INTO events (restaurant_id, seq, epoch, channel, name, data)
    SELECT $1, counter.seq - (SELECT count(*) FROM batch) + batch.n, counter.epoch,
           batch.body->>'channel', batch.body->>'name', batch.body->'data'
    FROM counter, batch
    RETURNING seq, split_part(channel, ':', 1) AS family
)
SELECT max(seq) AS last_seq,
       pg_notify($3, $1::text || ':' || max(seq)::text || ':' || string_agg(DISTINCT family, ','))
FROM appended
"""

class Event(msgspec.Struct, frozen=True):
    channel: str
    name: str
    data: dict[str, Any]


class Write:
    """A transaction in progress: run SQL on `conn`, `emit` its events."""

    __slots__ = ("conn", "pending", "last_seq", "families")

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
            last = await self.conn.fetchval(APPEND, restaurant_id, batch, NOTIFY_CHANNEL)
            if last is None:
                raise LookupError(f"restaurant {restaurant_id} does not exist")
            self.last_seq[restaurant_id] = last
            self.families.setdefault(restaurant_id, set()).update(
                event.channel.partition(":")[0] for event in batch)
        self.pending.clear()

    def tell(self) -> None:
        """Say what this write changed to whoever follows this task's writes (see `following`)."""
        heard = following.get()
        if heard is not None:
            heard.extend((rid, seq, frozenset(self.families[rid])) for rid, seq in self.last_seq.items())


# A transaction the caller already holds for this task (an idempotent request
# stores its response in it): writes join it instead of opening their own.
ambient: ContextVar[asyncpg.Connection | None] = ContextVar("ambient", default=None)

# Set by a request that wants to know what its writes changed (restaurant, seq, families),
# so its own process can act on them before the commit's notification comes back.
following: ContextVar[list[tuple[int, int, frozenset[str]]] | None] = ContextVar(
    "following", default=None)


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
    async with pool.acquire() as conn:
        async with conn.transaction():
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
       (SELECT min(seq) FROM events e WHERE e.restaurant_id = r.id) AS oldest
FROM restaurants r WHERE r.id = $1
"""

PURGE_BEFORE = "DELETE FROM events WHERE at < now() - make_interval(hours => $1)"


async def read_after(conn: asyncpg.Connection | asyncpg.Pool, restaurant_id: int, after_seq: int,
                     limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(READ_AFTER, restaurant_id, after_seq, limit)


async def replay(conn: asyncpg.Connection | asyncpg.Pool, restaurant_id: int, after_seq: int,
                 channels: list[str], limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(REPLAY, restaurant_id, after_seq, channels, "kitchen" in channels, limit)


async def position(pool: asyncpg.Pool, restaurant_id: int) -> asyncpg.Record:
    return await pool.fetchrow(POSITION, restaurant_id)


async def purge(pool: asyncpg.Pool, retention_hours: float) -> int:
    """Forget events past the retention window (clients further behind get a reset)."""
    return int((await pool.execute(PURGE_BEFORE, retention_hours)).split()[-1])


# The last seq at which each channel family changed, per restaurant, within retention
# (a cache entry never outlives retention, so older changes cannot make one stale).
LAST_CHANGES = """
SELECT restaurant_id, split_part(channel, ':', 1) AS family, max(seq) AS seq
FROM events GROUP BY 1, 2"""

IDENTITY = "SELECT identity::text || ':' || current_database() FROM deployment"


async def last_changes(pool: asyncpg.Pool) -> list[tuple[int, str, int]]:
    return [tuple(row) for row in await pool.fetch(LAST_CHANGES)]


async def database_identity(pool: asyncpg.Pool) -> str:
    """A random id made with this database, and its name (a copy made with CREATE DATABASE …
    TEMPLATE keeps the id): what a shared cache keys it by."""
    return await pool.fetchval(IDENTITY)
