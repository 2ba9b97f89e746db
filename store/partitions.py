"""Monthly partitions of the event log: made ahead of time, dropped whole when past retention.

Months are UTC calendar months, named `events_YYYY_MM`. The upkeep task makes the current
month and the next two (a write never waits on DDL, and a missed round or two changes
nothing); a row that still finds no month lands in `events_default` and is moved into its
month when that month is made. A month whose last instant is older than the retention is
detached and dropped in one transaction that first marks, per restaurant, the highest seq it
held as purged: clients behind that mark reset instead of resuming across a gap.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime

import asyncpg

PARTITION_LOCK = 0x5E27_0E7E  # upkeep rounds of several processes take turns
AHEAD = 2  # months made beyond the current one
_MONTH = re.compile(r"^events_(\d{4})_(\d{2})$")

MONTHS = """
SELECT c.relname FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'events'::regclass"""


def month_start(when: datetime) -> datetime:
    return datetime(when.year, when.month, 1, tzinfo=UTC)


def add_months(month: datetime, n: int) -> datetime:
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def name_of(month: datetime) -> str:
    return f"events_{month.year:04d}_{month.month:02d}"


async def months(conn: asyncpg.Connection) -> dict[datetime, str]:
    """The monthly partitions there are, by the month each holds."""
    found = {}
    for row in await conn.fetch(MONTHS):
        match = _MONTH.match(row["relname"])
        if match:
            found[datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)] = row["relname"]
    return found


async def make_month(conn: asyncpg.Connection, month: datetime) -> bool:
    """Make `month`'s partition unless it exists, moving in any rows the default one holds
    for it. True when it was made."""
    name, ends = name_of(month), add_months(month, 1)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK)
        if month in await months(conn):
            return False
        await conn.execute(f'CREATE TABLE "{name}" (LIKE events INCLUDING DEFAULTS '
                           "INCLUDING CONSTRAINTS)")
        await conn.execute(f"""
            WITH moved AS (DELETE FROM events_default WHERE at >= $1 AND at < $2 RETURNING *)
            INSERT INTO "{name}" SELECT * FROM moved""", month, ends)
        await conn.execute(f"""ALTER TABLE events ATTACH PARTITION "{name}"
                               FOR VALUES FROM ('{month.isoformat()}') TO ('{ends.isoformat()}')""")
    return True


async def make_ahead(pool: asyncpg.Pool, now: datetime | None = None) -> list[str]:
    """The current month and the next AHEAD, made where missing; the names made."""
    this = month_start(now or datetime.now(UTC))
    made = []
    async with pool.acquire() as conn:
        for n in range(AHEAD + 1):
            if await make_month(conn, add_months(this, n)):
                made.append(name_of(add_months(this, n)))
    return made


async def drop_past(pool: asyncpg.Pool, retention_hours: float) -> list[str]:
    """Detach and drop every month that ended more than `retention_hours` ago (and delete
    rows that old from the default partition); the names dropped."""
    dropped = []
    async with pool.acquire() as conn:
        cutoff = await conn.fetchval("SELECT now() - make_interval(hours => $1)", retention_hours)
        for month, name in sorted((await months(conn)).items()):
            if add_months(month, 1) > cutoff:
                break
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK)
                await conn.execute(MARK_PURGED.format(source=f'"{name}"'))
                await conn.execute(f'ALTER TABLE events DETACH PARTITION "{name}"')
                await conn.execute(f'DROP TABLE "{name}"')
            dropped.append(name)
        await conn.execute(PURGE_DEFAULT, cutoff)
    return dropped


MARK_PURGED = """
UPDATE restaurants r SET purged_through_seq = greatest(r.purged_through_seq, gone.seq)
FROM (SELECT restaurant_id, max(seq) AS seq FROM {source} GROUP BY restaurant_id) gone
WHERE r.id = gone.restaurant_id"""

PURGE_DEFAULT = """
WITH gone AS (DELETE FROM events_default WHERE at < $1 RETURNING restaurant_id, seq)
UPDATE restaurants r SET purged_through_seq = greatest(r.purged_through_seq, g.seq)
FROM (SELECT restaurant_id, max(seq) AS seq FROM gone GROUP BY restaurant_id) g
WHERE r.id = g.restaurant_id"""
