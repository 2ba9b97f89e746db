"""Sessions, device tokens and API keys: random tokens stored only as their SHA-256.

A token's prefix says what it is, so resolving one is a single indexed lookup.
Lookups also touch `last_seen_at` at most once a minute, in the same statement.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import asyncpg
import msgspec

from store import events

SESSION_PREFIX = "sls_"
DEVICE_PREFIX = "sld_"
API_KEY_PREFIX = "slk_"


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling: a staff session, a device, or an integration's API key."""

    kind: str  # "session" | "device" | "api_key"
    id: int  # the session, device or key id
    name: str
    user_id: int | None = None
    roles: dict[int, str] = {}  # restaurant id -> role
    scopes: frozenset[str] = frozenset()
    expired: bool = False
    expires_at: datetime | None = None  # a session's end (devices and keys do not expire)


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


SESSION_BY_HASH = """
WITH s AS (
    SELECT s.id, s.user_id, s.expires_at <= now() AS expired, s.expires_at, u.name
    FROM sessions s JOIN users u ON u.id = s.user_id
    WHERE s.token_hash = $1 AND s.revoked_at IS NULL
), touched AS (
    UPDATE sessions SET last_seen_at = now()
    WHERE id = (SELECT id FROM s) AND last_seen_at < now() - interval '1 minute'
)
SELECT s.id, s.user_id, s.expired, s.expires_at, s.name,
       array_remove(array_agg(st.restaurant_id), NULL) AS restaurant_ids,
       array_remove(array_agg(st.role), NULL) AS roles
FROM s LEFT JOIN staff st ON st.user_id = s.user_id
GROUP BY s.id, s.user_id, s.expired, s.expires_at, s.name
"""

DEVICE_BY_HASH = """
WITH d AS (
    SELECT id, restaurant_id, role, name FROM devices
    WHERE token_hash = $1 AND revoked_at IS NULL
), touched AS (
    UPDATE devices SET last_seen_at = now()
    WHERE (restaurant_id, id) = (SELECT restaurant_id, id FROM d)
      AND (last_seen_at IS NULL OR last_seen_at < now() - interval '1 minute')
)
SELECT id, restaurant_id, role, name FROM d
"""

API_KEY_BY_HASH = """
WITH k AS (
    SELECT id, restaurant_id, scopes, name FROM api_keys
    WHERE key_hash = $1 AND revoked_at IS NULL
), touched AS (
    UPDATE api_keys SET last_used_at = now()
    WHERE (restaurant_id, id) = (SELECT restaurant_id, id FROM k)
      AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
)
SELECT id, restaurant_id, scopes, name FROM k
"""


async def resolve(pool: asyncpg.Pool, token: str) -> Principal | None:
    """The principal a bearer token stands for, or None if unknown or revoked."""
    digest = token_hash(token)
    if token.startswith(SESSION_PREFIX):
        row = await pool.fetchrow(SESSION_BY_HASH, digest)
        if row is None:
            return None
        return Principal(kind="session", id=row["id"], name=row["name"], user_id=row["user_id"],
                         roles=dict(zip(row["restaurant_ids"], row["roles"])),
                         expired=row["expired"], expires_at=row["expires_at"])
    if token.startswith(DEVICE_PREFIX):
        row = await pool.fetchrow(DEVICE_BY_HASH, digest)
        if row is None:
            return None
        return Principal(kind="device", id=row["id"], name=row["name"],
                         roles={row["restaurant_id"]: row["role"]})
    if token.startswith(API_KEY_PREFIX):
        row = await pool.fetchrow(API_KEY_BY_HASH, digest)
        if row is None:
            return None
        return Principal(kind="api_key", id=row["id"], name=row["name"],
                         roles={row["restaurant_id"]: "integration"},
                         scopes=frozenset(row["scopes"]))
    return None


USER_BY_EMAIL = "SELECT id, email, name, password_hash FROM users WHERE email = $1"

UPDATE_HASH = "UPDATE users SET password_hash = $2 WHERE id = $1"

START_SESSION = """
WITH s AS (
    INSERT INTO sessions (token_hash, user_id, expires_at, address, user_agent)
    VALUES ($1, $2, now() + $3::interval, $4, $5)
    RETURNING id, expires_at
)
SELECT s.id, s.expires_at,
       coalesce(json_agg(json_build_object('id', r.id, 'slug', r.slug, 'name', r.name,
                                           'role', st.role) ORDER BY r.name)
                FILTER (WHERE r.id IS NOT NULL), '[]') AS restaurants
FROM s
LEFT JOIN staff st ON st.user_id = $2
LEFT JOIN restaurants r ON r.id = st.restaurant_id
GROUP BY s.id, s.expires_at
"""

END_SESSION = """
UPDATE sessions SET revoked_at = now()
WHERE id = $1 AND revoked_at IS NULL
RETURNING user_id, (SELECT array_agg(restaurant_id) FROM staff WHERE user_id = sessions.user_id)
          AS restaurant_ids
"""

async def user_by_email(pool: asyncpg.Pool, email: str) -> asyncpg.Record | None:
    return await pool.fetchrow(USER_BY_EMAIL, email)


async def start_session(pool: asyncpg.Pool, user: asyncpg.Record, *, ttl: timedelta,
                        address: str | None, user_agent: str | None,
                        new_hash: str | None = None) -> tuple[str, asyncpg.Record]:
    """Open a session for a user whose password checked out; returns (token, session row)."""
    token = new_token(SESSION_PREFIX)
    async with events.write(pool) as tx:
        if new_hash is not None:
            await tx.conn.execute(UPDATE_HASH, user["id"], new_hash)
        row = await tx.conn.fetchrow(START_SESSION, token_hash(token), user["id"], ttl,
                                     address, (user_agent or "")[:300])
        for restaurant in row["restaurants"]:
            tx.emit(restaurant["id"], "manager", "staff.logged_in",
                    {"user_id": user["id"], "name": user["name"], "session_id": row["id"]})
    return token, row


async def end_session(pool: asyncpg.Pool, session_id: int) -> bool:
    """Revoke a session; False if it was already revoked."""
    async with events.write(pool) as tx:
        row = await tx.conn.fetchrow(END_SESSION, session_id)
        if row is None:
            return False
        for restaurant_id in row["restaurant_ids"] or ():
            tx.emit(restaurant_id, "manager", "staff.logged_out",
                    {"user_id": row["user_id"], "session_id": session_id})
    return True



RESTAURANTS_BY_ID = """
SELECT id, slug, name FROM restaurants WHERE id = ANY($1::bigint[]) ORDER BY name
"""


async def restaurants_of(pool: asyncpg.Pool, roles: dict[int, str]) -> list[dict]:
    """The restaurants a principal may act in, each with its role there."""
    rows = await pool.fetch(RESTAURANTS_BY_ID, list(roles))
    return [{"id": r["id"], "slug": r["slug"], "name": r["name"], "role": roles[r["id"]]}
            for r in rows]


# Sessions ended (expired or revoked) more than a week ago are of no further use.
PURGE_SESSIONS = """
DELETE FROM sessions
WHERE expires_at < now() - interval '7 days' OR revoked_at < now() - interval '7 days'"""


async def purge_sessions(pool: asyncpg.Pool) -> int:
    return int((await pool.execute(PURGE_SESSIONS)).split()[-1])
