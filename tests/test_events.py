"""The event outbox: numbered per restaurant in commit order, no gaps, nothing from failed writes."""
from __future__ import annotations

import asyncio

import msgspec
import pytest
from conftest import bearer, error_of, table_counts

from store import events
from store.pool import create_pool


@pytest.fixture
async def pool(database_url):
    pool = await create_pool(database_url, min_size=1, max_size=4, statement_timeout_ms=10_000,
                             idle_in_transaction_timeout_ms=10_000)
    yield pool
    await pool.close()


async def test_50_concurrent_writes_get_seqs_without_gap_in_commit_order(client, db, rid, tokens):
    headers = bearer(await tokens("manager"))
    start = await db.fetchval("SELECT seq FROM restaurants WHERE id = $1", rid)
    notified: list[str] = []
    await db.add_listener(events.NOTIFY_CHANNEL, lambda *args: notified.append(args[3]))

    async def register(n: int) -> int:
        response = await client.post(f"/api/v1/restaurants/{rid}/devices", headers=headers,
                                     json={"name": f"Screen {n}", "kind": "screen", "role": "kitchen"})
        assert response.status == 201, await response.text()
        return (await response.json())["device"]["id"]

    device_ids = await asyncio.gather(*(register(n) for n in range(50)))
    assert len(set(device_ids)) == 50

    rows = await db.fetch("SELECT seq, name, data FROM events WHERE restaurant_id = $1 AND seq > $2 "
                          "ORDER BY seq", rid, start)
    assert [r["seq"] for r in rows] == list(range(start + 1, start + 51))
    assert {msgspec.json.decode(r["data"])["device_id"] for r in rows} == set(device_ids)
    assert await db.fetchval("SELECT seq FROM restaurants WHERE id = $1", rid) == start + 50

    # Notifications arrive in commit order: their seqs must climb one by one.
    for _ in range(100):
        if len(notified) >= 50:
            break
        await asyncio.sleep(0.02)
    seqs = [int(payload.split(":")[1]) for payload in notified
            if payload.split(":")[0] == str(rid)]
    assert seqs == list(range(start + 1, start + 51))


async def test_every_restaurant_counts_on_its_own(db, pool, restaurant_ids):
    demo, other = restaurant_ids["demo"], restaurant_ids["other"]
    before = dict(await db.fetch("SELECT id, seq FROM restaurants"))
    async with events.write(pool) as tx:
        tx.emit(other, "manager", "test.one", {})
        tx.emit(demo, "manager", "test.two", {})
        tx.emit(other, "manager", "test.three", {})
    assert tx.last_seq == {demo: before[demo] + 1, other: before[other] + 2}


async def test_failed_write_leaves_no_event_and_no_seq(db, pool, rid):
    before = await table_counts(db)
    with pytest.raises(RuntimeError):
        async with events.write(pool) as tx:
            await tx.conn.execute("INSERT INTO areas (restaurant_id, name) VALUES ($1, 'Bar')", rid)
            tx.emit(rid, "floor", "area.created", {"name": "Bar"})
            raise RuntimeError("the handler failed after its SQL ran")
    assert await table_counts(db) == before


async def test_failure_while_appending_rolls_back_the_whole_write(db, pool, rid):
    before = await table_counts(db)
    with pytest.raises(LookupError):
        async with events.write(pool) as tx:
            await tx.conn.execute("INSERT INTO areas (restaurant_id, name) VALUES ($1, 'Bar')", rid)
            tx.emit(rid, "floor", "area.created", {"name": "Bar"})
            tx.emit(999_999, "floor", "area.created", {"name": "nowhere"})
    assert await table_counts(db) == before


async def test_rejected_api_write_leaves_no_event(client, db, rid, tokens):
    headers = bearer(await tokens("owner"))
    before = await table_counts(db)
    response = await client.post(f"/api/v1/restaurants/{rid}/staff", headers=headers,
                                 json={"email": "host@demo.test", "name": "Hana", "role": "host"})
    assert response.status == 409
    assert (await error_of(response))["code"] == "conflict"
    assert await table_counts(db) == before
