"""/metrics: the Prometheus families are there, move with real traffic, and are kept from strangers."""
from __future__ import annotations

import asyncio

import msgspec
from conftest import PASSWORD, bearer, error_of
from prometheus_client.parser import text_string_to_metric_families

from server.keys import POOL

FAMILIES = {
    "serveline_http_request_duration_seconds", "serveline_http_requests_in_flight",
    "serveline_ws_connections", "serveline_ws_connections_by_restaurant",
    "serveline_ws_messages_sent", "serveline_ws_closed", "serveline_listen_reconnects",
    "serveline_event_lag_seconds", "serveline_db_pool_size", "serveline_db_pool_max",
    "serveline_db_pool_in_use", "serveline_db_pool_waiters", "serveline_cache_hits",
    "serveline_cache_misses", "serveline_login_failures", "serveline_sql_statements",
    "serveline_sql_seconds", "serveline_sql_slow_statements", "process_resident_memory_bytes",
    "process_cpu_seconds",
}
MENU_ROUTE = "/api/v1/restaurants/{rid}/menu"


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, sample_name: str, **labels: str) -> float:
        """The sample's value (0 when absent: a labelled counter not yet seen)."""
        for family in self.families.values():
            for sample in family.samples:
                if sample.name == sample_name and all(sample.labels.get(k) == v
                                                      for k, v in labels.items()):
                    return sample.value
        return 0.0


async def scrape(client, headers: dict | None = None) -> Scrape:
    response = await client.get("/metrics", headers=headers or {})
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    return Scrape(await response.text())


async def test_metrics_expose_every_family_by_route_template(client, rid, tokens):
    manager = bearer(await tokens("manager"))
    await client.get(f"/api/v1/restaurants/{rid}/menu", headers=manager)
    assert (await client.get("/no/such/page")).status == 404
    metrics = await scrape(client)
    assert FAMILIES <= set(metrics.families), FAMILIES - set(metrics.families)
    assert metrics.value("serveline_http_request_duration_seconds_count",
                         method="GET", route=MENU_ROUTE, status="200") == 1
    assert metrics.value("serveline_http_request_duration_seconds_count",
                         method="GET", route="<unmatched>", status="404") == 1
    assert f"/api/v1/restaurants/{rid}/menu" not in metrics.text  # never the raw path
    assert "/no/such/page" not in metrics.text
    assert metrics.value("serveline_http_requests_in_flight") == 1  # this scrape
    assert metrics.value("serveline_db_pool_size") >= 1
    assert metrics.value("serveline_db_pool_waiters") == 0
    assert metrics.value("serveline_sql_statements_total") > 0


async def test_counters_move_with_traffic(client, rid, tokens, open_socket):
    manager = await tokens("manager")
    before = await scrape(client)

    for _ in range(2):
        assert (await client.get(f"/api/v1/restaurants/{rid}/menu", headers=bearer(manager))).status == 200
    wrong = await client.post("/api/v1/auth/login",
                              json={"email": "server@demo.test", "password": PASSWORD + "x"})
    assert wrong.status == 401
    sock = await open_socket(rid, manager)
    await sock.send(type="subscribe", channels=["menu"])
    await sock.until("subscribed")
    menu = await (await client.get(f"/api/v1/restaurants/{rid}/menu", headers=bearer(manager))).json()
    item = menu["categories"][0]["items"][0]
    eighty_six = await client.post(f"/api/v1/restaurants/{rid}/menu/items/{item['id']}/availability",
                                   headers=bearer(manager), json={"available": False})
    assert eighty_six.status == 200
    await sock.until("event", "menu.item_availability")

    after = await scrape(client)
    count = "serveline_http_request_duration_seconds_count"
    assert (after.value(count, method="GET", route=MENU_ROUTE, status="200")
            - before.value(count, method="GET", route=MENU_ROUTE, status="200")) == 3
    assert after.value(count, method="POST", route="/api/v1/auth/login", status="401") == 1
    assert (after.value("serveline_login_failures_total", reason="wrong_password")
            - before.value("serveline_login_failures_total", reason="wrong_password")) == 1
    assert (after.value("serveline_cache_hits_total", kind="menu")
            - before.value("serveline_cache_hits_total", kind="menu")) >= 1
    assert after.value("serveline_ws_connections") == 1
    assert after.value("serveline_ws_connections_by_restaurant", restaurant_id=str(rid)) == 1
    assert after.value("serveline_ws_messages_sent_total") > before.value("serveline_ws_messages_sent_total")
    assert after.value("serveline_event_lag_seconds_count") >= 1
    assert after.value("serveline_sql_statements_total") > before.value("serveline_sql_statements_total")

    await sock.close()
    for _ in range(50):  # the handler's finally runs once the close reaches the server
        if (await scrape(client)).value("serveline_ws_connections") == 0:
            break
        await asyncio.sleep(0.05)
    assert (await scrape(client)).value("serveline_ws_connections") == 0


async def test_a_request_waiting_for_a_connection_is_counted(make_client, config):
    client = await make_client(msgspec.structs.replace(config, pool_min=1, pool_max=1))
    pool = client.app[POOL]
    async with pool.acquire():
        waiting = asyncio.create_task(pool.fetchval("SELECT 1"))
        await asyncio.sleep(0.05)
        metrics = await scrape(client)  # /metrics itself needs no connection
        assert metrics.value("serveline_db_pool_waiters") >= 1
        assert metrics.value("serveline_db_pool_in_use") == metrics.value("serveline_db_pool_max") == 1
    assert await waiting == 1
    for _ in range(100):  # background work (cache warming) may have queued behind us too
        if (await scrape(client)).value("serveline_db_pool_waiters") == 0:
            break
        await asyncio.sleep(0.02)
    assert (await scrape(client)).value("serveline_db_pool_waiters") == 0


async def test_metrics_need_the_token_when_one_is_set(make_client, config):
    client = await make_client(msgspec.structs.replace(config, metrics_token="scrape-secret"))
    refused = await client.get("/metrics")
    assert refused.status == 401
    assert (await error_of(refused))["code"] == "unauthorized"
    assert (await client.get("/metrics", headers=bearer("guess"))).status == 401
    assert "serveline_http_requests_in_flight" in (await scrape(client, bearer("scrape-secret"))).families


async def test_without_a_token_only_this_machine_may_scrape(client):
    proxied = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status == 403
    assert (await error_of(proxied))["code"] == "forbidden"


async def test_metrics_can_be_turned_off(make_client, config):
    client = await make_client(msgspec.structs.replace(config, metrics=False))
    assert (await client.get("/metrics")).status == 404
    assert (await client.get("/api/health")).status == 200
