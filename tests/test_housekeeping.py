"""Upkeep: idempotent answers go after 24 hours, dead sessions after a week (the event log's
months: tests/test_partitions.py)."""
from __future__ import annotations

import asyncio

import msgspec
from conftest import bearer


async def test_old_idempotency_keys_and_dead_sessions_are_purged_in_the_background(
        make_client, config, db, rid, tokens):
    client = await make_client(msgspec.structs.replace(config, housekeeping_seconds=0.05))
    headers = bearer(await tokens("host"))
    await tokens("server")  # a second session, which stays
    for key in ("fresh", "stale"):
        response = await client.post(f"/api/v1/restaurants/{rid}/waitlist", headers={
            **headers, "Idempotency-Key": key}, json={"name": key, "size": 2})
        assert response.status == 201
    await db.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours' "
                     "WHERE key = 'stale'")
    sessions = await db.fetchval("SELECT count(*) FROM sessions")
    await db.execute("UPDATE sessions SET expires_at = now() - interval '8 days' "
                     "WHERE id = (SELECT min(id) FROM sessions)")
    for _ in range(100):
        if (await db.fetchval("SELECT count(*) FROM idempotency_keys") == 1
                and await db.fetchval("SELECT count(*) FROM sessions") == sessions - 1):
            break
        await asyncio.sleep(0.05)
    assert [r["key"] for r in await db.fetch("SELECT key FROM idempotency_keys")] == ["fresh"]
    assert await db.fetchval("SELECT count(*) FROM sessions") == sessions - 1
