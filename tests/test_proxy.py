"""Behind a proxy: the client's address and scheme come from the proxy only with --behind-proxy,
and two run.py instances behind the shipped nginx config (docs/deploy/nginx.conf) lose nothing
while one is stopped (SIGTERM) and restarted and the other killed (SIGKILL)."""
from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import pwd
import re
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestServer
from conftest import PASSWORD
from faults.fleet import (
    Feed,
    Feeds,
    Site,
    Writers,
    assert_nothing_lost,
    check_feeds,
    check_orders,
    http_session,
    last_by_channel,
    register_devices,
    wait_for,
)
from faults.processes import RunPy, free_port

from server.app import create_app
from server.auth import SESSION_COOKIE
from server.logs import AccessLog

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "docs" / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")  # Debian: not on a user's PATH
CLIENTS = 200
WRITERS = 2
PACE = 0.05  # seconds between one writer's orders
ORDERS_EVENTS = "SELECT count(*) FROM events WHERE restaurant_id = $1 AND channel = 'orders' AND seq > $2"


# The client address and scheme, with and without --behind-proxy ----------------------------

async def serve(aiohttp_client, config):
    """A server with the access log on, as run.py starts it with --access-log true."""
    server = TestServer(create_app(config))
    await server.start_server(access_log_class=AccessLog,
                              access_log=logging.getLogger("serveline.access"))
    return await aiohttp_client(server)


def secure_cookie(response: aiohttp.ClientResponse) -> bool:
    cookie = next(c for c in response.headers.getall("Set-Cookie") if c.startswith(SESSION_COOKIE))
    return "secure" in [part.strip().lower() for part in cookie.split(";")]


async def logged(caplog, request_id: str) -> logging.LogRecord:
    """The access log record of a request (written once the answer has gone out)."""
    for _ in range(200):
        found = [r for r in caplog.records
                 if r.name == "serveline.access" and getattr(r, "request_id", None) == request_id]
        if found:
            return found[0]
        await asyncio.sleep(0.01)
    raise AssertionError(f"no access log record for {request_id}")


async def sign_in(client, request_id: str, **headers: str) -> aiohttp.ClientResponse:
    response = await client.post("/api/v1/auth/login", headers={**headers, "X-Request-Id": request_id},
                                 json={"email": "host@demo.test", "password": PASSWORD})
    assert response.status == 200, await response.text()
    return response


async def test_without_behind_proxy_forwarded_headers_change_nothing(aiohttp_client, config, db, caplog):
    caplog.set_level(logging.INFO, logger="serveline.access")
    client = await serve(aiohttp_client, msgspec.structs.replace(config, rate_limit_address="3/minute"))
    login = await sign_in(client, "forged-1", **{"X-Forwarded-For": "203.0.113.7",
                                                 "X-Forwarded-Proto": "https"})
    assert not secure_cookie(login)
    assert await db.fetchval("SELECT address FROM sessions ORDER BY id DESC LIMIT 1") == "127.0.0.1"
    assert (await logged(caplog, "forged-1")).remote == "127.0.0.1"
    for n in range(2):  # every forged address counts against the one real address
        forged = {"X-Forwarded-For": f"203.0.113.{10 + n}"}
        assert (await client.get("/api/v1/openapi.json", headers=forged)).status == 200
    refused = await client.get("/api/v1/openapi.json", headers={"X-Forwarded-For": "203.0.113.99"})
    assert refused.status == 429


async def test_behind_proxy_the_address_the_proxy_appended_and_its_scheme_count(
        aiohttp_client, config, db, caplog):
    caplog.set_level(logging.INFO, logger="serveline.access")
    client = await serve(aiohttp_client, msgspec.structs.replace(
        config, behind_proxy=True, rate_limit_address="3/minute"))
    # The client said 198.51.100.1; the proxy appended the address it saw, 203.0.113.7.
    login = await sign_in(client, "proxied-1", **{"X-Forwarded-For": "198.51.100.1, 203.0.113.7",
                                                  "X-Forwarded-Proto": "https"})
    assert secure_cookie(login)
    assert await db.fetchval("SELECT address FROM sessions ORDER BY id DESC LIMIT 1") == "203.0.113.7"
    assert (await logged(caplog, "proxied-1")).remote == "203.0.113.7"  # with its request id
    assert not secure_cookie(await sign_in(client, "proxied-2", **{"X-Forwarded-Proto": "http"}))

    def via(*addresses: str) -> dict[str, str]:
        return {"X-Forwarded-For": ", ".join(addresses)}
    # 203.0.113.7 signed in once: two more requests, then its limit.
    assert (await client.get("/api/v1/openapi.json", headers=via("203.0.113.7"))).status == 200
    assert (await client.get("/api/v1/openapi.json", headers=via("10.1.1.1", "203.0.113.7"))).status == 200
    assert (await client.get("/api/v1/openapi.json", headers=via("203.0.113.7"))).status == 429
    # Only the right-most entry counts: what the client writes left of it changes nothing.
    assert (await client.get("/api/v1/openapi.json", headers=via("203.0.113.8", "203.0.113.7"))).status == 429
    assert (await client.get("/api/v1/openapi.json", headers=via("203.0.113.7", "203.0.113.8"))).status == 200
    # Straight to the port (a probe) or an unreadable header: the peer's own address.
    assert (await client.get("/api/v1/openapi.json")).status == 200
    assert (await client.get("/api/v1/openapi.json", headers=via("not-an-address"))).status == 200


# Two instances behind nginx ------------------------------------------------------------

def render_nginx(folder: Path, listen: int, instances: list[int]) -> Path:
    """The shipped nginx.conf with this test's addresses, inside a minimal main config whose
    paths are all under `folder`. Fails if the shipped file no longer has the lines swapped."""
    site = SHIPPED.read_text()
    site, listens = re.subn(r"(?m)^    listen 80;$", f"    listen 127.0.0.1:{listen};", site)
    ports = iter(instances)
    site, servers = re.subn(r"(?m)^    server 127\.0\.0\.1:\d+ ",
                            lambda _: f"    server 127.0.0.1:{next(ports)} ", site)
    assert (listens, servers) == (1, len(instances)), "docs/deploy/nginx.conf changed shape"
    (folder / "serveline.conf").write_text(site)
    temp = "\n".join(f"    {kind}_temp_path {folder / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main = folder / "nginx.conf"
    main.write_text(f"worker_processes 2;\nevents {{ worker_connections 2048; }}\n"
                    f"http {{\n{temp}\n    access_log {folder / 'access.log'};\n"
                    f"    include {folder / 'serveline.conf'};\n}}\n")
    return main


@contextlib.asynccontextmanager
async def nginx(folder: Path, listen: int, instances: list[int]):
    """nginx in the foreground as this user, in front of `instances`; stopped on the way out."""
    config, log = render_nginx(folder, listen, instances), folder / "error.log"
    directives = f"daemon off; pid {folder / 'nginx.pid'}; error_log {log};"
    if os.geteuid() == 0:  # workers would otherwise switch to an unprivileged user
        directives += (f" user {pwd.getpwuid(os.geteuid()).pw_name}"
                       f" {grp.getgrgid(os.getegid()).gr_name};")
    proc = await asyncio.create_subprocess_exec(
        NGINX, "-p", str(folder), "-c", str(config), "-e", str(log), "-g", directives,
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.returncode is None, f"nginx exited:\n{log.read_text()}"
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", listen)
                writer.close()
                break
            assert time.monotonic() < deadline, f"nginx is not listening:\n{log.read_text()}"
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{listen}"
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have exited on its own
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


class OrderScreens(Feeds):
    """Screens following the `orders` channel, resumed after every drop (faults.fleet.Feed)."""

    def __init__(self, http: aiohttp.ClientSession, site: Site, tokens: list[str]) -> None:
        self.feeds = [Feed(http, site.ws_url, token, f"screen-{n}", channels=["orders"])
                      for n, token in enumerate(tokens)]
        self.tasks = [asyncio.create_task(feed.run()) for feed in self.feeds]

    def drops(self) -> int:
        return sum(feed.drops for feed in self.feeds)

    async def resumed(self, drops_before: int, dropped: int, timeout: float) -> float:
        """Seconds until `dropped` more connections were lost and every screen is subscribed."""
        def done() -> bool:
            return (self.drops() - drops_before >= dropped
                    and all(feed.subscribed.is_set() for feed in self.feeds))
        return await wait_for(done, timeout, lambda: f"{self.drops() - drops_before}/{dropped} "
                              f"dropped, {sum(f.subscribed.is_set() for f in self.feeds)} "
                              f"subscribed; failures {self.failures()}")


async def signed_in_through(http: aiohttp.ClientSession, url: str) -> Site:
    """The demo restaurant's manager, signed in through the proxy from 127.0.0.2 with forged
    forwarding headers: the instance (whose peer is nginx, 127.0.0.1) must see what nginx saw."""
    forged = {"X-Forwarded-For": "203.0.113.50", "X-Forwarded-Proto": "https"}
    from_elsewhere = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=from_elsewhere) as other, other.post(
            url + "/api/v1/auth/login", headers=forged,
            json={"email": "manager@demo.test", "password": PASSWORD}) as reply:
        assert reply.status == 200, await reply.text()
        assert not secure_cookie(reply)  # nginx said http, whatever the client claimed
        login = await reply.json()
    rid = next(r["id"] for r in login["restaurants"] if r["slug"] == "demo")
    headers = {"Authorization": f"Bearer {login['token']}"}
    async with http.get(f"{url}/api/v1/restaurants/{rid}/menu", headers=headers) as reply:
        menu = await reply.json()
    items = [i["id"] for c in menu["categories"] for i in c["items"] if i["available"]]
    return Site(url=url, rid=rid, manager=login["token"], items=items)


async def sockets_on(http: aiohttp.ClientSession, instance: RunPy, site: Site) -> int:
    """The sockets one instance holds, asked of it directly (not through the proxy)."""
    async with http.get(instance.url + "/api/health/realtime",
                        headers={"Authorization": f"Bearer {site.manager}"}) as reply:
        assert reply.status == 200, await reply.text()
        return (await reply.json())["connections"]


@pytest.mark.slow
@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)")
async def test_two_instances_behind_nginx_lose_nothing_when_one_stops_and_one_is_killed(
        tmp_path, database_url, db):
    started = time.monotonic()
    cache = {"CACHE_URL": os.environ["REDIS_URL"]} if os.environ.get("REDIS_URL") else {}
    a, b = (RunPy(tmp_path, name, free_port(), database_url=database_url, env=cache,
                  args=("--behind-proxy", "true", "--seed-demo", "false")) for name in "ab")
    try:
        a.start()
        b.start()
        await asyncio.gather(a.wait_ready(), b.wait_ready())
        async with nginx(tmp_path, free_port(), [a.port, b.port]) as url, http_session() as http:
            site = await signed_in_through(http, url)
            assert await db.fetchval("SELECT address FROM sessions ORDER BY id DESC LIMIT 1") == "127.0.0.2"
            screens = await register_devices(http, site, CLIENTS, role="kitchen", kind="screen",
                                             prefix="Screen")
            ipads = await register_devices(http, site, WRITERS, role="server", kind="ipad", prefix="iPad")
            feeds = OrderScreens(http, site, screens)
            writers = None
            try:
                await feeds.all_subscribed(timeout=30)
                spread = [await sockets_on(http, each, site) for each in (a, b)]
                assert sum(spread) == CLIENTS and min(spread) >= CLIENTS // 4, spread  # least_conn
                writers = Writers(http, site, ipads, PACE)
                await writers.placing(more=5, timeout=15)

                # A rolling restart: stop a (its sockets are asked to come back later), start it.
                on_a, drops = spread[0], feeds.drops()
                stopping = time.monotonic()
                assert await asyncio.to_thread(a.stop) == 0, a.output()[-3000:]
                a.start()
                await feeds.resumed(drops, on_a, timeout=20)
                sigterm_resumed = time.monotonic() - stopping
                # Each was told `reconnect` (after_ms) and closed with 4000, through nginx.
                assert sum(f.closes["4000"] for f in feeds.feeds) == on_a
                await a.wait_ready()
                await writers.placing(more=5, timeout=15)

                # b dies without a word: its sockets drop and come back through nginx to a.
                on_b, drops = await sockets_on(http, b, site), feeds.drops()
                killing = time.monotonic()
                b.kill()
                await feeds.resumed(drops, on_b, timeout=20)
                sigkill_resumed = time.monotonic() - killing
                assert await sockets_on(http, a, site) == CLIENTS
                await writers.placing(more=5, timeout=15)
                await writers.stop()
                await feeds.caught_up(await last_by_channel(database_url, site.rid), timeout=20)
            finally:
                if writers is not None:  # ended before the session they use is closed
                    writers.stopping.set()
                    for task in writers.tasks:
                        task.cancel()
                    await asyncio.gather(*writers.tasks, return_exceptions=True)
                reports = await feeds.stop()
            delivered = await check_feeds(database_url, site.rid, reports)
            orders = await check_orders(database_url, site.rid, writers.writers)
        shown = {"clients": CLIENTS, "spread": "/".join(map(str, spread)),
                 "events_committed": delivered["events_committed"],
                 "of_them_orders": await db.fetchval(ORDERS_EVENTS, site.rid, min(
                     r["first_seq"] for r in reports)),
                 "delivered_per_client": f"{delivered['delivered_min']}-{delivered['delivered_max']}",
                 "lost": delivered["lost"], "duplicates": delivered["duplicates"],
                 "reconnects": delivered["drops"], "failed_attempts": sum(feeds.failures().values()),
                 "sigterm_sockets": on_a, "sigterm_all_resumed_s": round(sigterm_resumed, 2),
                 "sigkill_sockets": on_b, "sigkill_all_resumed_s": round(sigkill_resumed, 2),
                 "orders": orders["orders_2xx"], "post_retries": orders["retries"],
                 "redis": bool(cache), "duration_s": round(time.monotonic() - started, 1)}
        print("\nPROXY " + " ".join(f"{k}={v}" for k, v in shown.items()), flush=True)
        assert_nothing_lost(delivered, orders)
        assert delivered["drops"] >= on_a + on_b
    finally:
        a.close()
        b.close()
