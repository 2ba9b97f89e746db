"""`python run.py` as an owner runs it: embedded PostgreSQL, demo seed, clean stop, one instance per data dir."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import psutil
import pytest
from faults.processes import environment, free_port

from store.migrate import available
from store.pool import with_database

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


class Server:
    """run.py in a subprocess, its output captured to a file."""

    def __init__(self, tmp_path: Path, data_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.log = tmp_path / f"run-{uuid.uuid4().hex[:6]}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "run.py", "--data-dir", str(data_dir), "--port", str(self.port)],
            cwd=ROOT, env=environment(**env), stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text()

    async def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, self.output()
                try:
                    async with http.get(self.url + "/api/health") as response:
                        if response.status == 200 and "Serveline is running" in self.output():
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("run.py did not become ready:\n" + self.output())

    async def login(self, email: str, password: str) -> int:
        async with aiohttp.ClientSession() as http:
            async with http.post(self.url + "/api/v1/auth/login",
                                 json={"email": email, "password": password}) as response:
                return response.status

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(data_dir) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


async def test_run_py_serves_the_demo_stops_cleanly_and_reuses_its_data(tmp_path):
    data_dir = tmp_path / "var"
    server = Server(tmp_path, data_dir, SERVELINE_DEMO_PASSWORD="owner-chosen-secret")
    try:
        await server.wait_ready()
        banner = server.output()
        assert server.url in banner
        for role in ("owner", "manager", "host", "server", "kitchen"):
            assert f"{role}@demo.test" in banner
            assert await server.login(f"{role}@demo.test", "owner-chosen-secret") == 200

        second = subprocess.run([sys.executable, "run.py", "--data-dir", str(data_dir),
                                 "--port", str(free_port())], cwd=ROOT, env=environment(),
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert "another Serveline process is running" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        assert server.stop() == 0
    assert postgres_processes(data_dir) == []

    again = Server(tmp_path, data_dir)  # no password in the environment this time
    try:
        await again.wait_ready()
        assert "owner-chosen-secret" not in again.output()
        assert await again.login("owner@demo.test", "owner-chosen-secret") == 200
        # The embedded cluster loads pg_stat_statements, for the query analyzer.
        conn = await asyncpg.connect(f"postgresql://postgres@/serveline?host={data_dir / 'pg'}")
        try:
            assert await conn.fetchval("SELECT count(*) FROM pg_stat_statements") > 0
        finally:
            await conn.close()
    finally:
        assert again.stop() == 0
    assert postgres_processes(data_dir) == []


async def test_generated_demo_password_is_printed_and_works(tmp_path):
    server = Server(tmp_path, tmp_path / "var")
    try:
        await server.wait_ready()
        line = next(l for l in server.output().splitlines() if "Demo password:" in l)
        password = line.split("Demo password:")[1].split()[0]
        assert len(password) >= 12
        assert await server.login("kitchen@demo.test", password) == 200
        assert await server.login("kitchen@demo.test", password + "x") == 401
    finally:
        assert server.stop() == 0
    assert postgres_processes(tmp_path / "var") == []


async def test_migrations_started_by_two_processes_at_once_apply_once(pg_admin_dsn):
    name = f"serveline_race_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = with_database(pg_admin_dsn, name)
    try:
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, "run.py", "--migrate-only", cwd=ROOT, env=environment(DATABASE_URL=dsn),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT) for _ in range(2)]
        outputs = [(await p.communicate())[0].decode() for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        versions = [v for v, _, _ in available()]
        assert sum(f"applied migrations: {versions}" in out for out in outputs) == 1, outputs
        assert sum("none (up to date)" in out for out in outputs) == 1, outputs
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT version, count(*) FROM schema_migrations GROUP BY version "
                                    "ORDER BY version")
        finally:
            await conn.close()
        assert [(r["version"], r["count"]) for r in rows] == [(v, 1) for v in versions]
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_help_lists_every_setting_with_its_environment_variable():
    from server.config import Config, env_name
    result = subprocess.run([sys.executable, "run.py", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0
    for field in Config.__struct_fields__:
        assert env_name(field) in result.stdout, field
    for flag in ("--host", "--port", "--data-dir", "--database-url"):
        assert flag in result.stdout


def test_a_bad_setting_is_a_clear_error_not_a_traceback():
    result = subprocess.run([sys.executable, "run.py", "--port", "eighty"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30, env=environment())
    assert result.returncode != 0
    assert "port" in result.stderr and "Traceback" not in result.stderr


async def test_workers_share_one_port_and_every_worker_delivers_events(tmp_path):
    data_dir = tmp_path / "var"
    port = free_port()
    log = tmp_path / "workers.log"
    proc = subprocess.Popen([sys.executable, "run.py", "--data-dir", str(data_dir), "--port", str(port),
                             "--workers", "2"], cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env=environment(SERVELINE_DEMO_PASSWORD="two-workers-pw"))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while "Serveline is running" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
        assert "2 worker processes" in log.read_text()
        conn = await asyncpg.connect(f"postgresql://postgres@/serveline?host={data_dir / 'pg'}")
        try:
            for _ in range(300):  # the banner comes with the first worker; wait for the second
                listeners = await conn.fetchval("SELECT count(*) FROM pg_stat_activity "
                                                "WHERE application_name = 'serveline-listen'")
                if listeners == 2:
                    break
                await asyncio.sleep(0.1)
            assert listeners == 2  # one LISTEN connection per worker
        finally:
            await conn.close()
        async with aiohttp.ClientSession() as http:
            login = await (await http.post(url + "/api/v1/auth/login", json={
                "email": "manager@demo.test", "password": "two-workers-pw"})).json()
            headers = {"Authorization": f"Bearer {login['token']}"}
            rid = login["restaurants"][0]["id"]
            sockets = []
            for _ in range(12):  # the kernel spreads these over both workers
                ws = await http.ws_connect(f"{url}/api/v1/restaurants/{rid}/ws", headers=headers)
                assert (await ws.receive_json())["type"] == "welcome"
                await ws.send_json({"type": "subscribe", "channels": ["floor"]})
                assert (await ws.receive_json())["type"] == "subscribed"
                sockets.append(ws)
            party = await (await http.post(f"{url}/api/v1/restaurants/{rid}/waitlist", headers=headers,
                                           json={"name": "Everyone", "size": 2})).json()
            for ws in sockets:
                event = await ws.receive_json(timeout=10)
                assert event["name"] == "waitlist.added" and event["data"]["party"]["id"] == party["id"]
                await ws.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    assert postgres_processes(data_dir) == []


async def test_backup_while_serving_and_restore_only_once_stopped(tmp_path):
    data_dir, dump = tmp_path / "var", tmp_path / "night.dump"
    server = Server(tmp_path, data_dir, SERVELINE_DEMO_PASSWORD="owner-chosen-secret")

    def run_py(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "run.py", *args, "--data-dir", str(data_dir)],
                              cwd=ROOT, env=environment(), capture_output=True, text=True,
                              timeout=120)
    try:
        await server.wait_ready()
        backed_up = await asyncio.to_thread(run_py, "backup", str(dump))
        assert backed_up.returncode == 0, backed_up.stderr
        assert dump.stat().st_size > 0
        refused = await asyncio.to_thread(run_py, "restore", str(dump))
        assert refused.returncode == 2 and "Stop it before restoring" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert await server.login("owner@demo.test", "owner-chosen-secret") == 200
    finally:
        assert server.stop() == 0
    restored = await asyncio.to_thread(run_py, "restore", str(dump))
    assert restored.returncode == 0, restored.stderr
    again = Server(tmp_path, data_dir)
    try:
        await again.wait_ready()
        assert await again.login("owner@demo.test", "owner-chosen-secret") == 200
    finally:
        assert again.stop() == 0
    assert postgres_processes(data_dir) == []
