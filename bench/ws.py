"""WebSocket scenarios: fan-out against the yardstick's naive broadcast, idle sockets, resume.

Each scenario starts fresh servers (and databases) of its own, returns its
figures under their published names plus details, and writes down in
`bench.notes` anything that went wrong or limited the run.
"""
from __future__ import annotations

import asyncio
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import asyncpg
import msgspec

from bench import clients
from bench.clients import Crowd, Target
from bench.servers import (
    DEMO_PASSWORD,
    Bench,
    Failed,
    Server,
    local_port_count,
    serveline,
    yardstick,
)
from store import events
from store.pool import create_pool

CHANNEL = "orders"
TICK = "bench.tick"  # the name of the events the bench writes
SUBSCRIBE = msgspec.json.encode({"type": "subscribe", "channels": [CHANNEL]}).decode()
ROUND_TIMEOUT_SECONDS = 120.0
WARMUP_EVENTS = 10
IDLE_SECONDS = 3.0
IDLE_WARM_SOCKETS = 50  # opened before the baseline, so first-use costs are not counted
RESUME_EVENTS = 1000


# Serveline's door: sign in, socket target, events through the real write path ------------

async def sign_in(server: Server) -> tuple[str, int]:
    """The manager's bearer token and the demo restaurant's id."""
    login = {"email": "manager@demo.test", "password": DEMO_PASSWORD}
    async with (aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
                http.post(server.url + "/api/v1/auth/login", json=login) as reply):
        if reply.status != 200:
            raise Failed(f"sign-in answered {reply.status}: {await reply.text()}")
        body = await reply.json()
    return body["token"], body["restaurants"][0]["id"]


def serveline_target(server: Server, token: str, rid: int, group: str = "serveline") -> Target:
    url = server.url.replace("http", "ws", 1) + f"/api/v1/restaurants/{rid}/ws"
    return Target(group=group, url=url, headers={"Authorization": f"Bearer {token}"},
                  subscribe=SUBSCRIBE, counted="event")


def yardstick_target(server: Server, group: str = "yardstick") -> Target:
    return Target(group=group, url=server.url.replace("http", "ws", 1) + "/ws")


def tick(i: int) -> dict[str, Any]:
    """Event data about the size of the yardstick's blast message."""
    return {"id": i, "items": [1, 2, 3], "sent": time.time()}


WRITERS = 4  # events are written as a restaurant's iPads write them: several at once


async def write_events(pool: asyncpg.Pool, rid: int, count: int, writers: int = 1) -> float:
    """`count` events, one transaction each, through store.events.write (the path every write
    takes: counter bump, insert, pg_notify) from `writers` connections at once; returns the
    seconds it took."""
    numbers = iter(range(count))

    async def writer() -> None:
        for i in numbers:
            async with events.write(pool) as tx:
                tx.emit(rid, CHANNEL, TICK, tick(i))

    started = time.monotonic()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return time.monotonic() - started


async def open_pool(server: Server, size: int = 2) -> asyncpg.Pool:
    return await create_pool(server.dsn, min_size=1, max_size=size, statement_timeout_ms=30_000,
                             idle_in_transaction_timeout_ms=30_000)


def check_log(bench: Bench, server: Server) -> None:
    """Note what the server logged beyond the ordinary (slow-SQL warnings counted apart)."""
    lines = server.noteworthy()
    slow = [line for line in lines if "slow SQL" in line]
    other = [line for line in lines if "slow SQL" not in line]
    if slow:
        bench.note(f"{server.name} logged {len(slow)} slow-SQL warnings ({server.log}); "
                   f"first: {slow[0][:200]}")
    if other:
        bench.note(f"{server.name} logged {len(other)} other warning/error lines ({server.log}); "
                   f"first: {other[0][:300]}")


# fanout -----------------------------------------------------------------------

async def _timed_round(crowd: Crowd, server: Server, group: str, sockets: int, n: int,
                       produce: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """Arm the group's sockets for `n` messages, produce them, and time until the last has all."""
    await crowd.each("arm", group, n)
    cpu = server.cpu_seconds()
    started = time.monotonic()
    producing = asyncio.ensure_future(produce())
    status = clients.merge(await crowd.each("wait", group, ROUND_TIMEOUT_SECONDS))
    produced = await producing
    cpu = server.cpu_seconds() - cpu
    if status["complete"] != sockets or status["finished_at"] is None:
        raise Failed(f"{group}: after {ROUND_TIMEOUT_SECONDS:.0f} s only {status['complete']} of "
                     f"{sockets} sockets had all {n} messages (fewest {status['min_count']}, "
                     f"{status['open']} still open, server closes {status['server_closes']})")
    if status["max_count"] != n or status["out_of_order"]:
        raise Failed(f"{group}: a socket got {status['max_count']} messages for {n} sent, "
                     f"{status['out_of_order']} out of order or repeated")
    if status["server_closes"]:
        raise Failed(f"{group}: the server closed sockets: {status['server_closes']}")
    seconds = status["finished_at"] - started
    return {"seconds": seconds, "dps": sockets * n / seconds, "produced": produced,
            "server_cpu_us_per_delivery": cpu / (sockets * n) * 1e6,
            "frame_bytes": status["received_bytes"] / (sockets * n)}


async def _connect_all(bench: Bench, crowd: Crowd, target: Target, count: int) -> None:
    opened = await crowd.open(target, count)
    if opened["opened"] != count:
        raise Failed(f"{target.group}: opened {opened['opened']} of {count} sockets: "
                     f"{opened['errors']}")
    bench.progress(f"{count} {target.group} sockets ready in {opened['seconds']:.1f} s")


async def fanout(bench: Bench) -> dict[str, Any]:
    """S sockets on each server; N events through Serveline's outbox vs POST /blast?n=N."""
    sockets, n, rounds = (1000, 100, 3) if bench.quick else (1000, 200, 3)
    async with AsyncExitStack() as stack:
        app = await stack.enter_async_context(serveline(bench, "fanout"))
        bare = await stack.enter_async_context(yardstick(bench, "fanout"))
        crowd = await stack.enter_async_context(Crowd(bench.processes))
        pool = await open_pool(app)
        stack.push_async_callback(pool.close)
        token, rid = await sign_in(app)
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def blast(count: int) -> dict[str, Any]:
            async with http.post(f"{bare.url}/blast?n={count}") as reply:
                answer = await reply.json()
            if answer["sockets"] != sockets:
                raise Failed(f"the yardstick blasted {answer['sockets']} sockets, not {sockets}")
            return answer

        runs = {
            "serveline": lambda count: _timed_round(crowd, app, "serveline", sockets, count,
                                                    lambda: write_events(pool, rid, count, WRITERS)),
            "yardstick": lambda count: _timed_round(crowd, bare, "yardstick", sockets, count,
                                                    lambda: blast(count)),
        }
        await _connect_all(bench, crowd, serveline_target(app, token, rid, "serveline"), sockets)
        await _connect_all(bench, crowd, yardstick_target(bare, "yardstick"), sockets)
        for run in runs.values():  # warm-up, not counted
            await run(WARMUP_EVENTS)

        results: dict[str, list[dict[str, Any]]] = {"serveline": [], "yardstick": []}
        for index in range(rounds):  # interleaved; who goes first alternates
            order = ("serveline", "yardstick") if index % 2 == 0 else ("yardstick", "serveline")
            for name in order:
                result = await runs[name](n)
                results[name].append(result)
                bench.progress(f"round {index + 1} {name:9}: {result['dps']:>9,.0f} deliveries/s "
                               f"({result['seconds']:.3f} s, server CPU "
                               f"{result['server_cpu_us_per_delivery']:.1f} us/delivery)")
        status = await crowd.status("serveline")
        if status["open"] != sockets:
            raise Failed(f"serveline: {sockets - status['open']} sockets closed after the rounds: "
                         f"{status['server_closes']}")
    check_log(bench, app)
    check_log(bench, bare)

    serveline_dps = statistics.median(r["dps"] for r in results["serveline"])
    blast_dps = statistics.median(r["dps"] for r in results["yardstick"])
    return {
        "fanout_deliveries_per_s": serveline_dps,
        "blast_deliveries_per_s": blast_dps,
        "ratio_fanout_vs_blast": serveline_dps / blast_dps,
        "details": {
            "fanout": {
                "sockets": sockets, "events": n, "rounds": rounds,
                "client_processes": bench.processes,
                "serveline_rounds_dps": [r["dps"] for r in results["serveline"]],
                "yardstick_rounds_dps": [r["dps"] for r in results["yardstick"]],
                "serveline_write_seconds": [r["produced"] for r in results["serveline"]],
                "serveline_cpu_us_per_delivery": [r["server_cpu_us_per_delivery"]
                                                  for r in results["serveline"]],
                "yardstick_cpu_us_per_delivery": [r["server_cpu_us_per_delivery"]
                                                  for r in results["yardstick"]],
                "serveline_frame_bytes": results["serveline"][0]["frame_bytes"],
                "yardstick_frame_bytes": results["yardstick"][0]["frame_bytes"],
            },
        },
    }


# idle -------------------------------------------------------------------------

def reachable_sockets(bench: Bench, wanted: int) -> int:
    """The most sockets this machine's fd limit and port range allow, noting any cut."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    spare = 256  # the server's own files, pool, log; the client process's pipes and imports
    ports = local_port_count()
    bounds = {"the server's open-files limit": limit - spare - IDLE_WARM_SOCKETS,
              "a client process's open-files limit": (limit - spare) * bench.processes}
    if ports is not None:
        bounds["the local port range"] = ports - IDLE_WARM_SOCKETS - spare
    reason, most = min(bounds.items(), key=lambda item: item[1])
    if most < wanted:
        bench.note(f"idle: {wanted} sockets asked for, {most} possible because of {reason}")
        return most
    return wanted


async def _hold(bench: Bench, crowd: Crowd, server: Server, target: Target,
                count: int) -> dict[str, Any]:
    """RSS before and after `count` idle sockets (after a small warm-up batch is already open)."""
    warm = msgspec.structs.replace(target, group=target.group + "-warm")
    await _connect_all(bench, crowd, warm, IDLE_WARM_SOCKETS)
    await asyncio.sleep(IDLE_SECONDS)
    before = server.rss()
    opened = await crowd.open(target, count)
    bench.progress(f"{opened['opened']} {target.group} sockets opened in "
                   f"{opened['seconds']:.1f} s; idle {IDLE_SECONDS:g} s")
    if opened["errors"]:
        bench.note(f"idle: {target.group}: {count - opened['opened']} of {count} sockets failed "
                   f"to open: {opened['errors']}")
    await asyncio.sleep(IDLE_SECONDS)
    status = await crowd.status(target.group)
    after = server.rss()
    held = status["open"]
    if held < count:
        bench.note(f"idle: {target.group}: {held} of {count} sockets open at the measurement; "
                   f"server closes {status['server_closes']}")
    if held == 0:
        raise Failed(f"idle: no {target.group} socket stayed open")
    await crowd.close(target.group)
    await crowd.close(warm.group)
    return {"sockets": held, "rss_before": before, "rss_after": after,
            "per_socket": (after - before) / held}


async def idle(bench: Bench) -> dict[str, Any]:
    """Server RSS per idle socket: Serveline's signed-in and subscribed, the yardstick's bare."""
    asked = 2000 if bench.quick else 10_000
    count = reachable_sockets(bench, asked)
    async with Crowd(bench.processes) as crowd:
        async with serveline(bench, "idle") as app:
            token, rid = await sign_in(app)
            mine = await _hold(bench, crowd, app, serveline_target(app, token, rid), count)
        check_log(bench, app)
        async with yardstick(bench, "idle") as bare:
            theirs = await _hold(bench, crowd, bare, yardstick_target(bare), count)
        check_log(bench, bare)
    figures = {
        "idle_bytes_per_socket": mine["per_socket"],
        "yardstick_idle_bytes_per_socket": theirs["per_socket"],
        "details": {"idle": {"asked": asked, "idle_seconds": IDLE_SECONDS,
                             "warm_sockets": IDLE_WARM_SOCKETS,
                             "serveline": mine, "yardstick": theirs}},
    }
    if theirs["per_socket"] > 0:
        figures["ratio_idle_vs_bare"] = mine["per_socket"] / theirs["per_socket"]
    else:
        bench.note("idle: the yardstick's RSS did not grow with its sockets; no ratio")
    return figures


# resume -----------------------------------------------------------------------

async def _next(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=30)
    if msg.type is not aiohttp.WSMsgType.TEXT:
        raise Failed(f"resume: expected a message, got {msg.type.name} "
                     f"(close code {ws.close_code})")
    return msgspec.json.decode(msg.data)


async def _until(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    message = await _next(ws)
    if message["type"] != kind:
        raise Failed(f"resume: expected {kind!r}, got {str(message)[:300]}")
    return message


async def _resume_once(http: aiohttp.ClientSession, target: Target, pool: asyncpg.Pool,
                       rid: int) -> float:
    """Subscribe, leave, let RESUME_EVENTS events happen, come back with `since`: milliseconds
    from sending that subscribe to holding the last missed event."""
    async with http.ws_connect(target.url, headers=target.headers) as ws:
        await _until(ws, "welcome")
        await ws.send_str(SUBSCRIBE)
        where = await _until(ws, "subscribed")
    await write_events(pool, rid, RESUME_EVENTS)
    resubscribe = msgspec.json.encode({"type": "subscribe", "channels": [CHANNEL],
                                       "epoch": where["epoch"], "since": where["seq"]}).decode()
    async with http.ws_connect(target.url, headers=target.headers) as ws:
        await _until(ws, "welcome")
        started = time.perf_counter()
        await ws.send_str(resubscribe)
        await _until(ws, "subscribed")
        # seq is per restaurant: other channels' events (a device going offline, say) make
        # it jump, so each of our own events is checked by its index, in order.
        last, expected = where["seq"], 0
        while expected < RESUME_EVENTS:
            event = await _until(ws, "event")
            if event["seq"] <= last:
                raise Failed(f"resume: after seq {last} came {event['seq']} (a repeat)")
            last = event["seq"]
            if event["name"] != TICK:
                continue
            if event["data"]["id"] != expected:
                raise Failed(f"resume: expected missed event {expected}, got "
                             f"{event['data']['id']} (seq {last}): one was lost")
            expected += 1
        return (time.perf_counter() - started) * 1000


async def resume(bench: Bench) -> dict[str, Any]:
    """A client that missed 1000 events resubscribes with `since`: time to hold them all."""
    repeats = 5 if bench.quick else 10
    async with AsyncExitStack() as stack:
        app = await stack.enter_async_context(serveline(bench, "resume"))
        pool = await open_pool(app)
        stack.push_async_callback(pool.close)
        token, rid = await sign_in(app)
        target = serveline_target(app, token, rid)
        http = await stack.enter_async_context(
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()))
        timings = []
        for index in range(repeats):
            timings.append(await _resume_once(http, target, pool, rid))
            bench.progress(f"resume {index + 1}: {timings[-1]:.1f} ms")
    check_log(bench, app)
    return {"resume_1000_ms": statistics.median(timings),
            "details": {"resume": {"events": RESUME_EVENTS, "repeats": repeats,
                                   "timings_ms": timings}}}


SCENARIOS: dict[str, Callable[[Bench], Awaitable[dict[str, Any]]]] = {
    "fanout": fanout,
    "idle": idle,
    "resume": resume,
}
