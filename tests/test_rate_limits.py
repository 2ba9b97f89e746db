"""Request rate limits: 429 with Retry-After past the limit, per key, device and address, by plan.

Each test runs with the in-memory counters, and again with Redis when REDIS_URL is set.
"""
from __future__ import annotations

import asyncio
import logging
import os

import aiohttp
import msgspec
import pytest
from conftest import bearer, error_of, table_counts

from server.config import Config
from server.ratelimit import RateLimits

BACKENDS = ["memory"] + (["redis"] if os.environ.get("REDIS_URL") else [])
needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set")
PAGE = {"Accept": "text/html"}


@pytest.fixture(params=BACKENDS)
def cache_url(request) -> str | None:
    return os.environ["REDIS_URL"] if request.param == "redis" else None


@pytest.fixture
def limited(make_client, config, cache_url):
    """`await limited(rate_limit_api_key="5/2 seconds", …)`: a server with those limits."""
    async def make(**settings):
        return await make_client(msgspec.structs.replace(config, cache_url=cache_url, **settings))
    return make


async def new_key(client, base, manager, name="pos", scopes=("read", "write")) -> dict:
    response = await client.post(base + "/api-keys", headers=manager,
                                 json={"name": name, "scopes": list(scopes)})
    assert response.status == 201, await response.text()
    return bearer((await response.json())["key"])


async def new_device(client, base, manager, name="bar ipad") -> dict:
    response = await client.post(base + "/devices", headers=manager,
                                 json={"name": name, "kind": "ipad", "role": "server"})
    assert response.status == 201, await response.text()
    return bearer((await response.json())["token"])


async def refused(response, window: int) -> dict:
    """A 429 in the one error shape, with a Retry-After in whole seconds within the window."""
    assert response.status == 429, response.status
    error = await error_of(response)
    assert error["code"] == "rate_limited"
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= window
    assert error["details"][0]["retry_after"] == int(retry_after)
    assert error["details"][0]["window_seconds"] == window
    assert f"try again in {retry_after} s" in error["message"]
    return error


async def test_the_sixth_request_of_a_key_is_refused_until_retry_after(limited, base, tokens):
    client = await limited(rate_limit_api_key="5/2 seconds")
    key = await new_key(client, base, bearer(await tokens("manager")))
    for _ in range(5):
        assert (await client.get(base + "/menu", headers=key)).status == 200
    too_many = await client.get(base + "/menu", headers=key)
    error = await refused(too_many, window=2)
    assert error["message"].startswith("this API key may make 5 requests every 2 seconds")
    assert error["details"] == [{"per": "api_key", "limit": 5, "window_seconds": 2,
                                 "retry_after": int(too_many.headers["Retry-After"]),
                                 "plan": "standard"}]
    await asyncio.sleep(int(too_many.headers["Retry-After"]))
    assert (await client.get(base + "/menu", headers=key)).status == 200


async def test_each_key_and_device_counts_alone(limited, base, tokens):
    client = await limited(rate_limit_api_key="3/minute", rate_limit_device="4/minute")
    manager = bearer(await tokens("manager"))
    first, second = await new_key(client, base, manager), await new_key(client, base, manager)
    device = await new_device(client, base, manager)
    for _ in range(3):
        assert (await client.get(base + "/menu", headers=first)).status == 200
    await refused(await client.get(base + "/menu", headers=first), window=60)
    for _ in range(3):  # another key of the same restaurant is unaffected
        assert (await client.get(base + "/menu", headers=second)).status == 200
    for _ in range(4):  # devices have their own limit
        assert (await client.get(base + "/menu", headers=device)).status == 200
    error = await refused(await client.get(base + "/menu", headers=device), window=60)
    assert error["message"].startswith("this device may make 4 requests a minute")
    assert (await client.get(base + "/menu", headers=manager)).status == 200  # and staff theirs


async def test_a_refused_post_writes_nothing(limited, base, tokens, db):
    client = await limited(rate_limit_api_key="3/minute")
    key = await new_key(client, base, bearer(await tokens("manager")))
    for n in range(3):
        created = await client.post(base + "/waitlist", headers=key, json={"name": f"P{n}", "size": 2})
        assert created.status == 201
    before = await table_counts(db)
    flood = await client.post(base + "/waitlist", headers=key | {"Idempotency-Key": "retry-1"},
                              json={"name": "Late", "size": 2})
    await refused(flood, window=60)
    assert await table_counts(db) == before


async def test_a_plan_change_takes_effect_without_restart(limited, base, tokens):
    client = await limited(rate_limit_api_key="3/minute", rate_limit_busy_factor=2.0)
    manager = bearer(await tokens("manager"))
    key = await new_key(client, base, manager)
    for _ in range(3):
        assert (await client.get(base + "/menu", headers=key)).status == 200
    error = await refused(await client.get(base + "/menu", headers=key), window=60)
    assert error["details"][0]["plan"] == "standard"

    wrong = await client.patch(base, headers=manager, json={"settings": {"plan": "unlimited"}})
    assert wrong.status == 422 and (await error_of(wrong))["code"] == "validation_failed"
    busy = await client.patch(base, headers=manager, json={"settings": {"plan": "busy"}})
    assert busy.status == 200
    assert (await busy.json())["restaurant"]["settings"]["plan"] == "busy"
    async with asyncio.timeout(5):  # the instance hears of it through the event stream
        while (await client.get(base + "/menu", headers=key)).status == 429:
            await asyncio.sleep(0.02)
    for _ in range(5):  # six on the busy plan, the first of them just spent
        assert (await client.get(base + "/menu", headers=key)).status == 200
    error = await refused(await client.get(base + "/menu", headers=key), window=60)
    assert error["details"][0]["plan"] == "busy" and error["details"][0]["limit"] == 6


async def test_callers_without_a_credential_count_per_address_but_health_never(limited, tokens):
    client = await limited(rate_limit_address="4/minute")
    manager = bearer(await tokens("manager"))  # signed in through another server
    for _ in range(20):  # a load balancer's probes are never limited
        assert (await client.get("/api/health")).status == 200
    for _ in range(4):
        assert (await client.get("/api/v1/openapi.json")).status == 200
    error = await refused(await client.get("/api/v1/openapi.json"), window=60)
    assert error["message"].startswith("this address may make 4 requests a minute without signing in")
    assert error["details"][0]["per"] == "address" and "plan" not in error["details"][0]
    page = await client.get("/login", headers=PAGE)  # a person at a screen gets the page
    assert page.status == 429 and page.content_type == "text/html"
    assert page.headers["Retry-After"].isdigit()
    login = await client.post("/api/v1/auth/login",
                              json={"email": "host@demo.test", "password": "whatever"})
    assert login.status == 429
    assert (await client.get("/api/v1/auth/me", headers=manager)).status == 200  # signed in: not this


async def test_a_socket_counts_once_and_its_messages_not_at_all(limited, rid, tokens):
    client = await limited(rate_limit_address="3/minute")
    token = await tokens("kitchen")  # signed in through another server
    url = f"/api/v1/restaurants/{rid}/ws"
    ws = await client.ws_connect(url, headers=bearer(token))
    assert (await ws.receive_json())["type"] == "welcome"
    for _ in range(10):
        await ws.send_json({"type": "ping"})
        assert (await ws.receive_json(timeout=5))["type"] == "pong"
    others = [await client.ws_connect(url, headers=bearer(token)) for _ in range(2)]
    for each in others:
        assert (await each.receive_json())["type"] == "welcome"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refusal:
        await client.ws_connect(url, headers=bearer(token))
    assert refusal.value.status == 429
    for each in (ws, *others):
        await each.close()


async def test_a_reconnect_flood_of_one_device_passes_with_default_limits(client, base, rid,
                                                                           tokens):
    device = await new_device(client, base, bearer(await tokens("manager")))
    for _ in range(40):  # a device that reconnects and rereads its settings over and over
        ws = await client.ws_connect(f"/api/v1/restaurants/{rid}/ws", headers=device)
        assert (await ws.receive_json())["type"] == "welcome"
        await ws.close()
        assert (await client.get(base + "/settings", headers=device)).status in (200, 304)


@needs_redis
async def test_instances_sharing_redis_share_the_count(make_client, config, base, tokens):
    settings = msgspec.structs.replace(config, cache_url=os.environ["REDIS_URL"],
                                       rate_limit_api_key="4/minute")
    a, b = await make_client(settings), await make_client(settings)
    key = await new_key(a, base, bearer(await tokens("manager")))
    for each in (a, b, a, b):
        assert (await each.get(base + "/menu", headers=key)).status == 200
    await refused(await a.get(base + "/menu", headers=key), window=60)
    await refused(await b.get(base + "/menu", headers=key), window=60)


@needs_redis
async def test_failed_sign_ins_are_counted_across_instances(make_client, config):
    settings = msgspec.structs.replace(config, cache_url=os.environ["REDIS_URL"],
                                       login_failure_limit="3/15 minutes",
                                       login_failures_before_delay=100)
    a, b = await make_client(settings), await make_client(settings)
    wrong = {"email": "host@demo.test", "password": "not it"}
    for each in (a, b, a):
        assert (await each.post("/api/v1/auth/login", json=wrong)).status == 401
    refusal = await b.post("/api/v1/auth/login", json=wrong)
    assert refusal.status == 429 and (await error_of(refusal))["code"] == "rate_limited"


async def test_with_redis_unreachable_limits_hold_in_each_process(caplog):
    """Redis away: nothing is refused for it, counts go on in memory, and it is said once."""
    limits = RateLimits(Config(cache_url="redis://127.0.0.1:1/0", rate_limit_device="3/minute"))
    item = limits.items["device", "standard"]
    with caplog.at_level(logging.WARNING, logger="serveline.ratelimit"):
        answers = [await limits.counters.hit(item, "device", "7") for _ in range(5)]
    assert answers == [True, True, True, False, False]
    assert sum("unreachable" in r.message for r in caplog.records) == 1
    refusal = await limits.refusal("device", "7", item, "standard")
    assert refusal.status == 429 and 1 <= int(refusal.headers["Retry-After"]) <= 60
    await limits.close()


async def test_limits_are_checked_at_start():
    with pytest.raises(SystemExit, match="SERVELINE_RATE_LIMIT_DEVICE"):
        RateLimits(Config(rate_limit_device="lots"))
    limits = RateLimits(Config(rate_limit_api_key="off", rate_limit_busy_factor=3))
    assert limits.items["api_key", "busy"] is None
    assert limits.items["device", "busy"].amount == 3 * limits.items["device", "standard"].amount
