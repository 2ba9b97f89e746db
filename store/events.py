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
# The notification carries "restaurant_id:last_seq"; listeners read the rows.
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
    RETURNING seq
)
SELECT max(seq) AS last_seq, pg_notify($3, $1::text || ':' || max(seq)::text)
FROM appended
"""

LIST_SINCE = """
SELECT seq, epoch, channel, name, data, at FROM events
WHERE restaurant_id = $1 AND seq > $2
ORDER BY seq
LIMIT $3
"""


class Event(msgspec.Struct, frozen=True):
    channel: str
    name: str
    data: dict[str, Any]


class Write:
    """A transaction in progress: run SQL on `conn`, `emit` its events."""

    __slots__ = ("conn", "pending", "last_seq")

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.pending: dict[int, list[Event]] = {}
        self.last_seq: dict[int, int] = {}

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
        self.pending.clear()


# A transaction the caller already holds for this task (an idempotent request
# stores its response in it): writes join it instead of opening their own.
ambient: ContextVar[asyncpg.Connection | None] = ContextVar("ambient", default=None)


@asynccontextmanager
async def write(pool: asyncpg.Pool) -> AsyncIterator[Write]:
    """Run a state change and its events as one transaction (the only way to write)."""
    held = ambient.get()
    if held is not None:
        async with held.transaction():  # a savepoint inside the held transaction
            tx = Write(held)
            yield tx
            await tx.append_pending()
        return
    async with pool.acquire() as conn:
        async with conn.transaction():
            tx = Write(conn)
            yield tx
            await tx.append_pending()


async def since(pool: asyncpg.Pool, restaurant_id: int, after_seq: int, limit: int = 1000) -> list[asyncpg.Record]:
    return await pool.fetch(LIST_SINCE, restaurant_id, after_seq, limit)
