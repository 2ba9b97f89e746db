"""Orders past their keeping: closed orders older than `order_retention_days` are deleted with
their lines and tickets, a batch at a time, once their day is in the daily rollups.

Kept forever by default. An order goes only when the rollup of the restaurant day it was
closed on exists, so the reports for that day keep its numbers; and a rolled-up day older
than the retention is never recomputed (store/reports.py), since its orders may be gone.
"""
from __future__ import annotations

import asyncpg

BATCH = 5_000

RESTAURANTS = "SELECT id FROM restaurants ORDER BY id"

# One batch of restaurant $1's closed orders closed before $2, whose day is rolled up.
DROP_BATCH = """
WITH r AS (
    SELECT timezone FROM restaurants WHERE id = $1
), doomed AS (
    SELECT o.id FROM orders o, r
    WHERE o.restaurant_id = $1 AND o.status = 'closed' AND o.closed_at < $2
      AND EXISTS (SELECT 1 FROM daily_rollups u WHERE u.restaurant_id = $1
                  AND u.day = (o.closed_at AT TIME ZONE r.timezone)::date)
    ORDER BY o.closed_at LIMIT $3
    FOR UPDATE OF o SKIP LOCKED
), lines AS (
    DELETE FROM order_items oi USING doomed
    WHERE oi.restaurant_id = $1 AND oi.order_id = doomed.id
), unlinked AS (  -- lines moved to a kept order (a merge, a transfer) may name a doomed ticket
    UPDATE order_items oi SET ticket_id = NULL
    FROM tickets k JOIN doomed ON k.order_id = doomed.id
    WHERE k.restaurant_id = $1 AND oi.restaurant_id = $1 AND oi.ticket_id = k.id
      AND oi.order_id NOT IN (SELECT id FROM doomed)
), tickets AS (
    DELETE FROM tickets k USING doomed
    WHERE k.restaurant_id = $1 AND k.order_id = doomed.id
)
DELETE FROM orders o USING doomed WHERE o.restaurant_id = $1 AND o.id = doomed.id"""


async def drop_closed_orders(pool: asyncpg.Pool, days: float, most: int = 20 * BATCH) -> int:
    """Delete up to `most` closed orders older than `days` (rolled-up days only); how many."""
    if days <= 0:
        return 0
    dropped = 0
    async with pool.acquire() as conn:
        cutoff = await conn.fetchval("SELECT now() - make_interval(secs => $1)", days * 86_400)
        for row in await conn.fetch(RESTAURANTS):
            while dropped < most:
                done = int((await conn.execute(DROP_BATCH, row["id"], cutoff,
                                               min(BATCH, most - dropped))).split()[-1])
                dropped += done
                if done < BATCH:
                    break
    return dropped
