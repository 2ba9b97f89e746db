"""PostgreSQL stopped mid-service: quick 503s with Retry-After meanwhile, then recovery by itself."""
from __future__ import annotations

import asyncio
import time

import aiohttp
import asyncpg
import msgspec
import pytest

from server.realtime.hub import LISTEN_NAME

from .fleet import (
    Feeds,
    Probe,
    Writers,
    assert_nothing_lost,
    check_feeds,
    check_orders,
    http_session,
    last_by_channel,
    percentile,
    register_devices,
    sign_in,
    wait_for,
)
from .processes import RunPy, free_port

pytestmark = pytest.mark.slow

# No answer during the outage may take longer than this: refused connections are refused at
# once, so anything near the statement timeout (10 s) would mean a request hung on the pool.
OUTAGE_ANSWER_SECONDS = 2.0
CLIENT_DROPS = 5  # screens whose own connection blinks during the outage


async def committed(dsn: str, rid: int) -> tuple[int, int]:
    """(the restaurant's seq, its orders) as PostgreSQL has them."""
    conn = await asyncpg.connect(dsn)
    try:
        return (await conn.fetchval("SELECT seq FROM restaurants WHERE id = $1", rid),
                await conn.fetchval("SELECT count(*) FROM orders WHERE restaurant_id = $1", rid))
    finally:
        await conn.close()


async def goodbye(ws: aiohttp.ClientWebSocketResponse,
                  timeout: float = 10.0) -> tuple[list[str], int | None]:
    """The message types a socket gets until it is closed, and the close code."""
    kinds = []
    async with asyncio.timeout(timeout):
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            kinds.append(msgspec.json.decode(msg.data)["type"])
    return kinds, ws.close_code


async def test_postgres_stopped_mid_service_answers_503_quickly_and_recovers_by_itself(
        tmp_path, cluster, scale, figures):
    dsn = await cluster.create_database("serveline")
    server = RunPy(tmp_path, "server", free_port(), database_url=dsn)
    try:
        server.start()
        await server.wait_ready()
        pid = server.pid
        async with http_session() as http:
            site = await sign_in(http, server.url)
            screens = await register_devices(http, site, scale.screens, role="kitchen",
                                             kind="screen", prefix="Kitchen screen")
            ipads = await register_devices(http, site, scale.writers, role="server", kind="ipad",
                                           prefix="iPad")
            manager = {"Authorization": f"Bearer {site.manager}"}
            probes = {  # liveness never needs the database; the others do
                "health": Probe(http, site.url + "/api/health", {}),
                "orders": Probe(http, site.base + "/orders?status=open", manager),
                "menu": Probe(http, site.base + "/menu", manager),
                "health_db": Probe(http, site.url + "/api/health/db", manager),
            }
            probing = asyncio.Event()
            feeds = Feeds(http, site, screens)
            writers = None
            outages, recovered_in, goodbyes = [], [], []
            try:
                await feeds.all_subscribed(timeout=30)
                writers = Writers(http, site, ipads, scale.pace)
                tasks = [asyncio.create_task(p.run(probing)) for p in probes.values()]
                for _ in range(scale.outages):
                    await asyncio.sleep(scale.load_seconds)
                    await writers.placing(more=1, timeout=30)
                    seq_before, orders_before = await committed(dsn, site.rid)
                    # Open before the outage, speaking during it: one signed in on the upgrade
                    # subscribes, one signs in with its first message.
                    signed = await http.ws_connect(site.ws_url, headers=manager)
                    assert (await signed.receive_json())["type"] == "welcome"
                    unsigned = await http.ws_connect(site.ws_url)
                    await asyncio.to_thread(cluster.stop)
                    down = time.monotonic()
                    await asyncio.sleep(min(0.5, scale.outage_seconds / 4))
                    for feed in feeds.feeds[:CLIENT_DROPS]:
                        feed.drop()  # reconnects while the database is away
                    await signed.send_json({"type": "subscribe", "channels": ["orders"]})
                    await unsigned.send_json({"type": "auth", "token": site.manager})
                    goodbyes += [await goodbye(signed), await goodbye(unsigned)]
                    await asyncio.sleep(scale.outage_seconds - (time.monotonic() - down))
                    outages.append((down, time.monotonic()))  # answers sent meanwhile
                    await asyncio.to_thread(cluster.start)
                    up = time.monotonic()
                    recovered_in.append(await wait_for(
                        lambda since=up: any(a[2] == "200" for a in probes["orders"].between(
                            since, time.monotonic())),
                        timeout=30, describe=lambda: probes["orders"].answers[-3:]))
                    await feeds.all_subscribed(timeout=60)
                    seq_after, orders_after = await committed(dsn, site.rid)
                    assert seq_after >= seq_before and orders_after >= orders_before
                await asyncio.sleep(scale.load_seconds)
                await writers.placing(more=1, timeout=30)
                await writers.stop()
                await feeds.caught_up(await last_by_channel(dsn, site.rid), timeout=30)
                probing.set()
                await asyncio.gather(*tasks)
            finally:
                probing.set()
                reports = await feeds.stop()
                if writers is not None:
                    await writers.cancel()
            delivered = await check_feeds(dsn, site.rid, reports)
            orders = await check_orders(dsn, site.rid, writers.writers)
        conn = await asyncpg.connect(dsn)
        try:
            listening = await conn.fetchval("SELECT count(*) FROM pg_stat_activity "
                                            "WHERE application_name = $1", LISTEN_NAME)
        finally:
            await conn.close()

        during = {name: [a for down, up in outages for a in probe.between(down, up)]
                  for name, probe in probes.items()}
        writes_during = [t for w in writers.writers for t in w.trace
                         if any(down <= t[0] <= up for down, up in outages)]
        latencies = ([a[1] for answers in during.values() for a in answers]
                     + [t[1] for t in writes_during])
        statuses = {name: "/".join(sorted({a[2] for a in answers}))
                    for name, answers in during.items()}
        statuses["post_orders"] = "/".join(sorted({t[2] for t in writes_during}))
        socket_attempts = sum(sum(r["failed"].values()) for r in reports)
        figures("postgres_stopped", faults=scale.outages, outage_s=scale.outage_seconds,
                events_committed=delivered["events_committed"],
                delivered_per_client=f"{delivered['delivered_min']}-{delivered['delivered_max']}",
                lost=delivered["lost"], duplicates=delivered["duplicates"],
                orders_2xx=orders["orders_2xx"], orders_existing=orders["orders_existing"],
                orders_twice=orders["orders_twice"], requests_during_outage=len(latencies),
                statuses_during_outage=",".join(f"{k}:{v}" for k, v in statuses.items()),
                answer_p99_s=percentile(latencies, 0.99), answer_max_s=max(latencies),
                recovered_s=max(recovered_in), failed_socket_attempts=socket_attempts,
                socket_failures=sorted({k for r in reports for k in r["failed"]}),
                replayed=orders["replayed"], retries=orders["retries"])
        assert not server.errors(), "\n".join(server.errors())
        assert_nothing_lost(delivered, orders)
        # A socket the database fails after its upgrade is asked to come back (docs/protocol.md).
        assert goodbyes == [(["reconnect"], 4000)] * 2 * scale.outages, goodbyes
        assert server.alive() and server.pid == pid and server.starts == 1  # no restart of run.py
        assert listening == 1  # the LISTEN connection is back
        assert max(latencies) < OUTAGE_ANSWER_SECONDS, sorted(latencies)[-5:]
        assert {a[2] for a in during["health"]} == {"200"}
        for name in ("orders", "menu", "health_db"):
            assert during[name], name
            # Only the menu may come from the response cache; nothing is ever a 500.
            allowed = {"503", "200"} if name == "menu" else {"503"}
            assert {a[2] for a in during[name]} <= allowed, (name, during[name][:5])
            assert all(a[3] and int(a[3]) > 0 for a in during[name] if a[2] == "503"), name
        assert {t[2] for t in writes_during} <= {"503", "201"}, writes_during[:10]
    finally:
        server.close()
