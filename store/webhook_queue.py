"""The webhook worker's side of the deliveries: queue events, lease endpoints, record attempts.

Per endpoint, deliveries go out strictly in seq order: the oldest pending one is the only
one sent, and while it keeps failing it holds back the later ones, until it is delivered or
given up. A lease on the endpoint row (`leased_until`, `lease_owner`) keeps every other
process away from it meanwhile; a process that dies simply lets its lease run out.
"""
from __future__ import annotations

import asyncpg
import msgspec

# The event exactly as the feed and the socket send it (server/realtime/messages.event):
# msgspec's compact JSON, `at` as Python's isoformat() of a UTC datetime, `data` as jsonb
# text. The bytes are kept in the delivery: they are what is signed and sent on every attempt.
EVENT_BODY = """convert_to(
    '{"type":"event","seq":' || e.seq || ',"channel":' || to_json(e.channel)::text
    || ',"name":' || to_json(e.name)::text
    || ',"at":"' || to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
    || CASE WHEN to_char(e.at AT TIME ZONE 'UTC', 'US') = '000000' THEN ''
            ELSE '.' || to_char(e.at AT TIME ZONE 'UTC', 'US') END
    || '+00:00","data":' || e.data::text || '}', 'UTF8')"""

# Every endpoint behind its restaurant's seq: the matching events after its mark become
# deliveries (at most $1 events looked at per endpoint a round) and the mark moves on, all
# in one statement. Paused endpoints move their mark without queueing anything. An endpoint
# locked by another writer (a PATCH, a lease renewal, another process enqueueing) is skipped
# this round; the unique key makes a second queueing of one event a no-op anyway.
ENQUEUE = f"""
WITH behind AS (
    SELECT w.restaurant_id, w.id, w.events, w.active, w.enqueued_seq AS after,
           least(r.seq, w.enqueued_seq + $1) AS upto
    FROM webhook_endpoints w JOIN restaurants r ON r.id = w.restaurant_id
    WHERE w.enqueued_seq < r.seq
    FOR UPDATE OF w SKIP LOCKED
), queued AS (
    INSERT INTO webhook_deliveries (restaurant_id, endpoint_id, seq, name, body)
    SELECT e.restaurant_id, b.id, e.seq, e.name, {EVENT_BODY}
    FROM behind b
    CROSS JOIN LATERAL (  -- per endpoint, its seq range by index: never a scan of the log
        SELECT * FROM events e
        WHERE e.restaurant_id = b.restaurant_id AND e.seq > b.after AND e.seq <= b.upto
    ) e
    WHERE b.active AND (e.name = ANY(b.events) OR '*' = ANY(b.events)
                        OR split_part(e.name, '.', 1) || '.*' = ANY(b.events))
    ORDER BY e.restaurant_id, b.id, e.seq
    ON CONFLICT DO NOTHING
    RETURNING 1
), moved AS (
    UPDATE webhook_endpoints w SET enqueued_seq = b.upto
    FROM behind b WHERE w.restaurant_id = b.restaurant_id AND w.id = b.id
    RETURNING 1
)
SELECT (SELECT count(*) FROM queued) AS queued,
       EXISTS (SELECT 1 FROM webhook_endpoints WHERE active) AS listening"""

# Endpoints free to take whose oldest pending delivery is due.
DUE = """
SELECT w.restaurant_id, w.id FROM webhook_endpoints w
WHERE w.active AND (w.leased_until IS NULL OR w.leased_until < now())
  AND (SELECT d.next_attempt_at FROM webhook_deliveries d
       WHERE d.restaurant_id = w.restaurant_id AND d.endpoint_id = w.id AND d.status = 'pending'
       ORDER BY d.seq LIMIT 1) <= now()
LIMIT $1"""

CLAIM = """
UPDATE webhook_endpoints SET leased_until = now() + make_interval(secs => $4), lease_owner = $3
WHERE restaurant_id = $1 AND id = $2 AND active
  AND (leased_until IS NULL OR leased_until < now() OR lease_owner = $3)
RETURNING id"""

RELEASE = """
UPDATE webhook_endpoints SET leased_until = NULL, lease_owner = NULL
WHERE restaurant_id = $1 AND id = $2 AND lease_owner = $3"""

# The oldest pending delivery of an endpoint this process holds, if it is due, with the
# endpoint's current address and secret (a PATCH or a rotation applies from the next one).
NEXT = """
SELECT d.restaurant_id, d.id, d.seq, d.body, d.attempts, w.url, w.secret
FROM webhook_endpoints w
JOIN LATERAL (SELECT * FROM webhook_deliveries d
              WHERE d.restaurant_id = w.restaurant_id AND d.endpoint_id = w.id
                AND d.status = 'pending'
              ORDER BY d.seq LIMIT 1) d ON d.next_attempt_at <= now()
WHERE w.restaurant_id = $1 AND w.id = $2 AND w.active AND w.lease_owner = $3"""

# One attempt's outcome, while the lease is still ours (renewed by the same statement).
# $5: seconds since the attempt started; $6: whether it was delivered; $9: the back-off
# delay; $10: the give-up window. A failure past the window gives the delivery up; the next
# try never comes later than the window's end, so giving up happens on time.
RECORD = """
WITH held AS (
    UPDATE webhook_endpoints SET leased_until = now() + make_interval(secs => $11)
    WHERE restaurant_id = $1 AND id = $2 AND lease_owner = $3
    RETURNING restaurant_id, id
), attempt AS (
    SELECT now() - make_interval(secs => $5) AS at
)
UPDATE webhook_deliveries d SET
    attempts = d.attempts + 1,
    first_attempt_at = coalesce(d.first_attempt_at, attempt.at),
    last_attempt_at = attempt.at,
    last_status = $7,
    last_error = $8,
    status = CASE WHEN $6 THEN 'delivered'
                  WHEN now() >= coalesce(d.first_attempt_at, attempt.at)
                                + make_interval(secs => $10) THEN 'failed'
                  ELSE 'pending' END,
    delivered_at = CASE WHEN $6 THEN now() END,
    next_attempt_at = CASE WHEN $6 THEN d.next_attempt_at
                           ELSE least(now() + make_interval(secs => $9),
                                      coalesce(d.first_attempt_at, attempt.at)
                                      + make_interval(secs => $10)) END
FROM held, attempt
WHERE d.restaurant_id = held.restaurant_id AND d.endpoint_id = held.id AND d.id = $4
  AND d.status = 'pending'
RETURNING d.status"""

PURGE = """
DELETE FROM webhook_deliveries
WHERE status <> 'pending' AND created_at < now() - make_interval(hours => $1)"""


class Due(msgspec.Struct, frozen=True):
    """The next delivery of an endpoint this process holds, and where it goes."""
    restaurant_id: int
    id: int
    seq: int
    body: bytes
    attempts: int  # before this one
    url: str
    secret: str


async def enqueue(pool: asyncpg.Pool, batch: int) -> tuple[int, bool]:
    """Turn new events into deliveries for every endpoint: how many were queued, and whether
    any endpoint is active at all (if none, new events need no round)."""
    row = await pool.fetchrow(ENQUEUE, batch)
    return row["queued"], row["listening"]


async def due_endpoints(pool: asyncpg.Pool, limit: int) -> list[tuple[int, int]]:
    """(restaurant id, endpoint id) of endpoints with a delivery to send now and no holder."""
    return [(row["restaurant_id"], row["id"]) for row in await pool.fetch(DUE, limit)]


async def claim(pool: asyncpg.Pool, rid: int, endpoint_id: int, owner: str, seconds: float) -> bool:
    return await pool.fetchval(CLAIM, rid, endpoint_id, owner, seconds) is not None


async def release(pool: asyncpg.Pool, rid: int, endpoint_id: int, owner: str) -> None:
    await pool.execute(RELEASE, rid, endpoint_id, owner)


async def next_due(pool: asyncpg.Pool, rid: int, endpoint_id: int, owner: str) -> Due | None:
    row = await pool.fetchrow(NEXT, rid, endpoint_id, owner)
    return None if row is None else Due(**row)


async def record(pool: asyncpg.Pool, due: Due, endpoint_id: int, owner: str, *, elapsed: float,
                 delivered: bool, status: int | None, error: str | None, retry_in: float,
                 give_up_after: float, lease: float) -> str | None:
    """Write an attempt's outcome; the delivery's new status, or None when the lease was lost."""
    return await pool.fetchval(RECORD, due.restaurant_id, endpoint_id, owner, due.id, elapsed,
                               delivered, status, error, retry_in, give_up_after, lease)


async def purge(pool: asyncpg.Pool, kept_hours: float) -> int:
    """Forget delivered and given-up deliveries older than `kept_hours`."""
    return int((await pool.execute(PURGE, kept_hours)).split()[-1])
