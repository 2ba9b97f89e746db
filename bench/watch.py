"""What the bench watches while busy_hour's load runs, besides the devices' own timings.

PostgreSQL's pool connections sampled from pg_stat_activity and pg_locks (where
transactions wait, and for what), the CPU each party used and how long it was
runnable without a CPU (on a shared machine the neighbours show up there),
Serveline's event loop probed with GET /api/health, and Serveline's own view
(/api/health/performance) at the end.
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import pkgutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil

import store
from bench.servers import Server

SAMPLE_SECONDS = 0.1  # pg_stat_activity while the load runs
PROBE_SECONDS = 0.1  # GET /api/health while the load runs


ACTIVITY = """
SELECT a.pid, a.state, a.wait_event_type, a.wait_event, a.query,
       pg_blocking_pids(a.pid) AS blockers,
       (SELECT l.locktype || coalesce(' ' || l.relation::regclass::text, '')
               || CASE WHEN l.locktype = 'object'
                       THEN format(' (database %s, %s %s)', l.database, l.classid::regclass, l.objid)
                       ELSE '' END || ' ' || l.mode
        FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted LIMIT 1) AS waiting_for
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.application_name = 'serveline'
"""


def _squash(sql: str) -> str:
    return " ".join(sql.split())


def _store_statements() -> list[tuple[str, str]]:
    """Every SQL constant in store/ as (squashed text, "module.NAME")."""
    found = []
    for info in pkgutil.iter_modules(store.__path__):
        module = importlib.import_module(f"store.{info.name}")
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, str) and len(value) > 30:
                found.append((_squash(value), f"{info.name}.{name}"))
    return found


class Waits:
    """Samples the pool connections' state, wait and statement; says where time goes.

    A sample is one look at every connection; a count divided by the samples is
    the average number of connections in that state over the load.
    """

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.statements = _store_statements()
        self.labels: dict[str, str] = {}
        self.samples = 0
        self.states: Counter[str] = Counter()  # state (and wait, when active)
        self.by_statement: Counter[tuple[str, str]] = Counter()  # (statement, state/wait)
        self.lock_waits: Counter[tuple[str, str, str, str]] = Counter()
        # (waiting statement, lock, blocker's statement, blocker's state)

    def label(self, query: str) -> str:
        known = self.labels.get(query)
        if known is None:
            text = _squash(query)
            truncated = len(query.encode()) >= 1000  # track_activity_query_size cuts it
            known = next((name for sql, name in self.statements
                          if sql == text or (truncated and sql.startswith(text))), text[:80])
            self.labels[query] = known
        return known

    async def sample(self) -> None:
        rows = await self.conn.fetch(ACTIVITY)
        self.samples += 1
        by_pid = {row["pid"]: row for row in rows}
        for row in rows:
            state = row["state"] or "?"
            if state == "active":
                state = (f"active {row['wait_event_type']}:{row['wait_event']}"
                         if row["wait_event_type"] else "active on CPU")
            self.states[state] += 1
            if row["state"] == "idle":
                continue
            statement = self.label(row["query"])
            self.by_statement[(statement, state)] += 1
            if row["wait_event_type"] == "Lock":
                for pid in row["blockers"] or [None]:
                    blocker = by_pid.get(pid)
                    self.lock_waits[(statement, row["waiting_for"] or "?",
                                     self.label(blocker["query"]) if blocker else "?",
                                     blocker["state"] if blocker else "?")] += 1

    async def run(self, until: float) -> None:
        while time.monotonic() < until:
            await self.sample()
            await asyncio.sleep(SAMPLE_SECONDS)

    def report(self, top: int = 20) -> dict[str, Any]:
        n = max(self.samples, 1)
        statements: dict[str, Counter[str]] = {}
        for (statement, state), count in self.by_statement.items():
            statements.setdefault(statement, Counter())[state] += count
        busiest = sorted(statements.items(), key=lambda item: -item[1].total())[:top]
        return {
            "samples": self.samples, "interval_s": SAMPLE_SECONDS,
            "connections_by_state": {k: round(v / n, 2) for k, v in self.states.most_common()},
            "by_statement": {statement: {state: round(v / n, 3) for state, v in c.most_common()}
                             for statement, c in busiest},
            "lock_waits": [{"waiting": w, "lock": lock, "blocker": b, "blocker_state": bs,
                            "connections": round(v / n, 2)}
                           for (w, lock, b, bs), v in self.lock_waits.most_common(top)],
        }


SETTINGS = ("fsync", "synchronous_commit", "wal_sync_method", "shared_buffers", "max_connections")


async def settings(conn: asyncpg.Connection) -> dict[str, str]:
    """The PostgreSQL settings that shape commit and lock waits."""
    rows = await conn.fetch("SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1)",
                            list(SETTINGS))
    return {row["name"]: row["setting"] + (row["unit"] or "") for row in rows}


def usage(roots: list[int], children: bool = True) -> tuple[float, float]:
    """(CPU seconds, seconds runnable but waiting for a CPU) of processes and their children,
    every thread counted (the second from /proc/<pid>/task/<tid>/schedstat)."""
    cpu = waited = 0.0
    for root in roots:
        with contextlib.suppress(psutil.NoSuchProcess):
            top = psutil.Process(root)
            for proc in [top, *(top.children(recursive=True) if children else [])]:
                with contextlib.suppress(psutil.NoSuchProcess, OSError, ValueError, IndexError):
                    times = proc.cpu_times()
                    cpu += times.user + times.system
                    for task in Path(f"/proc/{proc.pid}/task").iterdir():
                        waited += int((task / "schedstat").read_text().split()[1]) / 1e9
    return cpu, waited


def busy_cpu_seconds() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, from /proc/stat."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    hertz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks[:8]) - idle) / hertz, sum(ticks[:8]) / hertz


class Machine:
    """Who had the CPUs during the load: Serveline, PostgreSQL, the clients, this process,
    everything else on the machine, and the wait for a CPU each of ours had."""

    def __init__(self, server: Server, postmaster: int, clients: list[int]) -> None:
        self.groups = {"serveline": [server.pid], "postgres": [postmaster], "clients": clients}
        self.before: dict[str, tuple[float, float]] = {}
        self.started = 0.0

    def _now(self) -> dict[str, tuple[float, float]]:
        now = {name: usage(pids) for name, pids in self.groups.items()}
        now["bench"] = usage([os.getpid()], children=False)
        now["machine"] = busy_cpu_seconds()
        return now

    def start(self) -> None:
        self.started = time.monotonic()
        self.before = self._now()

    def shares(self) -> dict[str, Any]:
        """Cores used (and, for our processes, cores' worth of waiting for a CPU) over the load."""
        seconds = time.monotonic() - self.started
        now = self._now()
        report: dict[str, Any] = {
            name: {"cpu": (now[name][0] - self.before[name][0]) / seconds,
                   "waiting_for_cpu": (now[name][1] - self.before[name][1]) / seconds}
            for name in (*self.groups, "bench")}
        busy, every = (a - b for a, b in zip(now["machine"], self.before["machine"]))
        machine = busy / every * (os.cpu_count() or 1) if every else 0.0
        report["everything_else"] = {"cpu": machine - sum(r["cpu"] for r in report.values())}
        report["machine_busy_cores"] = machine
        report["load_average"] = dict(zip(("1m", "5m", "15m"), os.getloadavg()))
        return report


async def probe_health(http: aiohttp.ClientSession, server: Server, until: float) -> list[float]:
    """`GET /api/health` (no database, no credential) every PROBE_SECONDS: its time is mostly
    the wait for Serveline's event loop. Returns [[t, ms], …] from the first probe."""
    found: list[list[float]] = []
    first = time.monotonic()
    while (sent := time.monotonic()) < until:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.get(server.url + "/api/health") as reply:
                await reply.read()
            found.append([round(sent - first, 2), (time.monotonic() - sent) * 1000])
        await asyncio.sleep(PROBE_SECONDS)
    return found


async def server_view(http: aiohttp.ClientSession, server: Server, token: str) -> dict[str, Any]:
    """Serveline's own report: its route and SQL timings (server side), pool, event lag."""
    async with http.get(server.url + "/api/health/performance",
                        headers={"Authorization": f"Bearer {token}"}) as reply:
        if reply.status != 200:
            return {"unavailable": reply.status}
        perf = await reply.json()
    return {"routes": perf["routes"], "top_sql": perf["queries"]["patterns"][:10],
            "pool": perf["pool"], "event_lag": perf["event_lag"], "process": perf["process"]}
