"""Two run.py instances sharing one port (SO_REUSEPORT) and one PostgreSQL; kill -9 one of them:
its clients reconnect to the other and resume, nothing lost, no order twice."""
from __future__ import annotations

import asyncio

import asyncpg
import pytest

from server.realtime.hub import LISTEN_NAME

from .fleet import (
    Feeds,
    Writers,
    assert_nothing_lost,
    check_feeds,
    check_orders,
    http_session,
    last_by_channel,
    register_devices,
    sign_in,
    wait_for,
)
from .processes import RunPy, free_port

pytestmark = pytest.mark.slow


async def listeners(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                                   LISTEN_NAME)
    finally:
        await conn.close()


async def test_one_of_two_instances_killed_its_clients_resume_on_the_other(
        tmp_path, cluster, scale, figures):
    dsn = await cluster.create_database("serveline")
    port = free_port()
    shared = ("--reuse-port", "true")
    instances = [RunPy(tmp_path, "a", port, database_url=dsn, args=shared),
                 RunPy(tmp_path, "b", port, database_url=dsn, args=(*shared, "--seed-demo", "false"))]
    try:
        for instance in instances:  # one after the other: the first seeds the demo
            instance.start()
            await instance.wait_ready()
        for _ in range(100):  # each instance has its LISTEN connection
            if await listeners(dsn) == 2:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the two instances are not both listening")
        async with http_session() as http:
            site = await sign_in(http, instances[0].url)
            screens = await register_devices(http, site, scale.screens, role="kitchen",
                                             kind="screen", prefix="Kitchen screen")
            ipads = await register_devices(http, site, scale.writers, role="server", kind="ipad",
                                           prefix="iPad")
            feeds = Feeds(http, site, screens)  # the kernel spreads them over both instances
            writers = None
            cut = []  # sockets cut by each kill: those the killed instance held
            try:
                await feeds.all_subscribed(timeout=30)
                writers = Writers(http, site, ipads, scale.pace)
                for round_ in range(scale.kills):
                    victim = instances[round_ % 2]
                    await asyncio.sleep(scale.load_seconds)
                    await writers.placing(more=1, timeout=30)
                    drops = sum(f.drops for f in feeds.feeds)
                    victim.kill()
                    await wait_for(lambda: any(not f.subscribed.is_set() for f in feeds.feeds), 5)
                    await feeds.all_subscribed(timeout=60)  # all on the survivor now
                    cut.append(sum(f.drops for f in feeds.feeds) - drops)
                    await writers.placing(more=1, timeout=30)
                    if round_ + 1 < scale.kills:  # bring it back for the next round
                        victim.start()
                        await victim.wait_ready()
                await asyncio.sleep(scale.load_seconds)
                await writers.placing(more=1, timeout=30)
                await writers.stop()
                await feeds.caught_up(await last_by_channel(dsn, site.rid), timeout=30)
            finally:
                reports = await feeds.stop()
                if writers is not None:
                    await writers.cancel()
            delivered = await check_feeds(dsn, site.rid, reports)
            orders = await check_orders(dsn, site.rid, writers.writers)
        figures("two_instances", faults=scale.kills, sockets=scale.screens,
                sockets_cut=cut, events_committed=delivered["events_committed"],
                delivered_per_client=f"{delivered['delivered_min']}-{delivered['delivered_max']}",
                lost=delivered["lost"], duplicates=delivered["duplicates"],
                raw_repeats=delivered["raw_repeats"],
                orders_2xx=orders["orders_2xx"], orders_existing=orders["orders_existing"],
                orders_twice=orders["orders_twice"], replayed=orders["replayed"],
                retries=orders["retries"])
        for instance in instances:
            assert not instance.errors(), "\n".join(instance.errors())
        assert_nothing_lost(delivered, orders)
        assert 0 < cut[0] < scale.screens  # the sockets were spread; only the victim's were cut
    finally:
        for instance in instances:
            instance.close()
