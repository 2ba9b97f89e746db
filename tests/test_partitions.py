"""The event log by month: months made ahead, a month past retention detached and dropped
whole, and resume exact inside what is kept and a reset outside it."""
from __future__ import annotations

from datetime import UTC, datetime

from conftest import error_of

from server.keys import POOL
from store import partitions


async def month_names(db) -> list[str]:
    return [r["relname"] for r in await db.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'events'::regclass ORDER BY 1")]


def this_month(n: int = 0) -> datetime:
    return partitions.add_months(partitions.month_start(datetime.now(UTC)), n)


async def test_the_log_is_partitioned_by_month_with_months_made_ahead(client, db):
    assert await db.fetchval("SELECT partstrat::text FROM pg_partitioned_table "
                             "WHERE partrelid = 'events'::regclass") == "r"
    ahead = [partitions.name_of(this_month(n)) for n in range(partitions.AHEAD + 1)]
    assert set(ahead) <= set(await month_names(db))
    # A round as if it were five months on makes the months then due, once.
    later = this_month(5)
    made = await partitions.make_ahead(client.app[POOL], later)
    assert made == [partitions.name_of(this_month(n)) for n in (5, 6, 7) if
                    partitions.name_of(this_month(n)) not in ahead]
    assert await partitions.make_ahead(client.app[POOL], later) == []


async def test_a_row_with_no_month_lands_in_the_default_and_moves_when_its_month_is_made(
        client, db, rid):
    far = this_month(12)
    await db.execute("INSERT INTO events (restaurant_id, seq, epoch, channel, name, at) "
                     "SELECT id, 1000000000, epoch, 'manager', 'restaurant.updated', $2 "
                     "FROM restaurants WHERE id = $1", rid, far)
    assert await db.fetchval("SELECT count(*) FROM events_default") == 1
    async with client.app[POOL].acquire() as conn:
        assert await partitions.make_month(conn, far)
    assert await db.fetchval("SELECT count(*) FROM events_default") == 0
    assert await db.fetchval(f'SELECT seq FROM "{partitions.name_of(far)}"') == 10**9


async def test_a_month_past_retention_is_dropped_whole_and_resume_holds_inside_the_rest(
        client, db, rid, base, server, menu, feed_key, open_socket, tokens):
    for _ in range(3):
        response = await client.post(base + "/orders", headers=server, json={
            "items": [{"menu_item_id": menu["Burger"]["id"]}]})
        assert response.status == 201
    seqs = [r["seq"] for r in await db.fetch(
        "SELECT seq FROM events WHERE restaurant_id = $1 ORDER BY seq", rid)]
    # The first half of the log was written three months ago (moved into that month).
    old = this_month(-3)
    async with client.app[POOL].acquire() as conn:
        assert await partitions.make_month(conn, old)
    cut = seqs[len(seqs) // 2]
    await db.execute("UPDATE events SET at = $3 WHERE restaurant_id = $1 AND seq <= $2",
                     rid, cut, old)
    assert await db.fetchval(f'SELECT count(*) FROM "{partitions.name_of(old)}"') == len(
        [s for s in seqs if s <= cut])
    kept = await db.fetchval("SELECT count(*) FROM events WHERE restaurant_id = $1 AND seq > $2",
                             rid, cut)
    dropped = await partitions.drop_past(client.app[POOL], retention_hours=24)
    assert dropped == [partitions.name_of(old)]
    assert partitions.name_of(old) not in await month_names(db)
    assert await db.fetchval("SELECT to_regclass($1)", partitions.name_of(old)) is None
    assert await db.fetchval("SELECT purged_through_seq FROM restaurants WHERE id = $1", rid) == cut
    assert await db.fetchval("SELECT count(*) FROM events WHERE restaurant_id = $1", rid) == kept
    # Inside what is kept: the feed and a socket resume give every later event, exactly.
    page = await (await client.get(base + f"/events?since={cut}", headers=feed_key)).json()
    assert [e["seq"] for e in page["items"]] == [s for s in seqs if s > cut]
    sock = await open_socket(rid, await tokens("manager"))
    await sock.send(type="subscribe", channels=["orders", "kitchen", "floor", "menu", "manager"],
                    since=cut, epoch=page["epoch"])
    assert [e["seq"] for e in await sock.events(len(page["items"]))] == [s for s in seqs if s > cut]
    # Behind it: a reset, on the feed and on the socket.
    gone = await client.get(base + f"/events?since={cut - 1}", headers=feed_key)
    assert gone.status == 410 and (await error_of(gone))["code"] == "reset_required"
    behind = await open_socket(rid, await tokens("manager"))
    await behind.send(type="subscribe", channels=["orders"], since=cut - 1, epoch=page["epoch"])
    assert (await behind.until("reset"))["seq"] >= seqs[-1]


async def test_a_month_that_ended_inside_the_retention_is_kept(client, db, rid):
    last = this_month(-1)
    async with client.app[POOL].acquire() as conn:
        await partitions.make_month(conn, last)
    hours_since_it_ended = (datetime.now(UTC) - this_month(0)).total_seconds() / 3600
    assert await partitions.drop_past(client.app[POOL], hours_since_it_ended + 1) == []
    assert partitions.name_of(last) in await month_names(db)
