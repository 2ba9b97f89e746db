"""What PostgreSQL can say about our statements: plans (never executed) and pg_stat_statements.

Only the performance report calls these, on demand; nothing here runs per request.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
import msgspec

LARGE_TABLE_ROWS = 10_000  # a sequential scan of a table this size or larger is worth a look
EXPLAINABLE = ("select", "with", "insert", "update", "delete", "values", "table")

# Estimated rows of the tables a plan scans (reltuples is -1 before the first ANALYZE).
TABLE_ROWS = """
SELECT name, greatest(c.reltuples, 0)::bigint AS rows
FROM unnest($1::text[]) AS name
JOIN pg_class c ON c.oid = to_regclass(quote_ident(name))
"""

PREPARED = "serveline_explain"
PARAMETER_COUNT = "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = $1"

HAS_EXTENSION = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = $1)"

TOP_STATEMENTS = """
SELECT query, calls, total_exec_time, mean_exec_time, max_exec_time, rows
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC
LIMIT $1
"""


class SeqScan(msgspec.Struct, frozen=True):
    """A sequential scan of a large table in a statement's plan."""

    pattern: str
    table: str
    rows: int  # the table's estimated rows (pg_class.reltuples)
    filter: str | None  # the condition applied row by row, if any
    advice: str


class StatementStats(msgspec.Struct, frozen=True):
    query: str
    calls: int
    total_ms: float
    mean_ms: float
    max_ms: float
    rows: int


class StatementStatsReport(msgspec.Struct, frozen=True):
    available: bool
    note: str | None
    statements: list[StatementStats]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def explainable(sql: str) -> bool:
    """One statement of a kind EXPLAIN takes (not BEGIN, SET, a script …)."""
    text = sql.strip().rstrip(";")
    return text.lower().startswith(EXPLAINABLE) and ";" not in text


async def plan_of(conn: asyncpg.Connection, sql: str) -> dict[str, Any] | None:
    """The statement's generic plan (the one that holds for any parameters) as EXPLAIN
    (FORMAT JSON) gives it; None when it cannot be had.

    The statement is PREPAREd and EXPLAIN EXECUTEd with NULLs under
    `plan_cache_mode = force_generic_plan`, so the values play no part; EXPLAIN without
    ANALYZE only plans, so writes are safe to explain. The session is left as it was.
    """
    if not explainable(sql):
        return None
    text = sql.strip().rstrip(";")
    # One transaction from PREPARE to DEALLOCATE: behind PgBouncer in transaction mode only a
    # transaction is sure to stay on one server connection.
    async with conn.transaction():
        try:
            async with conn.transaction():  # a savepoint: a failed PREPARE leaves nothing behind
                await conn.execute(f"PREPARE {PREPARED} AS {text}")
        except asyncpg.PostgresError:
            return None  # e.g. a parameter whose type PostgreSQL cannot infer on its own
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                count = await conn.fetchval(PARAMETER_COUNT, PREPARED)
                arguments = f"({', '.join(['NULL'] * count)})" if count else ""
                raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE {PREPARED}{arguments}")
        except asyncpg.PostgresError:
            return None
        finally:
            await conn.execute(f"DEALLOCATE {PREPARED}")
    document = msgspec.json.decode(raw) if isinstance(raw, (str, bytes)) else raw
    return document[0]["Plan"]


async def seq_scans(conn: asyncpg.Connection, sql: str) -> list[SeqScan] | None:
    """Sequential scans of tables of LARGE_TABLE_ROWS or more in the statement's plan."""
    plan = await plan_of(conn, sql)
    if plan is None:
        return None
    scans = [node for node in _nodes(plan) if node.get("Node Type") == "Seq Scan"]
    if not scans:
        return []
    sizes = {row["name"]: row["rows"] for row in await conn.fetch(
        TABLE_ROWS, sorted({node["Relation Name"] for node in scans}))}
    found = []
    for node in scans:
        table = node["Relation Name"]
        rows = max(sizes.get(table, 0), int(node.get("Plan Rows", 0)))
        if rows < LARGE_TABLE_ROWS:
            continue
        condition = node.get("Filter")
        advice = (f"Seq Scan on {table} (~{rows:,} rows)"
                  + (f" filtering {condition}: an index on those columns (after restaurant_id) "
                     "would avoid reading the whole table" if condition else
                     ": the whole table is read; check for a missing join or WHERE condition"))
        found.append(SeqScan(pattern="", table=table, rows=rows, filter=condition, advice=advice))
    return found


async def statement_stats(conn: asyncpg.Connection, limit: int = 20) -> StatementStatsReport:
    """This database's top statements by total time from pg_stat_statements, if it is there."""
    if conn.get_server_version().major < 13:
        return StatementStatsReport(False, "pg_stat_statements figures need PostgreSQL 13+", [])
    if not await conn.fetchval(HAS_EXTENSION, "pg_stat_statements"):
        return StatementStatsReport(
            False, "pg_stat_statements is not installed (CREATE EXTENSION pg_stat_statements, "
                   "with shared_preload_libraries = 'pg_stat_statements')", [])
    try:
        rows = await conn.fetch(TOP_STATEMENTS, limit)
    except asyncpg.PostgresError as error:  # installed but not preloaded, or not allowed
        return StatementStatsReport(False, f"pg_stat_statements: {error}", [])
    return StatementStatsReport(True, None, [
        StatementStats(query=" ".join((row["query"] or "").split())[:2000], calls=row["calls"],
                       total_ms=round(row["total_exec_time"], 3),
                       mean_ms=round(row["mean_exec_time"], 3),
                       max_ms=round(row["max_exec_time"], 3), rows=row["rows"])
        for row in rows])
