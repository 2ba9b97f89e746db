"""A reconnect flood: run.py killed under hundreds of sockets and started again; every socket comes
back at once (with the back-off and jitter screens use), resumes, and the server stays responsive."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from .crowd import Crowd
from .fleet import (
    CHANNELS,
    Probe,
    Writers,
    assert_nothing_lost,
    check_feeds,
    http_session,
    last_by_channel,
    percentile,
    register_devices,
    sign_in,
    target_of,
    wait_for,
)
from .processes import RunPy, free_port

pytestmark = pytest.mark.slow

HEALTH_P99_SECONDS = 1.0  # /api/health while every socket comes back
RESUBSCRIBED_SECONDS = 60.0  # from the restart until the last socket is subscribed again
NETSTAT = Path("/proc/net/netstat")


def listen_overflows() -> int | None:
    """Connections this machine's kernel dropped for a full accept queue so far (Linux)."""
    if not NETSTAT.exists():
        return None
    lines = NETSTAT.read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        fields = dict(zip(names.split(), values.split()))
        if "ListenOverflows" in fields:
            return int(fields["ListenOverflows"])
    return None


async def test_a_reconnect_flood_after_a_restart_resumes_everyone_and_health_stays_quick(
        tmp_path, cluster, scale, figures):
    dsn = await cluster.create_database("serveline")
    # Every socket here comes from 127.0.0.1, as from behind one proxy: socket upgrades count
    # against the per-address limit (600 a minute), which README says to raise there.
    server = RunPy(tmp_path, "server", free_port(), database_url=dsn,
                   env={"SERVELINE_RATE_LIMIT_ADDRESS": "off"})
    crowds: list[Crowd] = []
    try:
        server.start()
        await server.wait_ready()
        async with http_session() as http:
            site = await sign_in(http, server.url)
            tokens = await register_devices(http, site, scale.flood, role="kitchen", kind="screen",
                                            prefix="Screen")
            ipads = await register_devices(http, site, 2, role="server", kind="ipad", prefix="iPad")
            share = -(-scale.flood // scale.crowd_processes)
            crowds = [await Crowd.start(site.ws_url, tokens[n * share:(n + 1) * share], tmp_path,
                                        f"crowd{n}") for n in range(scale.crowd_processes)]

            def subscribed() -> int:
                return sum(c.status["subscribed"] for c in crowds)
            await wait_for(lambda: subscribed() == scale.flood, 120,
                           lambda: f"{subscribed()}/{scale.flood} subscribed")
            writers = Writers(http, site, ipads, pace=0.05)  # events to resume across the restart
            health = Probe(http, site.url + "/api/health", {})
            probing = asyncio.Event()
            probe = asyncio.create_task(health.run(probing, every=0.02))
            try:
                await writers.placing(more=5, timeout=30)
                overflows = listen_overflows()
                server.kill()
                killed = time.monotonic()
                server.start()
                await server.wait_ready()
                ready = time.monotonic()
                await writers.placing(more=5, timeout=60)
                await wait_for(
                    lambda: subscribed() == scale.flood and sum(c.status["drops"] for c in crowds)
                    >= scale.flood, RESUBSCRIBED_SECONDS,
                    lambda: f"{subscribed()}/{scale.flood} subscribed again", every=0.1)
                back = time.monotonic()
                if overflows is not None:
                    overflows = listen_overflows() - overflows
                await asyncio.sleep(1.0)
                flood = health.between(ready, back + 1.0)
                await writers.stop()
                target = target_of(await last_by_channel(dsn, site.rid), CHANNELS)
                await wait_for(lambda: all(c.status["min_position"] >= target for c in crowds), 60,
                               lambda: [c.status for c in crowds])
            finally:
                probing.set()
                await probe
                await writers.cancel()
            reports = [r for crowd in crowds for r in await crowd.stop()]
            delivered = await check_feeds(dsn, site.rid, reports)
        latencies = [a[1] for a in flood if a[2] == "200"]
        resubscribed = sorted(s for r in reports for s in r["resubscribe_seconds"])
        figures("reconnect_flood", faults=1, sockets=scale.flood, processes=scale.crowd_processes,
                events_committed=delivered["events_committed"],
                delivered_per_client=f"{delivered['delivered_min']}-{delivered['delivered_max']}",
                lost=delivered["lost"], duplicates=delivered["duplicates"],
                restart_s=ready - killed, all_back_after_ready_s=back - ready,
                resubscribe_p50_s=percentile(resubscribed, 0.5),
                resubscribe_max_s=resubscribed[-1] if resubscribed else None,
                health_probes=len(flood), health_p50_s=percentile(latencies, 0.5),
                health_p99_s=percentile(latencies, 0.99), health_max_s=max(latencies),
                health_failed=sum(a[2] != "200" for a in flood), listen_overflows=overflows,
                failed_attempts=sum(sum(r["failed"].values()) for r in reports))
        assert not server.errors(), "\n".join(server.errors())
        assert_nothing_lost(delivered)
        assert all(a[2] == "200" for a in flood), [a for a in flood if a[2] != "200"][:5]
        assert percentile(latencies, 0.99) < HEALTH_P99_SECONDS
    finally:
        for crowd in crowds:
            await crowd.close()
        server.close()
