"""Stored answers to POSTs sent with an Idempotency-Key, kept 24 hours."""
from __future__ import annotations

import asyncpg
import msgspec

RETENTION = "24 hours"


class Stored(msgspec.Struct, frozen=True):
    fingerprint: bytes
    status: int
    headers: dict[str, str]
    body: bytes


# Claim the key (reclaiming it if its answer is older than the retention).
# A concurrent claim of the same key waits here until the first commits.
CLAIM = f"""
INSERT INTO idempotency_keys (restaurant_id, key, request_hash) VALUES ($1, $2, $3)
ON CONFLICT (restaurant_id, key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash, created_at = now(), status = NULL, headers = NULL,
        body = NULL
    WHERE idempotency_keys.created_at < now() - interval '{RETENTION}'
RETURNING true"""

STORED = """
SELECT request_hash, status, headers, body FROM idempotency_keys
WHERE restaurant_id = $1 AND key = $2"""

RECORD = """
UPDATE idempotency_keys SET status = $3, headers = $4, body = $5
WHERE restaurant_id = $1 AND key = $2"""

RELEASE = "DELETE FROM idempotency_keys WHERE restaurant_id = $1 AND key = $2"

PURGE = f"DELETE FROM idempotency_keys WHERE created_at < now() - interval '{RETENTION}'"


async def claim(conn: asyncpg.Connection, rid: int, key: str, fingerprint: bytes) -> Stored | None:
    """Claim a key in the caller's transaction; or return the answer stored under it."""
    if await conn.fetchval(CLAIM, rid, key, fingerprint):
        return None
    return await stored(conn, rid, key)


async def stored(conn: asyncpg.Connection | asyncpg.Pool, rid: int, key: str) -> Stored:
    """The answer stored under a key that is known to be taken."""
    row = await conn.fetchrow(STORED, rid, key)
    return Stored(fingerprint=row["request_hash"], status=row["status"], headers=row["headers"],
                  body=row["body"])


async def record(conn: asyncpg.Connection, rid: int, key: str, status: int,
                 headers: dict[str, str], body: bytes) -> None:
    await conn.execute(RECORD, rid, key, status, headers, body)


async def release(conn: asyncpg.Connection, rid: int, key: str) -> None:
    await conn.execute(RELEASE, rid, key)


async def purge(pool: asyncpg.Pool) -> int:
    result = await pool.execute(PURGE)
    return int(result.split()[-1])
