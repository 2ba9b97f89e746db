"""Keyset pages rendered by PostgreSQL: `{"items": [...], "next": cursor|null}` plus the seq they reflect.

A list query is an inner SELECT that yields, per row, `j` (the row as JSON),
`cursor` (a JSON array of its sort key) and `n` (its row number in sort order),
fetching one row more than the page (`LIMIT $2 + 1`) to know whether more follow.
`paged()` wraps it so that one statement returns the page, the cursor of its
last row, and the restaurant's seq, all from one snapshot.
"""
from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

import asyncpg
import msgspec

from store.errors import BadCursor

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(msgspec.Struct, frozen=True):
    items: msgspec.Raw
    next: str | None


def paged(inner: str) -> str:
    """$1 restaurant id, $2 page size; the inner query may use further parameters."""
    return f"""
SELECT r.seq,
       coalesce(json_agg(p.j ORDER BY p.n) FILTER (WHERE p.n <= $2), '[]')::text AS items,
       (array_agg(p.cursor::text) FILTER (WHERE p.n = $2))[1] AS last,
       count(p.n) > $2 AS more
FROM restaurants r
LEFT JOIN LATERAL ({inner}) p ON true
WHERE r.id = $1
GROUP BY r.seq
"""


def encode_cursor(raw_json: str) -> str:
    return base64.urlsafe_b64encode(raw_json.encode()).decode().rstrip("=")


Key = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]  # a cursor's id fits a bigint


def decode_cursor(cursor: str, kind: Any) -> Any:
    """The sort key a cursor stands for, typed as `kind` (e.g. `tuple[Key]`)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=kind)
    except (binascii.Error, ValueError, msgspec.MsgspecError):
        raise BadCursor("this cursor is not one we gave out; start again without it") from None


async def fetch_page(conn: asyncpg.Connection | asyncpg.Pool, sql: str, restaurant_id: int,
                     limit: int, *args: Any) -> tuple[Page, int]:
    row = await conn.fetchrow(sql, restaurant_id, limit, *args)
    next_cursor = encode_cursor(row["last"]) if row["more"] else None
    return Page(items=msgspec.Raw(row["items"].encode()), next=next_cursor), row["seq"]
