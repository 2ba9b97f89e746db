"""The asyncpg pool: msgspec-backed json/jsonb codecs and server-side timeouts on every connection."""
from __future__ import annotations

from typing import Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
from asyncpg.connection import LoggedQuery

_encode = msgspec.json.encode
_decode = msgspec.json.decode

# What a query raises when the database failed rather than the query: PostgreSQL's errors, the
# socket's, asyncpg's interface errors, and asyncpg's InternalClientError ("another operation is
# in progress") for a pooled connection PostgreSQL ended (a shutdown, a restart) an instant before
# it was used. Loops that retry a failed query catch all of them, so none dies of a restart.
DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                   asyncpg.InternalClientError)


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


async def keep_session(conn: asyncpg.Connection) -> None:
    """Return a connection to the pool without asyncpg's RESET ALL round trip.

    asyncpg still rolls back any open transaction first. Pooled sessions never
    change settings, LISTEN, hold cursors or keep advisory locks (the LISTEN
    connection and migrations use connections of their own), so there is
    nothing else to reset, and every request saves a round trip per acquire.
    """


async def create_pool(dsn: str, *, min_size: int, max_size: int,
                      statement_timeout_ms: int, idle_in_transaction_timeout_ms: int,
                      lock_timeout_ms: int = 5000,
                      query_logger: Callable[[LoggedQuery], None] | None = None) -> asyncpg.Pool:
    async def init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        if query_logger is not None:
            conn.add_query_logger(query_logger)

    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init,
        reset=keep_session,
        server_settings={
            "application_name": "serveline",
            "timezone": "UTC",
            "statement_timeout": str(statement_timeout_ms),
            "idle_in_transaction_session_timeout": str(idle_in_transaction_timeout_ms),
            "lock_timeout": str(min(statement_timeout_ms, lock_timeout_ms)),
        },
    )


def with_database(dsn: str, database: str) -> str:
    """The same server and options, another database."""
    return urlunsplit(urlsplit(dsn)._replace(path="/" + database))
