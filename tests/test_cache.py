"""The response cache: hits, ETags, gzip, and never a stale answer after a change, on any instance.

Each test runs with the in-memory backend, and again with Redis when REDIS_URL is set.
"""
from __future__ import annotations

import asyncio
import gzip
import os

import msgspec
import pytest
from conftest import bearer, error_of

from server.cache import MENU, SETTINGS
from server.keys import CACHE, HUB, QUERY_LOG

BACKENDS = ["memory"] + (["redis"] if os.environ.get("REDIS_URL") else [])


@pytest.fixture(params=BACKENDS)
def cache_url(request) -> str | None:
    return os.environ["REDIS_URL"] if request.param == "redis" else None


@pytest.fixture
async def instances(make_client, config, cache_url):
    """Two servers on one database (and one Redis, when it is the backend)."""
    settings = msgspec.structs.replace(config, cache_url=cache_url)
    first, second = await make_client(settings), await make_client(settings)
    for each in (first, second):
        await each.app[CACHE].until_synced()
    return first, second


@pytest.fixture
async def kitchen(tokens):
    return bearer(await tokens("kitchen"))


def item_named(tree: dict, name: str) -> dict:
    return next(i for c in tree["categories"] for i in c["items"] if i["name"] == name)


async def statements(client, response) -> int:
    return client.app[QUERY_LOG].statements_of(response.headers["X-Request-Id"])


async def test_a_second_read_is_a_hit_and_a_matching_etag_is_304(instances, rid, host):
    a, _ = instances
    menu = f"/api/v1/restaurants/{rid}/menu"
    first = await a.get(menu, headers=host)
    second = await a.get(menu, headers=host)
    assert first.status == second.status == 200
    assert await first.read() == await second.read()
    assert await statements(a, second) == 0  # the credential is known, the tree was cached
    etag = second.headers["ETag"]
    assert etag == first.headers["ETag"] and second.headers["Cache-Control"] == "private, no-cache"
    unchanged = await a.get(menu, headers=host | {"If-None-Match": etag})
    assert unchanged.status == 304 and await unchanged.read() == b""
    assert unchanged.headers["ETag"] == etag
    assert (await a.get(menu, headers=host | {"If-None-Match": '"other"'})).status == 200
    stats = a.app[CACHE]
    assert stats.hits[rid, "menu"] >= 3


async def test_gzip_when_asked_and_the_body_is_large(instances, rid, host):
    a, _ = instances
    menu = f"/api/v1/restaurants/{rid}/menu"
    plain = await a.get(menu, headers=host | {"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    raw = await a.get(menu, headers=host | {"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert raw.headers["Content-Encoding"] == "gzip" and raw.headers["Vary"] == "Accept-Encoding"
    body = await raw.read()
    assert gzip.decompress(body) == await plain.read()
    assert len(body) < len(await plain.read()) / 3


async def heard(instance, rid: int, response) -> None:
    """Wait until another instance has heard a write's notification: PostgreSQL sends it at the
    commit and it arrives within a millisecond, but a loaded machine may schedule the listening
    backend later than the write's answer reaches the client. (X-Serveline-Min-Seq removes
    even that wait: test_min_seq_reads_your_own_write_at_once_anywhere.)"""
    seq = int(response.headers["X-Serveline-Seq"])
    for _ in range(300):
        if instance.app[HUB].heard.get(rid, 0) >= seq:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the other instance never heard seq {seq}")


async def test_a_write_on_one_instance_is_seen_by_the_next_read_on_the_other(instances, rid, host,
                                                                           kitchen):
    a, b = instances
    menu = f"/api/v1/restaurants/{rid}/menu"
    before = await (await b.get(menu, headers=host)).json()  # b has it cached now
    assert item_named(before, "Fries")["available"] is True
    fries = item_named(before, "Fries")["id"]
    for available in (False, True, False):
        changed = await a.post(menu + f"/items/{fries}/availability", headers=kitchen,
                               json={"available": available})
        assert changed.status == 200
        await heard(b, rid, changed)  # nothing was deleted anywhere: b judges its entry stale
        after = await b.get(menu, headers=host)
        assert item_named(await after.json(), "Fries")["available"] is available
        assert int(after.headers["X-Serveline-Seq"]) >= int(changed.headers["X-Serveline-Seq"])


async def test_min_seq_reads_your_own_write_at_once_anywhere(instances, rid, host, kitchen):
    a, b = instances
    menu = f"/api/v1/restaurants/{rid}/menu"
    tree = await (await b.get(menu, headers=host)).json()
    fries = item_named(tree, "Fries")["id"]
    changed = await a.post(menu + f"/items/{fries}/availability", headers=kitchen,
                           json={"available": False})
    seq = changed.headers["X-Serveline-Seq"]
    after = await b.get(menu, headers=host | {"X-Serveline-Min-Seq": seq})
    assert int(after.headers["X-Serveline-Seq"]) >= int(seq)
    assert item_named(await after.json(), "Fries")["available"] is False


async def test_events_of_other_families_keep_the_menu_cached(instances, rid, host, tokens):
    a, _ = instances
    menu = f"/api/v1/restaurants/{rid}/menu"
    await a.get(menu, headers=host)
    party = await a.post(f"/api/v1/restaurants/{rid}/waitlist", headers=host,
                         json={"name": "Ng", "size": 2})
    assert party.status == 201  # a floor event: the menu did not change
    again = await a.get(menu, headers=host)
    assert await statements(a, again) == 0


async def test_settings_and_availability_follow_a_settings_change(instances, rid, host, tokens):
    a, b = instances
    manager = bearer(await tokens("manager"))
    base = f"/api/v1/restaurants/{rid}"
    settings = await (await b.get(base + "/settings", headers=host)).json()
    assert settings["settings"]["ticket_red_minutes"] == 15
    slots = await (await b.get(base + "/availability?date=2031-03-04&size=2", headers=host)).json()
    assert slots["duration_min"] == 90
    new = settings["settings"] | {"ticket_red_minutes": 12,
                                  "reservation_durations": [{"max_size": 100, "minutes": 60}]}
    patched = await a.patch(base, headers=manager, json={"settings": new})
    assert patched.status == 200, await patched.text()
    await heard(b, rid, patched)
    assert (await (await b.get(base + "/settings", headers=host)).json())["settings"][
        "ticket_red_minutes"] == 12
    again = await (await b.get(base + "/availability?date=2031-03-04&size=2", headers=host)).json()
    assert again["duration_min"] == 60


async def test_stats_count_hits_and_misses_of_my_restaurants_only(instances, rid, host, tokens,
                                                                 restaurant_ids):
    a, _ = instances
    manager = bearer(await tokens("manager"))
    await a.get(f"/api/v1/restaurants/{rid}/menu", headers=host)
    await a.get(f"/api/v1/restaurants/{rid}/menu", headers=host)
    stats = await (await a.get("/api/health/cache", headers=manager)).json()
    assert stats["backend"] == ("redis" if a.app[CACHE].backend_name == "redis" else "memory")
    assert stats["synced"] is True
    spaces = {n["namespace"]: n for n in stats["namespaces"]}
    assert set(spaces) == {f"r{rid}:{k}" for k in ("menu", "settings", "dashboard", "availability")}
    assert spaces[f"r{rid}:menu"]["hits"] >= 2 and spaces[f"r{rid}:menu"]["keys"] == 1
    assert 0 < stats["hit_ratio"] <= 1
    refused = await a.get("/api/health/cache", headers=bearer(await tokens("kitchen")))
    assert refused.status == 403


async def test_the_owner_clears_a_namespace(instances, rid, host, tokens, restaurant_ids):
    a, _ = instances
    owner, manager = bearer(await tokens("owner")), bearer(await tokens("manager"))
    await a.get(f"/api/v1/restaurants/{rid}/menu", headers=host)
    assert await a.app[CACHE].keys_in(rid, MENU) == 1
    cleared = await a.post("/api/health/cache/clear", headers=owner, json={"namespace": f"r{rid}:menu"})
    assert cleared.status == 200 and (await cleared.json())["cleared"] == [f"r{rid}:menu"]
    stats = await (await a.get("/api/health/cache", headers=owner)).json()
    assert {n["namespace"]: n["keys"] for n in stats["namespaces"]}[f"r{rid}:menu"] == 0
    fresh = await a.get(f"/api/v1/restaurants/{rid}/menu", headers=host)
    assert await statements(a, fresh) == 1  # read again from PostgreSQL

    assert (await a.post("/api/health/cache/clear", headers=manager,
                         json={"namespace": f"r{rid}"})).status == 403
    other = await a.post("/api/health/cache/clear", headers=owner,
                         json={"namespace": f"r{restaurant_ids['other']}"})
    assert other.status == 404 and (await error_of(other))["code"] == "not_found"
    for bad in ("menu", f"r{rid}:recipes", f"{rid}", ""):
        refused = await a.post("/api/health/cache/clear", headers=owner, json={"namespace": bad})
        assert refused.status == 422, bad
        assert (await error_of(refused))["details"][0]["path"] == "$.namespace"


async def test_the_dashboard_follows_every_kind_of_event(instances, rid, tokens):
    a, b = instances
    manager, server = bearer(await tokens("manager")), bearer(await tokens("server"))
    base = f"/api/v1/restaurants/{rid}"
    assert (await (await b.get(base + "/dashboard", headers=manager)).json())["open_orders"] == 0
    tree = await (await a.get(base + "/menu", headers=manager)).json()
    order = await a.post(base + "/orders", headers=server, json={
        "items": [{"menu_item_id": item_named(tree, "Burger")["id"], "qty": 1}]})
    assert order.status == 201
    await heard(b, rid, order)
    after = await (await b.get(base + "/dashboard", headers=manager)).json()
    assert (after["open_orders"], after["open_tickets"]) == (1, 1)


async def test_large_uncached_answers_are_gzipped_and_small_ones_are_not(client, rid, host):
    base = f"/api/v1/restaurants/{rid}"
    tables = await client.get(base + "/tables?limit=200", headers=host | {"Accept-Encoding": "gzip"},
                              auto_decompress=False)
    assert tables.headers["Content-Encoding"] == "gzip"
    plain = await client.get(base + "/tables?limit=200", headers=host | {"Accept-Encoding": "identity"})
    assert gzip.decompress(await tables.read()) == await plain.read()
    small = await client.get("/api/health", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert "Content-Encoding" not in small.headers


async def test_each_restaurants_menu_and_settings_are_warmed_at_start(instances, restaurant_ids):
    a, _ = instances
    cache = a.app[CACHE]
    for _ in range(100):  # warming runs beside readiness, not before it
        counts = [await cache.keys_in(rid, kind) for rid in restaurant_ids.values()
                  for kind in (MENU, SETTINGS)]
        if all(counts):
            break
        await asyncio.sleep(0.05)
    assert counts == [1, 1, 1, 1]
    assert not cache.misses  # nobody asked yet: these were read at start-up
