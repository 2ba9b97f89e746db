"""API keys for integrations: shown once, stored hashed, limited by scopes."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import msgspec

from store import events
from store.credentials import API_KEY_PREFIX, new_token, token_hash
from store.errors import NotFound
from store.pages import Page, fetch_page, paged

Scope = Literal["read", "write", "events"]


class ApiKeyIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1, max_length=3)]


class ApiKey(msgspec.Struct, frozen=True):
    id: int
    name: str
    prefix: str  # the key's first characters, to tell keys apart
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class CreatedApiKey(msgspec.Struct, frozen=True):
    api_key: ApiKey
    key: str  # shown once


COLUMNS = "id, name, prefix, scopes, created_at, last_used_at, revoked_at"

LIST = paged("""
SELECT json_build_object('id', d.id, 'name', d.name, 'prefix', d.prefix, 'scopes', d.scopes,
                         'created_at', d.created_at, 'last_used_at', d.last_used_at,
                         'revoked_at', d.revoked_at) AS j,
       json_build_array(d.id) AS cursor, row_number() OVER (ORDER BY d.id) AS n
FROM api_keys d WHERE d.restaurant_id = $1 AND d.id > $3
ORDER BY d.id LIMIT $2 + 1""")

INSERT = f"""
INSERT INTO api_keys (restaurant_id, name, prefix, key_hash, scopes, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {COLUMNS}
"""

REVOKE = f"""
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE restaurant_id = $1 AND id = $2
RETURNING {COLUMNS}
"""


async def list_keys(pool: asyncpg.Pool, restaurant_id: int, limit: int,
                    after: int) -> tuple[Page, int]:
    return await fetch_page(pool, LIST, restaurant_id, limit, after)


async def create(pool: asyncpg.Pool, restaurant_id: int, body: ApiKeyIn,
                 created_by: int | None) -> tuple[CreatedApiKey, int]:
    key = new_token(API_KEY_PREFIX)
    scopes = sorted(set(body.scopes))
    async with events.write(pool) as tx:
        row = await tx.conn.fetchrow(INSERT, restaurant_id, body.name, key[:10], token_hash(key),
                                     scopes, created_by)
        tx.emit(restaurant_id, "manager", "api_key.created",
                {"api_key_id": row["id"], "name": body.name, "scopes": scopes})
    return CreatedApiKey(api_key=ApiKey(**row), key=key), tx.last_seq[restaurant_id]


async def revoke(pool: asyncpg.Pool, restaurant_id: int, key_id: int) -> tuple[ApiKey, int]:
    async with events.write(pool) as tx:
        row = await tx.conn.fetchrow(REVOKE, restaurant_id, key_id)
        if row is None:
            raise NotFound("no such API key")
        tx.emit(restaurant_id, "manager", "api_key.revoked", {"api_key_id": key_id})
    return ApiKey(**row), tx.last_seq[restaurant_id]
