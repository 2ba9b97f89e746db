"""The asyncpg pool: msgspec-backed json/jsonb codecs and server-side timeouts on every connection."""
from __future__ import annotations

from collections.abc import Callable
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


def _session_settings(statement_timeout_ms: int, idle_in_transaction_timeout_ms: int,
                      lock_timeout_ms: int, pgbouncer: bool) -> dict[str, str]:
    """Settings sent as startup parameters, so they hold for the whole session without a SET."""
    settings = {"application_name": "serveline", "timezone": "UTC"}
    if pgbouncer:
        # PgBouncer (1.18 here) refuses a connection carrying a startup parameter it does not
        # track (application_name and TimeZone it does), and a session SET would land on whichever
        # server connection the transaction got. The timeouts are then the operator's: ALTER ROLE
        # … SET them (docs/deployment.md, PgBouncer).
        return settings
    return {**settings,
            "statement_timeout": str(statement_timeout_ms),
            "idle_in_transaction_session_timeout": str(idle_in_transaction_timeout_ms),
            "lock_timeout": str(min(statement_timeout_ms, lock_timeout_ms))}


async def create_pool(dsn: str, *, min_size: int, max_size: int,
                      statement_timeout_ms: int, idle_in_transaction_timeout_ms: int,
                      lock_timeout_ms: int = 5000, pgbouncer: bool = False,
                      query_logger: Callable[[LoggedQuery], None] | None = None) -> asyncpg.Pool:
    """The pool; `pgbouncer` when `dsn` is a PgBouncer in transaction pooling mode."""
    async def init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        if query_logger is not None:
            conn.add_query_logger(query_logger)

    # Behind PgBouncer in transaction mode consecutive transactions may run on different server
    # connections, so a statement asyncpg prepared by name on one is missing on the next. Debian's
    # PgBouncer is 1.18, which cannot track prepared statements (max_prepared_statements came in
    # 1.21), so asyncpg's advice for it applies: no statement cache, hence only the unnamed
    # statement, prepared again for each query. asyncpg sends its Parse and Bind before a single
    # Sync, so PgBouncer keeps both on one server connection. (With PgBouncer >= 1.21 and
    # max_prepared_statements > 0, named statements would work too, given unique names through
    # asyncpg's prepared_statement_name_func.)
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init,
        reset=keep_session,
        statement_cache_size=0 if pgbouncer else 100,
        server_settings=_session_settings(statement_timeout_ms, idle_in_transaction_timeout_ms,
                                          lock_timeout_ms, pgbouncer),
    )


UNSET_TIMEOUTS = """
SELECT name FROM pg_settings
WHERE name IN ('statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout')
  AND setting = '0'
ORDER BY name"""


async def unset_timeouts(pool: asyncpg.Pool) -> list[str]:
    """The timeouts a pooled session runs without (behind PgBouncer they are the operator's)."""
    return [row["name"] for row in await pool.fetch(UNSET_TIMEOUTS)]


def with_database(dsn: str, database: str) -> str:
    """The same server and options, another database."""
    return urlunsplit(urlsplit(dsn)._replace(path="/" + database))
