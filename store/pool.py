"""The asyncpg pool: msgspec-backed json/jsonb codecs and server-side timeouts on every connection."""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

_encode = msgspec.json.encode
_decode = msgspec.json.decode


def _jsonb_encode(value: object) -> bytes:
    return b"\x01" + _encode(value)  # binary jsonb: a version byte, then the text


def _jsonb_decode(data: bytes) -> object:
    return _decode(data[1:])


async def init_connection(conn: asyncpg.Connection) -> None:
    """Register the json codecs once per connection (asyncpg calls this on connect)."""
    await conn.set_type_codec("jsonb", schema="pg_catalog", format="binary",
                              encoder=_jsonb_encode, decoder=_jsonb_decode)
    await conn.set_type_codec("json", schema="pg_catalog", format="binary",
                              encoder=_encode, decoder=_decode)


async def create_pool(dsn: str, *, min_size: int, max_size: int,
                      statement_timeout_ms: int, idle_in_transaction_timeout_ms: int) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        server_settings={
            "application_name": "serveline",
            "timezone": "UTC",
            "statement_timeout": str(statement_timeout_ms),
            "idle_in_transaction_session_timeout": str(idle_in_transaction_timeout_ms),
            "lock_timeout": str(min(statement_timeout_ms, 5000)),
        },
    )


def with_database(dsn: str, database: str) -> str:
    """The same server and options, another database."""
    return urlunsplit(urlsplit(dsn)._replace(path="/" + database))
