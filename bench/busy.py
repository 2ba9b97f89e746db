"""busy_hour: twenty restaurants at the peak of service, every device on its own token.

Per restaurant 5 servers' iPads place, fire and add to orders (100 order writers
in all), a kitchen screen per station starts and bumps tickets, an expo screen
serves and closes orders, a host stand seats parties and turns tables, a
manager polls the dashboard (bench/rush.py runs them in client processes). The
figures are client-side: API percentiles per route, order POST start → ticket on
the station's screen, and every socket's seqs checked against the events table.
While the load runs, PostgreSQL's view of the pool connections is sampled
(pg_stat_activity, pg_locks) to say where requests wait. All load goes to
127.0.0.1; load time is `--duration` (default 60 s, 20 s with `--quick`); every
wait is bounded.
"""
from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import asyncpg
import psutil

from bench.devices import DiningTable, MenuItem, Restaurant
from bench.rush import Rush
from bench.servers import DEMO_PASSWORD, Bench, Failed, Server, serveline
from bench.watch import Machine, Waits, probe_health, server_view, settings
from bench.ws import check_log, open_pool
from store import seed

RESTAURANTS, IPADS = 20, 5
TINY_RESTAURANTS, TINY_IPADS = 2, 2  # --quick with --duration under TINY_SECONDS
TINY_SECONDS = 10.0
FULL_SECONDS, QUICK_SECONDS = 60.0, 20.0
PROGRESS_SECONDS = 3.0
FINISH_TIMEOUT_SECONDS = 20.0  # in-flight requests and chores after the deadline
DRAIN_TIMEOUT_SECONDS = 15.0  # sockets catching up with the last events
SETUP_CONCURRENCY = 4
SHARED_MACHINE_CORES = 0.25  # other work busier than this during the load is noted
SEED = 20251125


# Restaurants, seeded and equipped --------------------------------------------------

async def seed_restaurants(pool: asyncpg.Pool, count: int) -> list[tuple[str, str]]:
    """The demo and `count - 1` more laid out like it (store.seed), with the demo's password;
    returns each one's (slug, staff email domain)."""
    password_hash = await pool.fetchval(
        "SELECT password_hash FROM users WHERE email = 'manager@demo.test'")
    made = [("demo", "demo.test")]
    for n in range(1, count):
        slug, domain = f"busy-{n:02d}", f"busy{n:02d}.test"
        await seed.seed_restaurant(pool, slug=slug, name=f"Busy Bistro {n}",
                                   password_hash=password_hash, email_domain=domain)
        made.append((slug, domain))
    return made


async def _api(http: aiohttp.ClientSession, method: str, url: str, token: str | None = None,
               body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, json=body, headers=headers) as reply:
        if reply.status >= 300:
            raise Failed(f"setup: {method} {url} answered {reply.status}: "
                         f"{(await reply.text())[:300]}")
        return await reply.json()


async def equip(http: aiohttp.ClientSession, server: Server, slug: str, domain: str,
                ipads: int) -> Restaurant:
    """Sign in as the manager, read menu and floor, register every device (POST /devices)."""
    login = await _api(http, "POST", server.url + "/api/v1/auth/login",
                       body={"email": f"manager@{domain}", "password": DEMO_PASSWORD})
    token = login["token"]
    rid = next(r["id"] for r in login["restaurants"] if r["slug"] == slug)
    base = f"{server.url}/api/v1/restaurants/{rid}"
    menu = await _api(http, "GET", base + "/menu", token)
    items = [MenuItem(i["id"], i["station"], [m["id"] for m in i["modifiers"]])
             for c in menu["categories"] for i in c["items"] if i["available"]]
    floor = await _api(http, "GET", base + "/tables?limit=200", token)
    tables = [DiningTable(t["id"], t["seats"]) for t in floor["items"]]

    async def device(name: str, kind: str, role: str) -> str:
        made = await _api(http, "POST", base + "/devices", token,
                          {"name": name, "kind": kind, "role": role})
        return made["token"]

    stations = sorted({item.station for item in items})
    return Restaurant(
        rid=rid, url=server.url,
        ipads=[await device(f"iPad {n + 1}", "ipad", "server") for n in range(ipads)],
        kitchen={s: await device(f"Kitchen {s}", "screen", "kitchen") for s in stations},
        expo=await device("Expo", "screen", "server"), host=await device("Host stand", "ipad", "host"),
        manager=await device("Manager iPad", "ipad", "manager"), menu=items, tables=tables)


# Checks and figures ----------------------------------------------------------------------

ORDER_COUNTS = """
SELECT count(*) AS orders, count(*) FILTER (WHERE status = 'open') AS open,
       (SELECT count(*) FROM order_items) AS lines, (SELECT count(*) FROM tickets) AS tickets
FROM orders"""

LAST_SEQS = """
SELECT restaurant_id, channel, max(seq) AS seq FROM events
WHERE restaurant_id = ANY($1::bigint[]) GROUP BY 1, 2"""

EVENTS_AFTER = """
SELECT seq, channel FROM events WHERE restaurant_id = $1 AND seq > $2 ORDER BY seq"""


async def last_seqs(pool: asyncpg.Pool, rids: list[int]) -> dict[int, dict[str, int]]:
    last: dict[int, dict[str, int]] = {rid: {} for rid in rids}
    for row in await pool.fetch(LAST_SEQS, rids):
        last[row["restaurant_id"]][row["channel"]] = row["seq"]
    return last


async def check_seqs(pool: asyncpg.Pool, sockets: list[dict[str, Any]]) -> dict[str, Any]:
    """Each socket's seqs against the events of its channels after its first subscription:
    missing, repeated, out of order, or not of its channels."""
    found = Counter()
    worst: list[dict[str, Any]] = []
    log: dict[int, list[asyncpg.Record]] = {}
    for sock in sockets:
        rid = sock["rid"]
        if rid not in log:
            first = min(s["first_seq"] for s in sockets if s["rid"] == rid)
            log[rid] = await pool.fetch(EVENTS_AFTER, rid, first)
        channels = set(sock["channels"])
        expected = {row["seq"] for row in log[rid] if sock["first_seq"] < row["seq"] <= sock["target"]
                    and row["channel"] in channels}
        got = [seq for seq in sock["seqs"] if seq <= sock["target"]]
        held = set(got)
        problems = {"missing": len(expected - held), "duplicated": len(got) - len(held),
                    "out_of_order": sum(b <= a for a, b in itertools.pairwise(got)),
                    "foreign": len(held - expected)}
        found.update(problems)
        found["delivered"] += len(got)
        if any(problems.values()):
            worst.append({"socket": sock["name"], **problems, "closes": sock["closes"],
                          "resets": sock["resets"]})
    return {**dict(found), "sockets": len(sockets), "sockets_with_problems": worst[:20]}


PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


def percentile(ordered: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)] if ordered else float("nan")


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"count": len(ordered),
            "percentiles": {name: percentile(ordered, q) for name, q in PERCENTILES.items()},
            "max_ms": ordered[-1] if ordered else float("nan")}


def by_third(timings: list[float], sent: list[float], started: float,
             seconds: float) -> list[dict[str, float]]:
    """The spread in each third of the load: does a route slow down as orders pile up?"""
    thirds: list[list[float]] = [[], [], []]
    for ms, at in zip(timings, sent, strict=True):
        thirds[min(max(int((at - started) / seconds * 3), 0), 2)].append(ms)
    return [spread(values) for values in thirds]


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    timings: dict[str, list[float]] = {}
    sent: dict[str, list[float]] = {}
    merged: dict[str, Any] = {"errors": Counter(), "conflicts": Counter(), "statuses": Counter(),
                              "samples": [], "fired": {}, "arrived": {}}
    for report in reports:
        for route, values in report["timings"].items():
            timings.setdefault(route, []).extend(values)
            sent.setdefault(route, []).extend(report["sent"][route])
        for key in ("errors", "conflicts", "statuses"):
            merged[key].update(report[key])
        merged["samples"] += report["samples"]
        merged["fired"].update(report["fired"])
        merged["arrived"].update(report["arrived"])
    merged["timings"], merged["sent"] = timings, sent
    return merged


def to_kitchen(fired: dict[int, tuple[str, float]], arrived: dict[int, float]) -> dict[str, Any]:
    """POST start → the ticket on its station's screen, overall and by the route that fired it."""
    by_route: dict[str, list[float]] = {}
    for ticket_id, (route, started) in fired.items():
        if ticket_id in arrived:
            by_route.setdefault(route, []).append((arrived[ticket_id] - started) * 1000)
    every = [ms for values in by_route.values() for ms in values]
    return {"all": spread(every), "by_route": {r: spread(v) for r, v in by_route.items()},
            "tickets_fired": len(fired), "tickets_seen": len(every),
            "never_on_a_screen": len(fired.keys() - arrived.keys())}


def route_table(per_route: dict[str, dict[str, Any]]) -> str:
    rows = [("route", "count", "p50 ms", "p95 ms", "p99 ms", "max ms", "409", "errors")]
    for route, s in sorted(per_route.items(), key=lambda item: -item[1]["count"]):
        rows.append((route, str(s["count"]), *(f"{v:.1f}" for v in s["percentiles"].values()),
                     f"{s['max_ms']:.1f}", str(s["conflicts"]),
                     str(s["errors"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                      for i, (c, w) in enumerate(zip(row, widths)))
                     for row in rows)


# The scenario ------------------------------------------------------------------------------

def size_of(bench: Bench) -> tuple[int, int, float]:
    """(restaurants, iPads per restaurant, seconds of load)."""
    seconds = bench.duration or (QUICK_SECONDS if bench.quick else FULL_SECONDS)
    if bench.quick and seconds < TINY_SECONDS:
        return TINY_RESTAURANTS, TINY_IPADS, seconds
    return RESTAURANTS, IPADS, seconds


async def _progress(bench: Bench, rush: Rush, server: Server, started: float, seconds: float,
                    until: float) -> list[list[float]]:
    """A line every few seconds while the load runs; returns [[t, requests/s], …]."""
    last_requests, last_at, server_cpu = 0, started, server.cpu_seconds()
    throughput: list[list[float]] = []
    while (now := time.monotonic()) < until:
        await asyncio.sleep(min(PROGRESS_SECONDS, max(until - now, 0.05)))
        states = await rush.each("progress", timeout=30)
        now = time.monotonic()
        requests = sum(s["requests"] for s in states)
        bench.progress(f"busy_hour {now - started:5.1f}/{seconds:.0f} s: {requests:,} requests, "
                       f"{(requests - last_requests) / (now - last_at):,.0f}/s now, "
                       f"{sum(s['errors'] for s in states)} errors, "
                       f"{sum(s['conflicts'] for s in states)} conflicts; CPU: serveline "
                       f"{(server.cpu_seconds() - server_cpu) / (now - started):.0%}, clients "
                       + " ".join(f"{s['cpu_seconds'] / (now - started):.0%}" for s in states))
        throughput.append([round(now - started, 1),
                           round((requests - last_requests) / (now - last_at), 1)])
        last_requests, last_at = requests, now
    return throughput


async def busy_hour(bench: Bench) -> dict[str, Any]:
    """The peak of service in 20 restaurants (100 order writers); API and kitchen latency, loss."""
    restaurants, ipads, seconds = size_of(bench)
    # Half the cores at most (and at least 2): the devices need little CPU, the server and
    # PostgreSQL need their share.
    processes = max(1, min(bench.processes, restaurants, max(2, (os.cpu_count() or 2) // 2)))
    size: dict[str, Any] = {"restaurants": restaurants, "ipads_per_restaurant": ipads,
                            "order_writers": restaurants * ipads, "load_seconds": seconds,
                            "client_processes": processes}
    async with AsyncExitStack() as stack:
        app = await stack.enter_async_context(serveline(bench, "busy"))
        pool = await open_pool(app)
        stack.push_async_callback(pool.close)
        made = await seed_restaurants(pool, restaurants)
        http = await stack.enter_async_context(
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()))
        gate = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def equipped(slug: str, domain: str) -> Restaurant:
            async with gate:
                return await equip(http, app, slug, domain, ipads)

        places = list(await asyncio.gather(*(equipped(s, d) for s, d in made)))
        rush = await stack.enter_async_context(Rush(processes))
        ready = await rush.setup([places[i::processes] for i in range(processes)], SEED)
        size["sockets"] = sum(r["sockets"] for r in ready)
        bench.progress(f"busy_hour: {restaurants} restaurants × {ipads} iPads, "
                       f"{sum(r['sockets'] for r in ready)} sockets open, {processes} client "
                       f"processes; {seconds:g} s of load")

        sampler = await asyncpg.connect(app.dsn)
        stack.push_async_callback(sampler.close)
        waits = Waits(sampler)
        size["postgres_settings"] = await settings(sampler)
        backend = await sampler.fetchval("SELECT pg_backend_pid()")
        machine = Machine(app, psutil.Process(backend).ppid(), rush.pids)
        machine.start()
        started = time.monotonic()
        deadline = started + seconds
        await rush.each("go", deadline)
        _, size["throughput"], probes = await asyncio.gather(
            waits.run(deadline), _progress(bench, rush, app, started, seconds, deadline),
            probe_health(http, app, deadline))
        size["health_probe"] = {
            "why": "GET /api/health every 0.1 s: mostly the wait for Serveline's event loop",
            **spread([ms for _, ms in probes]),
            "by_third": by_third([ms for _, ms in probes], [started + t for t, _ in probes],
                                 started, seconds),
            "series": probes}
        cpu = machine.shares()
        finished = await rush.each("finish", FINISH_TIMEOUT_SECONDS,
                                   timeout=FINISH_TIMEOUT_SECONDS + 10)
        rids = [place.rid for place in places]
        sockets = [s for share in await rush.each("drain", await last_seqs(pool, rids),
                                                  DRAIN_TIMEOUT_SECONDS,
                                                  timeout=DRAIN_TIMEOUT_SECONDS + 10)
                   for s in share]
        merged = merge_reports(await rush.each("report"))
        merged["started"] = started
        size["orders_at_the_end"] = dict(await pool.fetchrow(ORDER_COUNTS))
        seqs = await check_seqs(pool, sockets)
        token = (await _api(http, "POST", app.url + "/api/v1/auth/login",
                            body={"email": "manager@demo.test", "password": DEMO_PASSWORD}))["token"]
        seen = await server_view(http, app, token)
    check_log(bench, app)
    return _figures(bench, merged, seqs, waits, cpu, finished, seen, size)


def _figures(bench: Bench, merged: dict[str, Any], seqs: dict[str, Any], waits: Waits,
             cpu: dict[str, Any], finished: list[dict[str, Any]], seen: dict[str, Any],
             size: dict[str, Any]) -> dict[str, Any]:
    seconds = size["load_seconds"]
    per_route = {}
    for route, values in merged["timings"].items():
        per_route[route] = {**spread(values), "conflicts": merged["conflicts"].get(route, 0),
                            "errors": sum(n for kind, n in merged["errors"].items()
                                          if kind.startswith(route + " ")),
                            "by_third": by_third(values, merged["sent"][route],
                                                 merged["started"], seconds)}
    every = spread([ms for values in merged["timings"].values() for ms in values])
    kitchen = to_kitchen(merged["fired"], merged["arrived"])
    errors = sum(merged["errors"].values())
    print(route_table(per_route), flush=True)
    bench.progress("busy_hour cores used (and waiting for a CPU): " + ", ".join(
        f"{name} {c['cpu']:.2f}" + (f" ({c['waiting_for_cpu']:.2f})" if "waiting_for_cpu" in c else "")
        for name, c in cpu.items() if isinstance(c, dict) and "cpu" in c)
        + f" of {os.cpu_count()}; load average {cpu['load_average']['1m']:.1f}")
    if errors:
        bench.note(f"busy_hour: {errors} errors: {dict(merged['errors'].most_common(8))}; first: "
                   f"{merged['samples'][:3]}")
    if kitchen["never_on_a_screen"]:
        bench.note(f"busy_hour: {kitchen['never_on_a_screen']} fired tickets never reached "
                   f"their station's screen")
    if seqs.get("duplicated") or seqs.get("out_of_order") or seqs.get("foreign"):
        bench.note(f"busy_hour: sockets got events repeated, out of order or of other channels: "
                   f"{seqs['sockets_with_problems'][:3]}")
    late = sum(f["late"] for f in finished)
    if late:
        bench.note(f"busy_hour: {late} requests or chores still running "
                   f"{FINISH_TIMEOUT_SECONDS:g} s after the deadline were cancelled")
    others = cpu["everything_else"]["cpu"]
    if others > SHARED_MACHINE_CORES:
        bench.note(f"busy_hour: other work on this machine used {others:.2f} of its "
                   f"{os.cpu_count()} cores during the load (load average "
                   f"{cpu['load_average']['1m']:.1f}); the latencies carry that wait")
    probe = size["health_probe"]
    bench.progress("busy_hour GET /api/health (the event loop's wait) p50/p99 by third: " + ", ".join(
        f"{t['percentiles']['p50']:.1f}/{t['percentiles']['p99']:.1f} ms" for t in probe["by_third"]))
    client_share = cpu["clients"]["cpu"] / size["client_processes"]
    if client_share > 0.9:
        bench.note(f"busy_hour: the client processes were busy {client_share:.0%} of the time: "
                   f"client-side timings include their own queueing")
    requests = every["count"] + errors
    return {
        "api_p50_ms": every["percentiles"]["p50"],
        "api_p95_ms": every["percentiles"]["p95"],
        "api_p99_ms": every["percentiles"]["p99"],
        "order_to_kitchen_p99_ms": kitchen["all"]["percentiles"]["p99"],
        "events_lost": seqs.get("missing", 0),
        "events_duplicated": seqs.get("duplicated", 0),
        "errors": errors,
        "conflicts": sum(merged["conflicts"].values()),
        "busy_requests_per_s": requests / seconds,
        "details": {"busy_hour": {
            **size,
            "requests": requests,
            "cores_used": cpu,
            "api": every, "routes": per_route,
            "order_to_kitchen": kitchen,
            "events": seqs,
            "errors": dict(merged["errors"]), "error_samples": merged["samples"],
            "conflicts": dict(merged["conflicts"]), "statuses": dict(merged["statuses"]),
            "postgres_waits": waits.report(),
            "serveline_view": seen,
        }},
    }


SCENARIOS: dict[str, Callable[[Bench], Awaitable[dict[str, Any]]]] = {"busy_hour": busy_hour}
