"""Waits cut short and resources running out: a clear 503 with Retry-After, in bounded time,
nothing half written, never a 500.

The faults are real PostgreSQL behaviour: a row lock held by another session, a statement
slowed by a trigger, PostgreSQL's own disk-full and out-of-memory errors raised by a trigger,
and a cluster whose connection slots are all taken.
"""
from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import msgspec
import pytest
from conftest import LIGHT_ARGON2, PASSWORD, bearer, error_of, login, table_counts

from server.app import create_app
from server.auth import Passwords
from server.config import Config
from server.keys import POOL
from store.migrate import apply_migrations
from store.pool import create_pool
from store.seed import seed_restaurant

TIMEOUT_MS = 1000  # statements
LOCK_TIMEOUT_MS = 500  # waits for a lock
# A wait cut short at TIMEOUT_MS must be answered well before the default statement timeout.
ANSWER_SECONDS = 3.0


async def timed(request) -> tuple[object, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


def changed(before: dict, after: dict) -> int:
    """Tables (and restaurant seqs) whose counts differ: 0 means nothing was written."""
    return sum(before[name] != after.get(name) for name in before)


async def assert_retry_later(response) -> None:
    assert response.status == 503, await response.text()
    assert int(response.headers["Retry-After"]) > 0
    assert (await error_of(response))["code"] == "unavailable"


@pytest.fixture(autouse=True)
def no_errors_logged(caplog):
    """A fault is answered, never an unhandled error (logged at ERROR; slow SQL is logged at
    ERROR too, by design, and the waits here are slow on purpose)."""
    yield
    errors = [r for r in caplog.get_records("call")
              if r.levelno >= logging.ERROR and r.name != "serveline.sql"]
    assert not errors, [r.getMessage() for r in errors]


@pytest.fixture
async def quick(make_client, config):
    """A server whose statements end after a second, and lock waits after half a second."""
    client = await make_client(msgspec.structs.replace(config, statement_timeout_ms=TIMEOUT_MS,
                                                       lock_timeout_ms=LOCK_TIMEOUT_MS))
    token = (await login(client, "server@demo.test"))["token"]
    return client, bearer(token)


@pytest.fixture
async def burger(db) -> int:
    return await db.fetchval("SELECT id FROM menu_items WHERE name = 'Burger'")


async def test_a_write_to_an_order_locked_past_the_lock_timeout_is_a_503_and_writes_nothing(
        quick, db, base, burger, figures):
    client, server = quick
    created = await client.post(base + "/orders", headers=server,
                                json={"items": [{"menu_item_id": burger}], "hold": True})
    order = await created.json()
    lines = {"items": [{"menu_item_id": burger, "qty": 2}]}
    keyed = {**server, "Idempotency-Key": "add-while-locked"}
    async with db.transaction():  # another session holds the order, longer than the timeout
        await db.execute("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE", order["id"])
        before = await table_counts(db)
        added, add_seconds = await timed(client.post(base + f"/orders/{order['id']}/items",
                                                     headers=keyed, json=lines))
        closed, close_seconds = await timed(client.post(
            base + f"/orders/{order['id']}/close", headers=server,
            json={"payment": {"method": "card", "amount_minor": 100_000}}))
        after = await table_counts(db)
        await assert_retry_later(added)
        await assert_retry_later(closed)
        assert LOCK_TIMEOUT_MS / 1000 * 0.9 < add_seconds < ANSWER_SECONDS
        assert close_seconds < ANSWER_SECONDS
        assert after == before  # nothing half written
    again = await client.post(base + f"/orders/{order['id']}/items", headers=keyed, json=lines)
    figures("lock_timeout", faults=1, lock_timeout_ms=LOCK_TIMEOUT_MS,
            answers=f"{added.status}/{closed.status}", add_s=add_seconds, close_s=close_seconds,
            tables_changed=changed(before, after), retry_same_key=again.status)
    assert again.status == 200, await again.text()  # the same key, once the lock is gone
    assert sum(i["qty"] for i in (await again.json())["items"]) == 3  # added once


async def test_a_statement_past_the_statement_timeout_is_a_503_and_writes_nothing(
        quick, db, base, burger, figures):
    client, server = quick
    await db.execute("""
        CREATE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep(5); RETURN NEW; END $$;
        CREATE TRIGGER slow_orders BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION slow_down();
    """)
    before = await table_counts(db)
    keyed = {**server, "Idempotency-Key": "slow-order"}
    order = {"items": [{"menu_item_id": burger}]}
    response, seconds = await timed(client.post(base + "/orders", headers=keyed, json=order))
    after = await table_counts(db)
    await db.execute("DROP TRIGGER slow_orders ON orders")
    again = await client.post(base + "/orders", headers=keyed, json=order)
    made = await db.fetchval("SELECT count(*) FROM orders") - before["orders"]
    figures("statement_timeout", faults=1, statement_timeout_ms=TIMEOUT_MS,
            answer=response.status, answer_s=seconds, tables_changed=changed(before, after),
            retry_same_key=again.status, orders_existing=made)
    await assert_retry_later(response)
    assert seconds < ANSWER_SECONDS
    assert after == before
    assert again.status == 201, await again.text()
    assert made == 1


async def test_pool_connections_cap_statements_lock_waits_and_idle_transactions(
        make_client, config, figures):
    client = await make_client(msgspec.structs.replace(config, statement_timeout_ms=TIMEOUT_MS,
                                                       lock_timeout_ms=LOCK_TIMEOUT_MS,
                                                       idle_in_transaction_timeout_ms=300))
    async with client.app[POOL].acquire() as conn:
        shown = {name: await conn.fetchval(f"SHOW {name}") for name in (
            "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")}
        figures("pool_settings", **shown)
        assert shown == {"statement_timeout": "1s", "lock_timeout": "500ms",
                         "idle_in_transaction_session_timeout": "300ms"}
        with pytest.raises(asyncpg.QueryCanceledError):  # no statement outlives the timeout
            await conn.execute("SELECT pg_sleep(3)")
    async with client.app[POOL].acquire() as conn:
        with pytest.raises((asyncpg.IdleInTransactionSessionTimeoutError,
                            asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError)):
            async with conn.transaction():  # a transaction left open is ended by PostgreSQL
                await conn.execute("SELECT 1")
                await asyncio.sleep(0.8)
                await conn.execute("SELECT 1")


@pytest.mark.parametrize(("sqlstate", "what"), [
    ("53100", "could not extend file: No space left on device"), ("53200", "out of memory")])
async def test_a_full_disk_or_exhausted_memory_is_a_503_not_a_500(
        quick, db, base, burger, sqlstate, what, figures):
    client, server = quick
    # PostgreSQL's own error, as it raises it when the disk fills up while an order is inserted.
    await db.execute(f"""
        CREATE FUNCTION resources_out() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '{what}' USING ERRCODE = '{sqlstate}'; END $$;
        CREATE TRIGGER resources_out BEFORE INSERT ON orders FOR EACH ROW
            EXECUTE FUNCTION resources_out();
    """)
    before = await table_counts(db)
    response = await client.post(base + "/orders", headers=server,
                                 json={"items": [{"menu_item_id": burger}]})
    after = await table_counts(db)
    figures(f"sqlstate_{sqlstate}", faults=1, answer=response.status,
            retry_after=response.headers.get("Retry-After"), tables_changed=changed(before, after))
    await assert_retry_later(response)
    assert after == before


async def test_no_connection_slot_left_is_a_503_and_the_pool_recovers_by_itself(
        cluster, aiohttp_client, caplog, figures):
    # The app signs in as a role of its own (not a superuser): PostgreSQL then holds it to the
    # role's connection limit, which answers a new connection past it with SQLSTATE 53300
    # (too_many_connections), as a full max_connections does; unlike filling the cluster's slots
    # against the pool's own reconnecting, it leaves nothing to chance.
    admin = await asyncpg.connect(cluster.admin_dsn)
    try:
        await admin.execute("CREATE ROLE serveline LOGIN")
        await admin.execute("CREATE DATABASE serveline OWNER serveline")
        dsn = cluster.admin_dsn.replace("postgres:@/postgres", "serveline:@/serveline")
        await apply_migrations(dsn)
        pool = await create_pool(dsn, min_size=1, max_size=1, statement_timeout_ms=10_000,
                                 idle_in_transaction_timeout_ms=10_000)
        try:
            password_hash = Passwords(LIGHT_ARGON2["argon2_time_cost"],
                                      LIGHT_ARGON2["argon2_memory_kib"]).hash_now(PASSWORD)
            rid = await seed_restaurant(pool, slug="demo", name="Demo", email_domain="demo.test",
                                        password_hash=password_hash)
        finally:
            await pool.close()
        client = await aiohttp_client(create_app(Config(
            database_url=dsn, seed_demo=False, pool_min=1, pool_max=4, alert_check_seconds=3600.0,
            **LIGHT_ARGON2)))
        server = bearer((await login(client, "server@demo.test"))["token"])
        orders = f"/api/v1/restaurants/{rid}/orders"
        assert (await client.get(orders, headers=server)).status == 200
        # Only the LISTEN connection may stay; the pool's connections end and cannot come back.
        await admin.execute("ALTER ROLE serveline CONNECTION LIMIT 1")
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = 'serveline'")
        await asyncio.sleep(0.2)
        full, seconds = await timed(client.get(orders, headers=server))
        await assert_retry_later(full)
        assert seconds < ANSWER_SECONDS
        assert any(r.exc_info and isinstance(r.exc_info[1], asyncpg.TooManyConnectionsError)
                   for r in caplog.records)  # it was PostgreSQL's 53300 that was answered
        await admin.execute("ALTER ROLE serveline CONNECTION LIMIT -1")
        recovered = await client.get(orders, headers=server)
        figures("sqlstate_53300", faults=1, answer=full.status, answer_s=seconds,
                after_limit_lifted=recovered.status)
        assert recovered.status == 200  # no restart needed
    finally:
        await admin.close()
