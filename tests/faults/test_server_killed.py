"""kill -9 of run.py in the middle of service: it starts again on its data, nothing is lost."""
from __future__ import annotations

import asyncio

import pytest

from store.embedded import running_dsn

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
from .processes import RunPy, free_port, postgres_of

pytestmark = pytest.mark.slow


async def test_run_py_killed_mid_load_restarts_on_its_data_and_loses_nothing(tmp_path, scale, figures):
    server = RunPy(tmp_path, "server", free_port())  # embedded PostgreSQL under its data dir
    pgdata = server.data_dir / "pg"
    try:
        server.start()
        await server.wait_ready()
        async with http_session() as http:
            site = await sign_in(http, server.url)
            screens = await register_devices(http, site, scale.screens, role="kitchen",
                                             kind="screen", prefix="Kitchen screen")
            ipads = await register_devices(http, site, scale.writers, role="server", kind="ipad",
                                           prefix="iPad")
            feeds = Feeds(http, site, screens)
            writers = None
            in_flight, restarts, adopted = 0, [], 0
            try:
                await feeds.all_subscribed(timeout=30)
                writers = Writers(http, site, ipads, scale.pace)
                for _ in range(scale.kills):
                    await asyncio.sleep(scale.load_seconds)
                    await writers.placing(more=1, timeout=30)
                    await wait_for(lambda: any(w.in_flight for w in writers.writers), 10, every=0.001)
                    in_flight += sum(w.in_flight is not None for w in writers.writers)
                    server.kill()
                    adopted += bool(postgres_of(pgdata))  # left running: the next start adopts it
                    server.start()
                    restarts.append(await server.wait_ready())
                    await feeds.all_subscribed(timeout=60)
                await asyncio.sleep(scale.load_seconds)
                await writers.placing(more=1, timeout=30)
                await writers.stop()
                dsn = running_dsn(server.data_dir)
                assert dsn is not None
                await feeds.caught_up(await last_by_channel(dsn, site.rid), timeout=30)
            finally:
                reports = await feeds.stop()
                if writers is not None:
                    await writers.cancel()
            delivered = await check_feeds(dsn, site.rid, reports)
            orders = await check_orders(dsn, site.rid, writers.writers)
        figures("server_killed", faults=scale.kills, events_committed=delivered["events_committed"],
                delivered_per_client=f"{delivered['delivered_min']}-{delivered['delivered_max']}",
                lost=delivered["lost"], duplicates=delivered["duplicates"],
                raw_repeats=delivered["raw_repeats"], drops=delivered["drops"],
                orders_2xx=orders["orders_2xx"], orders_existing=orders["orders_existing"],
                orders_twice=orders["orders_twice"], in_flight_at_kill=in_flight,
                replayed=orders["replayed"], retries=orders["retries"],
                restart_s=max(restarts), postgres_adopted=adopted)
        assert not server.errors(), "\n".join(server.errors())
        assert_nothing_lost(delivered, orders)
        assert delivered["drops"] >= scale.screens * scale.kills  # every socket was cut each time
        assert adopted == scale.kills
        assert server.stop() == 0  # the adopted cluster is stopped by its new owner
        assert postgres_of(pgdata) == []
    finally:
        server.close()
