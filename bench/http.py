"""HTTP scenarios: reads and writes against the bare baseline, and a cold start.

Serveline and the baseline (bench/bare.py) run on the same PostgreSQL; wrk loads
one route at a time from 127.0.0.1 (bench/wrk.py), in interleaved rounds, who goes
first alternating, and each figure compared with the baseline is the median of the
rounds' ratios (a round's pair shares the machine's mood). Serveline is called as
the demo manager with a bearer token, every POST with an Idempotency-Key of its own.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import psutil

from bench.servers import (
    DEMO_PASSWORD,
    ROOT,
    STOP_TIMEOUT_SECONDS,
    Bench,
    Failed,
    Server,
    _environment,
    free_port,
    serveline,
    yardstick,
)
from bench.wrk import (
    CONNECTIONS,
    THREADS,
    Load,
    interleaved,
    latency,
    median_ratio,
    median_rps,
    rounds_detail,
    script,
    wrk_path,
)
from bench.ws import check_log, sign_in

P99_CONNECTIONS = 100  # order_create_p99_ms is taken at this many requests in flight
OPEN_ORDERS = 30  # on the list read by open_orders_rps, created before measuring
LINES = 4  # order lines per POST, over two courses
BODIES = 16  # distinct order bodies the write script cycles through
COLD_STARTS_FULL = 3
COLD_POLL_SECONDS = 0.02
COLD_TIMEOUT_SECONDS = 60.0


def _sizes(bench: Bench, routes: int) -> tuple[int, float, float]:
    """(rounds, seconds per run, seconds of warm-up per route); `--duration` is shared out
    over the measured runs (whole seconds, at least one each: wrk's resolution)."""
    rounds, seconds, warmup = (3, 2.0, 1.0) if bench.quick else (5, 8.0, 3.0)
    if bench.duration:
        seconds = max(1.0, round(bench.duration / (rounds * routes)))
        warmup = min(warmup, seconds)
    return rounds, seconds, warmup


# Serveline's side: the demo manager's door, orders to read, bodies to write ------------

class Door:
    """Signed in to one Serveline: token, restaurant, and a session for setting the scene."""

    def __init__(self, server: Server, http: aiohttp.ClientSession, token: str, rid: int) -> None:
        self.server, self.http, self.token, self.rid = server, http, token, rid
        self.headers = {"Authorization": f"Bearer {token}"}
        self.base = f"/api/v1/restaurants/{rid}"

    async def get(self, path: str) -> Any:
        async with self.http.get(self.server.url + path, headers=self.headers) as reply:
            if reply.status != 200:
                raise Failed(f"GET {path} answered {reply.status}: {(await reply.text())[:300]}")
            return await reply.json()

    async def order_bodies(self, count: int) -> list[bytes]:
        """`count` order bodies of LINES lines each over two courses, items from the live menu."""
        menu = await self.get(self.base + "/menu")
        items = [item["id"] for category in menu["categories"] for item in category["items"]
                 if item["available"]]
        if not items:
            raise Failed("the demo menu has no available item to order")
        return [msgspec.json.encode({"items": [
                    {"menu_item_id": items[(n * LINES + line) % len(items)], "qty": 1 + line % 2,
                     "course": 1 + line % 2} for line in range(LINES)],
                 "guests": 2 + n % 4})
                for n in range(count)]

    async def place_orders(self, bodies: list[bytes]) -> None:
        headers = {**self.headers, "Content-Type": "application/json"}
        for body in bodies:
            async with self.http.post(self.server.url + self.base + "/orders", data=body,
                                      headers=headers) as reply:
                if reply.status != 201:
                    raise Failed(f"POST orders answered {reply.status}: "
                                 f"{(await reply.text())[:300]}")

    async def menu_cache(self) -> dict[str, int]:
        """The menu's cache hits and misses so far."""
        health = await self.get("/api/health/cache")
        menu = next((space for space in health["namespaces"]
                     if space["restaurant_id"] == self.rid and space["kind"] == "menu"), None)
        if menu is None:
            return {"hits": 0, "misses": 0}
        return {"hits": menu["hits"], "misses": menu["misses"]}


async def open_door(server: Server, http: aiohttp.ClientSession) -> Door:
    token, rid = await sign_in(server)
    return Door(server, http, token, rid)


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                 timeout=aiohttp.ClientTimeout(total=30))


async def analyze(bench: Bench, *servers: Server) -> None:
    """ANALYZE each server's database. A scenario's database is new and its tables were empty
    until the warm-up; a live one has statistics (autovacuum analyzes a table once enough rows
    changed, within its 60 s naptime). Without this, plans cached while the tables were empty
    (seq scans and joins sized for no rows) would be measured instead of the steady state."""
    for server in servers:
        conn = await asyncpg.connect(server.dsn)
        try:
            await conn.execute("ANALYZE")
        finally:
            await conn.close()
    bench.progress("analyzed the databases (statistics as a live database has them)")


# reads ------------------------------------------------------------------------

async def reads(bench: Bench) -> dict[str, Any]:
    """The cached menu vs /hello, and the open orders list (uncached) vs /db."""
    wrk_path()
    rounds, seconds, warmup = _sizes(bench, 4)
    async with AsyncExitStack() as stack:
        app = await stack.enter_async_context(serveline(bench, "reads"))
        bare = await stack.enter_async_context(yardstick(bench, "reads"))
        http = await stack.enter_async_context(_session())
        door = await open_door(app, http)
        await door.place_orders(await door.order_bodies(OPEN_ORDERS))
        listed = await door.get(door.base + "/orders?status=open")
        if len(listed["items"]) != OPEN_ORDERS:
            raise Failed(f"the open orders list holds {len(listed['items'])}, not {OPEN_ORDERS}")

        def get(name: str) -> Path:
            return script(bench, name, token=door.token)

        menu = Load(bench, "menu_cached", app, door.base + "/menu", get)
        hello = Load(bench, "yardstick_hello", bare, "/hello", get)
        orders = Load(bench, "open_orders", app, door.base + "/orders?status=open", get)
        db = Load(bench, "yardstick_db", bare, "/db", get)
        cache_before = await door.menu_cache()
        results = await interleaved(bench, [menu, hello, orders, db], rounds, seconds, warmup,
                                    settle=partial(analyze, bench, app, bare))
        cache_after = await door.menu_cache()
    check_log(bench, app)
    check_log(bench, bare)

    misses = cache_after["misses"] - cache_before["misses"]
    if misses > 2:
        bench.note(f"reads: the menu missed the cache {misses} times while measured")
    return {
        "menu_cached_rps": median_rps(results["menu_cached"]),
        "yardstick_hello_rps": median_rps(results["yardstick_hello"]),
        "ratio_menu_vs_hello": median_ratio(results["menu_cached"], results["yardstick_hello"]),
        "open_orders_rps": median_rps(results["open_orders"]),
        "yardstick_db_rps": median_rps(results["yardstick_db"]),
        "ratio_orders_vs_db": median_ratio(results["open_orders"], results["yardstick_db"]),
        "details": {"reads": {
            "rounds": rounds, "seconds_per_run": seconds, "connections": CONNECTIONS,
            "wrk_threads": THREADS, "open_orders": OPEN_ORDERS, "order_lines": LINES,
            "menu_bytes_per_answer": results["menu_cached"][0]["bytes"]
            / results["menu_cached"][0]["requests"],
            "orders_bytes_per_answer": results["open_orders"][0]["bytes"]
            / results["open_orders"][0]["requests"],
            "menu_cache_misses_while_measured": misses,
            "latency": latency(results),
            **{f"{name}_rounds": rounds_detail(runs) for name, runs in results.items()}}},
    }


# writes -----------------------------------------------------------------------

async def writes(bench: Bench) -> dict[str, Any]:
    """POST orders (signed in, validated, Idempotency-Key, outbox + notify) vs POST /write,
    and POST orders' p99 at 100 requests in flight."""
    wrk_path()
    rounds, seconds, warmup = _sizes(bench, 3)
    async with AsyncExitStack() as stack:
        app = await stack.enter_async_context(serveline(bench, "writes"))
        bare = await stack.enter_async_context(yardstick(bench, "writes"))
        http = await stack.enter_async_context(_session())
        door = await open_door(app, http)
        bodies = await door.order_bodies(BODIES)
        run_id = uuid.uuid4().hex[:12]

        def keyed(name: str) -> Path:
            return script(bench, name, token=door.token, method="POST", bodies=bodies,
                          key_prefix=f"{run_id}-{name}")

        def plain(name: str) -> Path:
            return script(bench, name, method="POST", bodies=bodies[:1])

        order = Load(bench, "order_create", app, door.base + "/orders", keyed)
        write = Load(bench, "yardstick_write", bare, "/write", plain)
        crowded = Load(bench, "order_create_100", app, door.base + "/orders", keyed,
                       P99_CONNECTIONS)
        crowded_write = Load(bench, "yardstick_write_100", bare, "/write", plain, P99_CONNECTIONS)
        results = await interleaved(bench, [order, write, crowded, crowded_write], rounds, seconds,
                                    warmup,
                                    settle=partial(analyze, bench, app, bare))
        answered = sum(run["requests"] for load in (order, crowded) for run in results[load.name])
        created = await count_orders(app)
        if created < answered:  # a replayed key answers 201 too: count what was really made
            raise Failed(f"wrk had {answered} orders answered, the database holds {created}: "
                         "Idempotency-Keys repeated")
    check_log(bench, app)
    check_log(bench, bare)

    return {
        "order_create_rps": median_rps(results["order_create"]),
        "yardstick_write_rps": median_rps(results["yardstick_write"]),
        "ratio_order_vs_write": median_ratio(results["order_create"], results["yardstick_write"]),
        "order_create_p99_ms": statistics.median(run["p99_ms"]
                                                 for run in results["order_create_100"]),
        # The same 100 in flight on the yardstick's one-row write: what the machine allows.
        "yardstick_write_p99_ms": statistics.median(run["p99_ms"]
                                                    for run in results["yardstick_write_100"]),
        "details": {"writes": {
            "rounds": rounds, "seconds_per_run": seconds, "connections": CONNECTIONS,
            "p99_connections": P99_CONNECTIONS, "wrk_threads": THREADS, "order_lines": LINES,
            "order_create_100_rps": median_rps(results["order_create_100"]),
            # Little's law: with 100 requests always in flight, the mean latency is 100 / rps.
            "order_create_100_mean_bound_ms": P99_CONNECTIONS * 1000
            / median_rps(results["order_create_100"]),
            "orders_in_database": created, "latency": latency(results),
            **{f"{name}_rounds": rounds_detail(runs) for name, runs in results.items()}}},
    }


async def count_orders(server: Server) -> int:
    conn = await asyncpg.connect(server.dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM orders")
    finally:
        await conn.close()


# cold_start -------------------------------------------------------------------

def _stop_leftover_postgres(pgdata: Path) -> bool:
    """Stop a cluster left running under `pgdata` (its owner was killed); True if there was one."""
    pidfile = pgdata / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    if not psutil.pid_exists(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown
    with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
        psutil.Process(pid).wait(STOP_TIMEOUT_SECONDS)
    return True


async def _start_timed(bench: Bench, data_dir: Path, label: str) -> tuple[Server, float]:
    """`python run.py` on `data_dir` with its embedded PostgreSQL: seconds from spawn until
    /api/health answers 200."""
    port = free_port()
    started = time.monotonic()
    server = Server("serveline", [sys.executable, "run.py", "--port", str(port),
                                  "--data-dir", str(data_dir)],
                    _environment(SERVELINE_DEMO_PASSWORD=DEMO_PASSWORD, SERVELINE_SEED_DEMO="true"),
                    bench.folder / f"serveline-cold-{label}.log", port, "")
    bench.started.append(server)
    try:
        async with _session() as http, asyncio.timeout(COLD_TIMEOUT_SECONDS):
            while True:
                if server.proc.poll() is not None:
                    raise Failed(f"run.py exited with {server.proc.returncode} while starting; "
                                 f"its log ({server.log}):\n{server.tail()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(server.url + "/api/health") as reply:
                        if reply.status == 200:
                            return server, time.monotonic() - started
                await asyncio.sleep(COLD_POLL_SECONDS)
    except BaseException as error:
        server.stop()
        if isinstance(error, TimeoutError):
            raise Failed(f"run.py did not answer /api/health in {COLD_TIMEOUT_SECONDS:.0f} s; "
                         f"its log ({server.log}):\n{server.tail()}") from None
        raise


async def _import_seconds() -> float:
    """Seconds a fresh interpreter takes to import run.py (the part of a start before any I/O)."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "import run", cwd=ROOT)
    try:
        async with asyncio.timeout(COLD_TIMEOUT_SECONDS):
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return time.monotonic() - started


def _stop(bench: Bench, server: Server, pgdata: Path) -> None:
    code = server.stop()
    if code not in (0, -signal.SIGTERM):
        bench.note(f"cold_start: run.py ended with {code} ({server.log})")
    if _stop_leftover_postgres(pgdata):
        bench.note(f"cold_start: run.py left its PostgreSQL running under {pgdata}; stopped it")


async def cold_start(bench: Bench) -> dict[str, Any]:
    """Seconds from `python run.py` on an existing data dir (embedded PostgreSQL, migrated,
    seeded) until /api/health answers 200."""
    starts = 1 if bench.quick else COLD_STARTS_FULL
    data_dir = bench.folder / "cold-start-data"
    imports = await _import_seconds()
    bench.progress(f"cold_start: importing run.py and what it needs: {imports:.2f} s")
    pgdata = data_dir / "pg"
    try:
        first, first_seconds = await _start_timed(bench, data_dir, "first")
        _stop(bench, first, pgdata)
        bench.progress(f"cold_start: first start (initdb, migrate, seed): {first_seconds:.2f} s")
        timings = []
        for index in range(starts):
            server, seconds = await _start_timed(bench, data_dir, f"{index + 1}")
            _stop(bench, server, pgdata)
            check_log(bench, server)
            timings.append(seconds)
            bench.progress(f"cold_start: start {index + 1} on the existing data dir: "
                           f"{seconds:.2f} s")
    finally:
        _stop_leftover_postgres(pgdata)
    return {"cold_start_s": statistics.median(timings),
            "details": {"cold_start": {"starts": starts, "timings_s": timings,
                                       "first_start_s": first_seconds, "import_s": imports}}}


SCENARIOS: dict[str, Callable[[Bench], Awaitable[dict[str, Any]]]] = {
    "reads": reads,
    "writes": writes,
    "cold_start": cold_start,
}
