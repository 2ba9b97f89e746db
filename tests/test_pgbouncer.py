"""run.py behind PgBouncer in transaction pooling mode: the pool through PgBouncer, LISTEN and the
migrations' lock direct to PostgreSQL (docs/deployment.md, PgBouncer)."""
from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import asyncpg
import pytest
from faults.fleet import sign_in
from faults.processes import Cluster, RunPy, free_port

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None)  # not on PATH
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(PGBOUNCER is None, reason="pgbouncer is not installed "
                                                           "(apt-get install pgbouncer)")]
ORDERS = 20


def pgbouncer_version() -> tuple[int, ...]:
    text = subprocess.run([PGBOUNCER, "--version"], capture_output=True, text=True,
                          check=True).stdout
    return tuple(int(part) for part in re.search(r"(\d+)\.(\d+)", text).groups())


class Bouncer:
    """PgBouncer in transaction mode in front of `dsn`'s server, few server connections so
    concurrent transactions share them."""

    def __init__(self, folder: Path, dsn: str, owner: str) -> None:
        self.folder = folder
        self.port = free_port()
        parts = urlsplit(dsn)
        host = parse_qs(parts.query).get("host", [parts.hostname])[0]
        server = f"host={host} port={parts.port or 5432}"
        folder.mkdir()
        (folder / "users.txt").write_text('"postgres" ""\n')
        prepared = "max_prepared_statements = 100\n" if pgbouncer_version() >= (1, 21) else ""
        (folder / "pgbouncer.ini").write_text(
            f"[databases]\nserveline = {server} dbname=serveline\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
            "pool_mode = transaction\ndefault_pool_size = 4\nmax_client_conn = 200\n"
            f"{prepared}"
            f"logfile = {folder / 'pgbouncer.log'}\npidfile = {folder / 'pgbouncer.pid'}\n")
        if os.geteuid() == 0:  # PgBouncer will not run as root: as the cluster's owner, then
            uid = pwd.getpwnam(owner)
            os.chown(folder, uid.pw_uid, uid.pw_gid)
        self.owner = owner if os.geteuid() == 0 else None
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/serveline"

    def start(self) -> None:
        user = ["-u", self.owner] if self.owner else []
        self.proc = subprocess.Popen([PGBOUNCER, *user, str(self.folder / "pgbouncer.ini")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    async def wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 10
        while True:
            assert self.proc.poll() is None, self.log()
            try:
                conn = await asyncpg.connect(self.url, statement_cache_size=0)
                await conn.close()
                return
            except (OSError, asyncpg.PostgresError):
                assert time.monotonic() < deadline, self.log()
                await asyncio.sleep(0.1)

    def log(self) -> str:
        path = self.folder / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def test_serves_orders_and_events_behind_pgbouncer_in_transaction_mode(tmp_path):
    started = time.monotonic()
    cluster = Cluster(tmp_path)
    bouncer = server = None
    try:
        cluster.start()
        direct = await cluster.create_database("serveline")
        admin = await asyncpg.connect(direct)
        try:  # what an operator sets per database, since PgBouncer does not pass them at connect
            await admin.execute(
                "ALTER DATABASE serveline SET statement_timeout = '10s';"
                "ALTER DATABASE serveline SET lock_timeout = '5s';"
                "ALTER DATABASE serveline SET idle_in_transaction_session_timeout = '30s'")
        finally:
            await admin.close()
        bouncer = Bouncer(tmp_path / "pgbouncer", direct,
                          pwd.getpwuid(cluster.pgdata.stat().st_uid).pw_name)
        bouncer.start()
        await bouncer.wait_ready()
        server = RunPy(tmp_path, "behind-bouncer", free_port(), database_url=bouncer.url,
                       args=("--database-pgbouncer", "true"),
                       env={"DATABASE_LISTEN_URL": direct, "SERVELINE_POOL_MAX": "8",
                            "SERVELINE_SLOW_QUERY_MS": "0"})  # every pattern gets EXPLAINed
        server.start()
        await server.wait_ready(timeout=30)

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
            site = await sign_in(http, server.url)
            headers, base, item = {"Authorization": f"Bearer {site.manager}"}, site.base, site.items[0]
            ws = await http.ws_connect(base + "/ws", headers=headers)
            assert (await ws.receive_json(timeout=10))["type"] == "welcome"
            await ws.send_json({"type": "subscribe", "channels": ["orders"]})
            assert (await ws.receive_json(timeout=10))["type"] == "subscribed"

            async def place(n: int) -> tuple[int, dict]:
                keyed = {**headers, "Idempotency-Key": f"bouncer-{n}"}
                async with http.post(base + "/orders", headers=keyed,
                                     json={"items": [{"menu_item_id": item}]}) as reply:
                    return reply.status, await reply.json()

            placed = await asyncio.gather(*(place(n) for n in range(ORDERS)))
            assert [status for status, _ in placed] == [201] * ORDERS, placed
            ids = {order["id"] for _, order in placed}
            assert len(ids) == ORDERS
            again = await place(0)  # the same key answers the same order
            assert again[1]["id"] == placed[0][1]["id"]

            heard: set[int] = set()
            while heard != ids:
                event = await ws.receive_json(timeout=10)
                if event.get("name") == "order.created":
                    heard.add(event["data"]["order"]["id"])
            await ws.close()

            async with http.get(base + "/orders?status=open&limit=100", headers=headers) as reply:
                assert reply.status == 200, await reply.text()
                listed = {order["id"] for order in (await reply.json())["items"]}
            assert ids <= listed

            for _ in range(2):  # slow patterns are PREPAREd and EXPLAINed through PgBouncer
                async with http.get(server.url + "/api/health/performance",
                                    headers=headers) as reply:
                    assert reply.status == 200, await reply.text()
                    notes = (await reply.json())["queries"]["notes"]
            assert not [note for note in notes if note.startswith("no plan for")], notes

        assert server.stop() == 0
        assert server.errors() == [], server.output()[-4000:]
        assert " 500 " not in server.output()
        assert "timeouts are set per role" not in server.output()  # the ALTER DATABASE above
        assert "ERROR" not in bouncer.log(), bouncer.log()[-4000:]
    finally:
        if server is not None:
            server.close()
        if bouncer is not None:
            bouncer.close()
        cluster.close()
    assert time.monotonic() - started < 45
