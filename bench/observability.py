"""What observability costs: POST orders with metrics and query statistics on, and off.

Two Serveline servers run the same code on databases of their own in the same
cluster; only `SERVELINE_METRICS` and `SERVELINE_QUERY_STATS` differ (the per-request
statement count and slow-query warnings, which predate them, run in both). Rounds
alternate between the two, who goes first alternating too, so the machine's drift
falls on both. The figure is server CPU per request, on / off: the cost of the
middleware, the per-statement pattern timing and the lag hook; throughput is shown
beside it. On a shared machine that ratio carries a few percent of noise, so the
hooks are also timed in this process (`observe_hot_path_us`: what one POST orders
adds, its statements included) and set against the server's CPU per request.
All load goes to 127.0.0.1 and every wait is bounded.
"""
from __future__ import annotations

import asyncio
import statistics
import time
import timeit
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import msgspec
from asyncpg.connection import LoggedQuery
from prometheus_client.parser import text_string_to_metric_families

from bench.servers import Bench, Failed, Server, serveline
from bench.ws import check_log, sign_in
from server.metrics import Metrics
from server.querylog import QueryLog

STATEMENTS_PER_ORDER = 10  # docs/api.md: POST orders (6 lines, 2 courses) runs 10 statements
CONCURRENCY = 8  # requests in flight, below the pool's 10 connections
LINES = 6  # order lines per POST, over two courses (docs/api.md's round-trip example)
WARMUP_REQUESTS = 100
REQUEST_TIMEOUT_SECONDS = 30.0
ROUND_TIMEOUT_SECONDS = 300.0
ORDERS_ROUTE = "/api/v1/restaurants/{rid}/orders"
MODES = {"on": {"SERVELINE_METRICS": "true", "SERVELINE_QUERY_STATS": "true"},
         "off": {"SERVELINE_METRICS": "false", "SERVELINE_QUERY_STATS": "false"}}


class Door:
    """One server's order endpoint, signed in, with the body every request sends."""

    def __init__(self, server: Server, http: aiohttp.ClientSession, token: str, rid: int,
                 body: bytes) -> None:
        self.server, self.http, self.rid, self.body = server, http, rid, body
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.url = f"{server.url}/api/v1/restaurants/{rid}/orders"

    async def post_orders(self, count: int) -> None:
        remaining = count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                async with self.http.post(self.url, data=self.body, headers=self.headers) as reply:
                    if reply.status != 201:
                        answer = (await reply.text())[:300]
                        raise Failed(f"POST orders answered {reply.status}: {answer}")
                    await reply.read()

        async with asyncio.timeout(ROUND_TIMEOUT_SECONDS):
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

    async def timed(self, count: int) -> dict[str, float]:
        cpu = self.server.cpu_seconds()
        started = time.monotonic()
        await self.post_orders(count)
        seconds = time.monotonic() - started
        cpu = self.server.cpu_seconds() - cpu
        return {"seconds": seconds, "rps": count / seconds, "cpu_us_per_request": cpu / count * 1e6}


async def open_door(server: Server, http: aiohttp.ClientSession) -> Door:
    token, rid = await sign_in(server)
    async with http.get(f"{server.url}/api/v1/restaurants/{rid}/menu",
                        headers={"Authorization": f"Bearer {token}"}) as reply:
        menu = await reply.json()
    items = [i for c in menu["categories"] for i in c["items"] if i["available"]]
    body = msgspec.json.encode({"items": [
        {"menu_item_id": items[n % len(items)]["id"], "qty": 2, "course": 1 + n % 2}
        for n in range(LINES)]})
    return Door(server, http, token, rid, body)


async def counted_orders(door: Door) -> float:
    """How many POST orders the server's /metrics counted (a check the figures are real)."""
    async with door.http.get(door.server.url + "/metrics") as reply:
        if reply.status != 200:
            raise Failed(f"/metrics answered {reply.status}")
        text = await reply.text()
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "serveline_http_request_duration_seconds_count"
               and sample.labels.get("route") == ORDERS_ROUTE and sample.labels.get("status") == "201")


def hot_path_us(statements: int = STATEMENTS_PER_ORDER, repeat: int = 20_000) -> float:
    """Microseconds the observability hooks add to one request of `statements` statements:
    the timing middleware's work and the query log's pattern timing (min of 5 runs)."""
    metrics, patterns, bare = Metrics(True), QueryLog(100, 500), QueryLog(100, 500, patterns=False)
    queries = [LoggedQuery(f"SELECT {n} FROM orders WHERE restaurant_id = $1", (), None, 0.0004,
                           None, None, None) for n in range(statements)]

    def request(log: QueryLog, observed: bool) -> None:
        started = time.perf_counter()
        if observed:
            metrics.in_flight += 1
        for query in queries:
            log.record(query)
        if observed:
            metrics.in_flight -= 1
            metrics.observe_request("POST", ORDERS_ROUTE, 201, time.perf_counter() - started)

    on = min(timeit.repeat(lambda: request(patterns, True), number=repeat, repeat=5))
    off = min(timeit.repeat(lambda: request(bare, False), number=repeat, repeat=5))
    return (on - off) / repeat * 1e6


async def observe(bench: Bench) -> dict[str, Any]:
    """POST orders with metrics + query statistics on vs off, interleaved rounds."""
    requests, rounds = (250, 4) if bench.quick else (400, 10)
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
            connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2)))
        doors = {}
        for mode, env in MODES.items():
            settings = {"SERVELINE_RATE_LIMIT_SESSION": "off", **env}
            server = await stack.enter_async_context(serveline(bench, f"observe-{mode}", settings))
            doors[mode] = await open_door(server, http)
        for door in doors.values():
            await door.post_orders(WARMUP_REQUESTS)

        results: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
        for index in range(rounds):  # a pair per round, who goes first alternating
            order = ("off", "on") if index % 2 == 0 else ("on", "off")
            for mode in order:
                result = await doors[mode].timed(requests)
                results[mode].append(result)
                bench.progress(f"round {index + 1} {mode:3}: {result['rps']:>7,.0f} requests/s, "
                               f"server CPU {result['cpu_us_per_request']:,.0f} us/request")
        counted = await counted_orders(doors["on"])
        expected = WARMUP_REQUESTS + requests * rounds
        if counted != expected:
            raise Failed(f"/metrics counted {counted:.0f} POST orders, {expected} were sent")
        async with http.get(doors["off"].server.url + "/metrics") as reply:
            if reply.status != 404:
                raise Failed(f"with metrics off /metrics answered {reply.status}, not 404")
    for door in doors.values():
        check_log(bench, door.server)

    pairs = list(zip(results["on"], results["off"]))  # a pair shares the machine's mood
    cpu_off = statistics.median(r["cpu_us_per_request"] for r in results["off"])
    hooks = hot_path_us()
    return {
        "observe_cpu_ratio": statistics.median(on["cpu_us_per_request"] / off["cpu_us_per_request"]
                                               for on, off in pairs),
        "observe_rps_ratio": statistics.median(on["rps"] / off["rps"] for on, off in pairs),
        "observe_on_cpu_us_per_request": statistics.median(r["cpu_us_per_request"]
                                                           for r in results["on"]),
        "observe_off_cpu_us_per_request": cpu_off,
        "observe_hot_path_us": hooks,
        "observe_hot_path_share": hooks / cpu_off,
        "details": {"observe": {
            "requests_per_round": requests, "rounds": rounds, "concurrency": CONCURRENCY,
            "lines_per_order": LINES, "metrics_counted": counted,
            **{f"{mode}_rounds": runs for mode, runs in results.items()}}},
    }


SCENARIOS: dict[str, Callable[[Bench], Awaitable[dict[str, Any]]]] = {"observe": observe}
