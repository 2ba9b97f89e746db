"""Migrations: numbered `.sql` files applied in order, each once, in its own transaction.

A session-level advisory lock makes processes that start together take turns,
so every migration is applied exactly once.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
ADVISORY_LOCK = 0x5E27E11E  # "serveline" migrations
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
APPLIED = "SELECT version FROM schema_migrations"
RECORD = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"


def available() -> list[tuple[int, str, Path]]:
    found = []
    for path in MIGRATIONS.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append((int(match[1]), match[2], path))
    return sorted(found)


async def apply_migrations(dsn: str) -> list[int]:
    """Apply what is missing; return the versions this call applied."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK)
        try:
            await conn.execute(CREATE_LEDGER)
            done = {row["version"] for row in await conn.fetch(APPLIED)}
            applied = []
            for version, name, path in available():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(path.read_text())
                    await conn.execute(RECORD, version, name)
                log.info("applied migration %04d_%s", version, name)
                applied.append(version)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK)
    finally:
        await conn.close()
