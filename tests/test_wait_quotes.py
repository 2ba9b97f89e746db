"""Live wait quotes: the estimate reads the floor as it is (paying tables, last courses fired, a slow
kitchen, bookings due) and this restaurant's own history; each party keeps its quote and its wait."""
from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from conftest import error_of, table_counts

SIX_TOPS = ["D3", "D6", "D9", "D12"]  # the seeded tables that seat six


async def step(client: TestClient, base: str, host: dict[str, str], table_id: int, status: str,
               **extra: Any) -> None:
    response = await client.post(f"{base}/tables/{table_id}/status", headers=host,
                                 json={"status": status, **extra})
    assert response.status == 200, await response.text()


async def seat_all(client, base, host, table_ids: list[int], size: int) -> None:
    for table_id in table_ids:
        await step(client, base, host, table_id, "seated", party_size=size)


async def estimate(client: TestClient, base: str, host: dict[str, str], size: int) -> dict[str, Any]:
    response = await client.get(f"{base}/waitlist/estimate?size={size}", headers=host)
    assert response.status == 200, await response.text()
    return await response.json()


def reason_of(result: dict[str, Any], table_id: int) -> dict[str, Any]:
    return next(t for t in result["tables"] if t["table_id"] == table_id)


async def turns(db, rid: int, table_id: int, size: int, minutes: list[int]) -> None:
    """Finished turns of parties of `size`, of these lengths, in the last days."""
    for n, length in enumerate(minutes):
        await db.execute(
            "INSERT INTO table_turns (restaurant_id, table_id, party_size, seated_at, paying_at, freed_at) "
            "SELECT $1, $2, $3, at, at + make_interval(mins => $4 - 4), at + make_interval(mins => $4) "
            "FROM (SELECT now() - make_interval(hours => $5 + 3) AS at) s",
            rid, table_id, size, length, n)


async def test_estimate_drops_when_a_table_goes_to_paying(client, base, host, labels) -> None:
    six = [labels[t] for t in SIX_TOPS]
    await seat_all(client, base, host, six, 6)
    before = await estimate(client, base, host, 6)
    assert before["free_tables"] == 0 and before["basis"] == "default"
    assert before["minutes"] == 60 and before["paying_minutes"] == 5
    await step(client, base, host, labels["D6"], "ordering")
    await step(client, base, host, labels["D6"], "paying")
    after = await estimate(client, base, host, 6)
    assert after["minutes"] == 5 < before["minutes"]
    assert after["tables"][0] == {**after["tables"][0], "table_id": labels["D6"], "status": "paying",
                                  "frees_in": 5, "reason": "paying"}
    assert reason_of(after, labels["D3"])["frees_in"] == 60


async def test_a_table_whose_last_course_is_fired_is_near_the_end(client, db, base, rid, host,
                                                                   labels) -> None:
    six = [labels[t] for t in SIX_TOPS]
    await seat_all(client, base, host, six, 6)
    item = await db.fetchrow("SELECT id, name, station FROM menu_items WHERE restaurant_id = $1 "
                             "ORDER BY id LIMIT 1", rid)
    order_id = await db.fetchval(
        "INSERT INTO orders (restaurant_id, table_id, guests, fired_course) VALUES ($1, $2, 6, 2) "
        "RETURNING id", rid, labels["D9"])
    for course in (1, 2):
        await db.execute(
            "INSERT INTO order_items (restaurant_id, order_id, menu_item_id, name, station, qty, "
            "unit_price_minor, course, status) VALUES ($1, $2, $3, $4, $5, 1, 900, $6, 'fired')",
            rid, order_id, item["id"], item["name"], item["station"], course)
    result = await estimate(client, base, host, 6)
    assert result["minutes"] == 15  # a quarter of the 60-minute default turn
    assert reason_of(result, labels["D9"])["reason"] == "last course fired"
    await db.execute("UPDATE orders SET fired_course = 1 WHERE id = $1", order_id)  # dessert not yet
    assert (await estimate(client, base, host, 6))["minutes"] == 60


async def test_a_slow_kitchen_stretches_the_wait(client, db, base, rid, host, labels) -> None:
    six = [labels[t] for t in SIX_TOPS]
    await seat_all(client, base, host, six, 6)
    order_id = await db.fetchval("INSERT INTO orders (restaurant_id, table_id, guests) "
                                 "VALUES ($1, $2, 6) RETURNING id", rid, labels["D3"])
    for n in range(12):  # usually 10 minutes from fire to bump
        await db.execute(
            "INSERT INTO tickets (restaurant_id, order_id, station, course, status, fired_at, bumped_at) "
            "VALUES ($1, $2, 'grill', 1, 'bumped', now() - make_interval(hours => $3 + 1), "
            "now() - make_interval(hours => $3 + 1) + interval '10 minutes')", rid, order_id, n)
    usual = await estimate(client, base, host, 6)
    assert usual["kitchen_factor"] == 1.0 and usual["minutes"] == 60
    for _ in range(3):  # and now the open ones are 15 minutes old
        await db.execute("INSERT INTO tickets (restaurant_id, order_id, station, course, fired_at) "
                         "VALUES ($1, $2, 'grill', 1, now() - interval '15 minutes')", rid, order_id)
    slow = await estimate(client, base, host, 6)
    assert slow["kitchen_factor"] == 1.5 and slow["minutes"] == 90
    assert reason_of(slow, labels["D3"])["reason"] == "seated, kitchen slow"


async def test_a_table_booked_soon_is_not_offered(client, db, base, rid, host, labels) -> None:
    await seat_all(client, base, host, [labels[t] for t in ("D3", "D6", "D9")], 6)
    assert (await estimate(client, base, host, 6))["minutes"] == 0  # D12 is free
    await db.execute(
        "INSERT INTO reservations (restaurant_id, name, size, starts_at, ends_at, table_id) "
        "VALUES ($1, 'Moreau', 6, now() + interval '30 minutes', now() + interval '150 minutes', $2)",
        rid, labels["D12"])
    held = await estimate(client, base, host, 6)
    assert held["minutes"] == 60 and held["free_tables"] == 1  # the next of the seated tables
    d12 = reason_of(held, labels["D12"])
    assert d12["reason"] == "held for a booking in 30 min" and d12["frees_in"] == 150
    await db.execute("UPDATE reservations SET starts_at = starts_at + interval '3 hours', "
                     "ends_at = ends_at + interval '3 hours'")
    assert (await estimate(client, base, host, 6))["minutes"] == 0  # done long before it starts


async def test_bookings_without_a_table_due_soon_count_as_parties_ahead(client, db, base, rid,
                                                                         host, labels) -> None:
    await seat_all(client, base, host, [labels[t] for t in SIX_TOPS[:3]], 6)
    await db.execute(
        "INSERT INTO reservations (restaurant_id, name, size, starts_at, ends_at) "
        "VALUES ($1, 'Chen', 6, now() + interval '20 minutes', now() + interval '140 minutes')", rid)
    result = await estimate(client, base, host, 6)
    assert result["reservations_due"] == 1 and result["parties_ahead"] == 0
    assert result["minutes"] == 60  # the free six-top goes to the booking


async def test_turn_length_is_learned_as_the_median_of_this_restaurants_turns(client, db, base,
                                                                              rid, host, labels) -> None:
    six = [labels[t] for t in SIX_TOPS]
    await seat_all(client, base, host, six, 6)
    await turns(db, rid, six[0], 5, [40] * 9)
    few = await estimate(client, base, host, 6)
    assert few["basis"] == "default" and few["turn_minutes"] == 60 and few["turns_learned"] == 0
    await turns(db, rid, six[1], 6, [40, 300])  # one long outlier does not move a median
    learned = await estimate(client, base, host, 6)
    assert learned["basis"] == "recent_turns" and learned["turns_learned"] == 11
    assert learned["turn_minutes"] == 40 and learned["minutes"] == 40
    assert learned["paying_minutes"] == 4  # paying to free, learned too
    other = await estimate(client, base, host, 2)  # other sizes keep the default
    assert other["basis"] == "default"
    await db.execute("UPDATE table_turns SET seated_at = seated_at - interval '30 days', "
                     "freed_at = freed_at - interval '30 days' WHERE freed_at IS NOT NULL")
    assert (await estimate(client, base, host, 6))["basis"] == "default"  # only the last 4 weeks


async def test_every_part_of_the_answer_is_shown(client, base, host) -> None:
    result = await estimate(client, base, host, 2)
    assert set(result) == {"size", "minutes", "parties_ahead", "reservations_due", "fitting_tables",
                           "free_tables", "turn_minutes", "basis", "turns_learned", "paying_minutes",
                           "kitchen_factor", "tables"}
    assert len(result["tables"]) == result["fitting_tables"] == 20
    assert set(result["tables"][0]) == {"table_id", "label", "status", "seated_minutes", "frees_in",
                                        "reason"}
    assert all(t["reason"] == "free" and t["frees_in"] == 0 for t in result["tables"])


@pytest.mark.parametrize("query,status,code", [
    ("?size=0", 400, "invalid_query"), ("?size=101", 400, "invalid_query"),
    ("?size=51", 422, "invalid"),
])
async def test_a_bad_size_is_refused_and_writes_nothing(client, db, base, host, query, status,
                                                        code) -> None:
    before = await table_counts(db)
    response = await client.get(f"{base}/waitlist/estimate{query}", headers=host)
    assert response.status == status
    error = await error_of(response)
    assert error["code"] == code and error["details"][0]["path"] == "query.size"
    assert await table_counts(db) == before


async def test_the_party_keeps_its_quote_and_how_long_it_really_waited(client, db, base, rid,
                                                                        host) -> None:
    response = await client.post(base + "/waitlist", headers=host,
                                 json={"name": "Ada", "size": 2, "quoted_minutes": 20})
    party = await response.json()
    joined = await db.fetchval("UPDATE waitlist_parties SET joined_at = joined_at - interval '32 minutes' "
                               "WHERE id = $1 RETURNING joined_at", party["id"])
    waiting = await (await client.get(f"{base}/waitlist/{party['id']}", headers=host)).json()
    assert waiting["quoted_minutes"] == 20 and waiting["waited_minutes"] == 32
    due = await db.fetchval("SELECT $1::timestamptz + interval '20 minutes'", joined)
    assert waiting["quote_due_at"].startswith(due.isoformat()[:19])
    assert waiting["notification"] is None
    seated = await (await client.post(f"{base}/waitlist/{party['id']}/seat", headers=host)).json()
    assert seated["status"] == "seated" and seated["waited_minutes"] == 32
    await db.execute("UPDATE waitlist_parties SET joined_at = joined_at - interval '1 hour' WHERE id = $1",
                     party["id"])
    later = await (await client.get(f"{base}/waitlist/{party['id']}", headers=host)).json()
    assert later["waited_minutes"] == 92  # seated_at − joined_at: kept, not the time since
    unquoted = await (await client.post(base + "/waitlist", headers=host,
                                        json={"name": "Bo", "size": 2})).json()
    assert unquoted["quote_due_at"] is None

