"""Reservations over HTTP: booking, no double booking under a burst, status steps, day list, open slots."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from conftest import error_of, table_counts

NY = ZoneInfo("America/New_York")
DAY = datetime.now(NY).date() + timedelta(days=3)


def at(hour: int, minute: int = 0, day: date = DAY) -> str:
    """A local New York time on `day`, as ISO 8601 with its offset."""
    return datetime.combine(day, time(hour, minute), NY).isoformat()


@pytest.fixture
async def tables(db: asyncpg.Connection, rid: int) -> dict[str, int]:
    rows = await db.fetch("SELECT label, id FROM dining_tables WHERE restaurant_id = $1", rid)
    return {r["label"]: r["id"] for r in rows}


async def book(client: TestClient, base: str, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post(base + "/reservations", headers=headers,
                                 json={"name": "Bo", "size": 2, "starts_at": at(19), **body})
    assert response.status == 201, await response.text()
    return await response.json()


async def set_status(client: TestClient, base: str, headers: dict[str, str], reservation_id: int,
                     status: str):
    return await client.post(f"{base}/reservations/{reservation_id}/status", headers=headers,
                             json={"status": status})


async def live_rows(db: asyncpg.Connection, table_id: int) -> int:
    return await db.fetchval("SELECT count(*) FROM reservations WHERE table_id = $1 "
                             "AND status IN ('booked', 'confirmed', 'seated')", table_id)


@pytest.mark.parametrize("size,minutes", [(1, 90), (2, 90), (3, 105), (4, 105), (6, 120), (20, 150)])
async def test_create_defaults_the_duration_by_party_size(client, db, base, rid, host, size,
                                                          minutes) -> None:
    response = await client.post(base + "/reservations", headers=host,
                                 json={"name": "Bo", "size": size, "starts_at": at(19)})
    assert response.status == 201, await response.text()
    made = await response.json()
    assert made["duration_min"] == minutes and made["status"] == "booked" and made["version"] == 1
    starts = datetime.fromisoformat(made["starts_at"])
    assert starts == datetime.fromisoformat(at(19))
    assert datetime.fromisoformat(made["ends_at"]) - starts == timedelta(minutes=minutes)
    row = await db.fetchrow("SELECT starts_at, ends_at, table_id FROM reservations WHERE id = $1", made["id"])
    assert row["ends_at"] - row["starts_at"] == timedelta(minutes=minutes) and row["table_id"] is None
    event = await db.fetchrow("SELECT seq, channel, name FROM events WHERE restaurant_id = $1 "
                              "ORDER BY seq DESC LIMIT 1", rid)
    assert (event["channel"], event["name"]) == ("floor", "reservation.created")
    assert int(response.headers["X-Serveline-Seq"]) == event["seq"]


async def test_create_keeps_an_explicit_duration(client, base, host, tables) -> None:
    made = await book(client, base, host, duration_min=45, table_id=tables["P1"], phone="+1 555-0100")
    assert made["duration_min"] == 45 and made["table_id"] == tables["P1"]
    assert made["phone"] == "+1 555-0100"


BAD: list[tuple[str, Callable[[dict], dict], str, str]] = [
    ("size-0", lambda c: {"size": 0}, "validation_failed", "$.size"),
    ("past", lambda c: {"starts_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
     "invalid", "$.starts_at"),
    ("naive", lambda c: {"starts_at": datetime.combine(DAY, time(19)).isoformat()},
     "validation_failed", "$.starts_at"),
    ("duration-0", lambda c: {"duration_min": 0}, "validation_failed", "$.duration_min"),
    ("duration-negative", lambda c: {"duration_min": -30}, "validation_failed", "$.duration_min"),
    ("table-too-small", lambda c: {"size": 4, "table_id": c["P1"]}, "invalid", "$.table_id"),
    ("foreign-table", lambda c: {"table_id": c["foreign"]}, "invalid", "$.table_id"),
    ("unknown-table", lambda c: {"table_id": 999_999}, "invalid", "$.table_id"),
    ("unknown-field", lambda c: {"deposit": 20}, "validation_failed", "$"),
    ("empty-name", lambda c: {"name": ""}, "validation_failed", "$.name"),
]


@pytest.mark.parametrize("change,code,path", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_bad_booking_is_422_and_writes_nothing(client, db, base, host, tables, restaurant_ids,
                                                    change, code, path) -> None:
    foreign = await db.fetchval("SELECT min(id) FROM dining_tables WHERE restaurant_id = $1",
                                restaurant_ids["other"])
    body = {"name": "Bo", "size": 2, "starts_at": at(19), "table_id": tables["D1"],
            **change({**tables, "foreign": foreign})}
    before = await table_counts(db)
    response = await client.post(base + "/reservations", headers=host, json=body)
    assert response.status == 422, await response.text()
    error = await error_of(response)
    assert error["code"] == code and error["details"][0]["path"] == path
    assert await table_counts(db) == before


async def test_double_booking_under_20_concurrent_attempts_leaves_exactly_one(client, db, base, host,
                                                                              tables) -> None:
    async def attempt(n: int):
        response = await client.post(base + "/reservations", headers=host, json={
            "name": f"Guest {n}", "size": 2, "starts_at": at(19, 3 * n), "table_id": tables["D2"]})
        return response.status, await response.json()

    results = await asyncio.gather(*(attempt(n) for n in range(20)))
    won = [body for status, body in results if status == 201]
    lost = [body for status, body in results if status == 409]
    assert len(won) == 1 and len(lost) == 19, [status for status, _ in results]
    for body in lost:
        assert body["error"]["code"] == "conflict"
        assert body["error"]["details"][0]["conflicting_reservation"]["id"] == won[0]["id"]
    assert await db.fetchval("SELECT count(*) FROM reservations") == 1
    assert await db.fetchval("SELECT count(*) FROM events WHERE name = 'reservation.created'") == 1


async def test_double_booking_is_rejected_with_409_naming_the_booking(client, db, base, host,
                                                                      tables) -> None:
    first = await book(client, base, host, table_id=tables["D3"])
    before = await table_counts(db)
    response = await client.post(base + "/reservations", headers=host, json={
        "name": "Cy", "size": 2, "starts_at": at(20), "table_id": tables["D3"]})
    assert response.status == 409
    error = await error_of(response)
    assert error["details"][0]["conflicting_reservation"]["id"] == first["id"]
    assert await table_counts(db) == before


async def test_back_to_back_bookings_are_allowed(client, db, base, host, tables) -> None:
    await book(client, base, host, table_id=tables["P1"])  # 19:00-20:30
    await book(client, base, host, table_id=tables["P1"], starts_at=at(20, 30))
    await book(client, base, host, table_id=tables["P1"], starts_at=at(17, 30))
    assert await live_rows(db, tables["P1"]) == 3


async def test_a_cancelled_booking_frees_the_slot(client, db, base, host, tables) -> None:
    first = await book(client, base, host, table_id=tables["P3"])
    cancelled = await set_status(client, base, host, first["id"], "cancelled")
    assert cancelled.status == 200, await cancelled.text()
    second = await book(client, base, host, table_id=tables["P3"], starts_at=at(19, 15))
    assert second["table_id"] == tables["P3"] and await live_rows(db, tables["P3"]) == 1


async def test_moving_a_booking_onto_a_taken_slot_is_409(client, db, base, host, tables) -> None:
    taken = await book(client, base, host, table_id=tables["P5"])
    mover = await book(client, base, host, table_id=tables["P5"], starts_at=at(21))
    before = await table_counts(db)
    response = await client.patch(f"{base}/reservations/{mover['id']}", headers=host,
                                  json={"starts_at": at(19, 30)})
    assert response.status == 409
    assert (await error_of(response))["details"][0]["conflicting_reservation"]["id"] == taken["id"]
    assert await table_counts(db) == before
    assert await db.fetchval("SELECT version FROM reservations WHERE id = $1", mover["id"]) == 1


async def test_patch_with_current_if_match_moves_the_booking(client, db, base, host, tables) -> None:
    made = await book(client, base, host, table_id=tables["P7"])
    response = await client.patch(f"{base}/reservations/{made['id']}", json={"starts_at": at(18), "size": 1},
                                  headers={**host, "If-Match": '"1"'})
    assert response.status == 200, await response.text()
    moved = await response.json()
    assert datetime.fromisoformat(moved["starts_at"]) == datetime.fromisoformat(at(18)) == await db.fetchval(
        "SELECT starts_at FROM reservations WHERE id = $1", made["id"])
    assert (moved["size"], moved["duration_min"], moved["version"]) == (1, 90, 2)


async def test_patch_with_stale_if_match_is_412_and_writes_nothing(client, db, base, host) -> None:
    made = await book(client, base, host)
    assert (await client.patch(f"{base}/reservations/{made['id']}", headers=host,
                               json={"note": "window"})).status == 200
    before = await table_counts(db)
    response = await client.patch(f"{base}/reservations/{made['id']}", json={"note": "booth"},
                                  headers={**host, "If-Match": '"1"'})
    assert response.status == 412
    assert (await error_of(response))["details"] == [{"version": 2}]
    assert await table_counts(db) == before


async def test_booked_confirmed_seated_completed(client, db, base, rid, host, tables) -> None:
    made = await book(client, base, host, size=4, table_id=tables["D4"])
    confirmed = await set_status(client, base, host, made["id"], "confirmed")
    assert confirmed.status == 200 and (await confirmed.json())["status"] == "confirmed"
    seated = await client.post(f"{base}/reservations/{made['id']}/seat", headers=host)
    assert seated.status == 200, await seated.text()
    assert (await seated.json())["status"] == "seated"
    table = await db.fetchrow("SELECT t.status, tt.party_size FROM dining_tables t "
                              "JOIN table_turns tt ON tt.id = t.turn_id WHERE t.id = $1", tables["D4"])
    assert (table["status"], table["party_size"]) == ("seated", 4)
    names = [r["name"] for r in await db.fetch(
        "SELECT name FROM events WHERE restaurant_id = $1 AND seq > $2 ORDER BY seq", rid,
        int(confirmed.headers["X-Serveline-Seq"]))]
    assert names == ["table.status", "reservation.updated"]
    completed = await set_status(client, base, host, made["id"], "completed")
    assert completed.status == 200 and (await completed.json())["status"] == "completed"


@pytest.mark.parametrize("path", [["cancelled"], ["no_show"], ["confirmed", "cancelled"],
                                  ["confirmed", "no_show"]], ids="->".join)
async def test_a_booking_can_be_cancelled_or_marked_no_show(client, db, base, host, path) -> None:
    made = await book(client, base, host)
    for status in path:
        response = await set_status(client, base, host, made["id"], status)
        assert response.status == 200, await response.text()
    assert await db.fetchval("SELECT status FROM reservations WHERE id = $1", made["id"]) == path[-1]


async def reach(client: TestClient, base: str, headers: dict[str, str], status: str) -> dict:
    made = await book(client, base, headers)
    if status == "completed":
        assert (await client.post(f"{base}/reservations/{made['id']}/seat", headers=headers)).status == 200
    for step in {"completed": ["completed"], "cancelled": ["cancelled"], "no_show": ["no_show"]}[status]:
        assert (await set_status(client, base, headers, made["id"], step)).status == 200
    return made


@pytest.mark.parametrize("frm,to", [("completed", "cancelled"), ("completed", "confirmed"),
                                    ("cancelled", "confirmed"), ("no_show", "cancelled")])
async def test_illegal_status_step_is_409_and_writes_nothing(client, db, base, host, frm, to) -> None:
    made = await reach(client, base, host, frm)
    before = await table_counts(db)
    response = await set_status(client, base, host, made["id"], to)
    assert response.status == 409
    error = await error_of(response)
    assert error["code"] == "conflict" and error["details"][0]["status"] == frm
    assert to not in error["details"][0]["allowed"]
    assert await table_counts(db) == before


async def test_completed_cannot_go_back_to_booked(client, db, base, host) -> None:
    made = await reach(client, base, host, "completed")
    before = await table_counts(db)
    response = await set_status(client, base, host, made["id"], "booked")
    assert response.status == 422  # "booked" is only ever the first status: never a step to ask for
    assert (await error_of(response))["details"][0]["path"] == "$.status"
    assert await table_counts(db) == before


async def test_seating_a_cancelled_booking_is_409_and_no_table_moves(client, db, base, host) -> None:
    made = await reach(client, base, host, "cancelled")
    before = await table_counts(db)
    response = await client.post(f"{base}/reservations/{made['id']}/seat", headers=host)
    assert response.status == 409
    assert (await error_of(response))["details"][0]["status"] == "cancelled"
    assert await table_counts(db) == before


async def test_seating_onto_an_occupied_table_is_409_and_the_booking_stays(client, db, base, host,
                                                                           tables) -> None:
    made = await book(client, base, host, table_id=tables["D5"])
    occupied = await client.post(f"{base}/tables/{tables['D5']}/status", headers=host,
                                 json={"status": "seated", "party_size": 2})
    assert occupied.status == 200
    before = await table_counts(db)
    response = await client.post(f"{base}/reservations/{made['id']}/seat", headers=host)
    assert response.status == 409
    assert await table_counts(db) == before
    assert await db.fetchval("SELECT status FROM reservations WHERE id = $1", made["id"]) == "booked"


async def test_list_by_date_returns_that_local_day_in_start_order(client, db, base, rid, host) -> None:
    late = await book(client, base, host, starts_at=at(23, 30))  # already the next day in UTC
    early = await book(client, base, host, starts_at=at(17))
    middle = await book(client, base, host, starts_at=at(19))
    await book(client, base, host, starts_at=at(0, 30, DAY + timedelta(days=1)))
    await book(client, base, host, starts_at=at(23, 45, DAY - timedelta(days=1)))
    response = await client.get(f"{base}/reservations?date={DAY.isoformat()}", headers=host)
    assert response.status == 200
    assert int(response.headers["X-Serveline-Seq"]) == await db.fetchval(
        "SELECT seq FROM restaurants WHERE id = $1", rid)
    page = await response.json()
    assert [r["id"] for r in page["items"]] == [early["id"], middle["id"], late["id"]]
    assert page["next"] is None


async def test_list_pages_of_one_walk_the_whole_day(client, base, host) -> None:
    made = [await book(client, base, host, starts_at=at(hour)) for hour in (21, 18, 18, 20)]
    expected = [made[1]["id"], made[2]["id"], made[3]["id"], made[0]["id"]]
    seen: list[int] = []
    url = first = f"{base}/reservations?date={DAY.isoformat()}&limit=1"
    while url:
        page = await (await client.get(url, headers=host)).json()
        assert len(page["items"]) == 1
        seen += [r["id"] for r in page["items"]]
        url = f"{first}&cursor={page['next']}" if page["next"] else None
    assert seen == expected


async def availability(client: TestClient, base: str, headers: dict[str, str], size: int) -> dict:
    response = await client.get(f"{base}/availability?date={DAY.isoformat()}&size={size}", headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


def local_times(slots: dict) -> list[str]:
    return [datetime.fromisoformat(s["starts_at"]).astimezone(NY).strftime("%H:%M") for s in slots["items"]]


async def test_availability_lists_slots_within_service_hours(client, base, host, tables) -> None:
    slots = await availability(client, base, host, 2)
    assert slots["duration_min"] == 90 and slots["size"] == 2 and slots["date"] == DAY.isoformat()
    starts = [datetime.combine(DAY, time(17), NY) + timedelta(minutes=15 * n) for n in range(19)]
    assert local_times(slots) == [s.strftime("%H:%M") for s in starts]  # 17:00 … 21:30 (+90 = 23:00)
    two_tops = [tables[f"P{n}"] for n in (1, 3, 5, 7)]
    assert all(s["table_ids"][:4] == two_tops and len(s["table_ids"]) == 20 for s in slots["items"])


async def test_a_slot_whose_fitting_tables_are_all_booked_disappears(client, base, host, tables) -> None:
    six_tops = [tables[label] for label in ("D3", "D6", "D9", "D12")]
    for table_id in six_tops:
        await book(client, base, host, size=5, table_id=table_id)  # 19:00-21:00
    big = local_times(await availability(client, base, host, 5))
    assert "19:00" not in big and "17:15" not in big and "20:45" not in big
    assert big == ["17:00", "21:00"]
    small = await availability(client, base, host, 2)
    at_seven = next(s for s in small["items"] if local_times({"items": [s]}) == ["19:00"])
    assert not set(six_tops) & set(at_seven["table_ids"]) and len(at_seven["table_ids"]) == 16


@pytest.mark.parametrize("query,path", [("size=2", "query.date"), ("date=DAY", "query.size"),
                                        ("date=tomorrow&size=2", "query.date"),
                                        ("date=DAY&size=0", "query.size"),
                                        ("date=DAY&size=x", "query.size")])
async def test_availability_needs_a_date_and_a_size(client, base, host, query, path) -> None:
    response = await client.get(f"{base}/availability?{query.replace('DAY', DAY.isoformat())}", headers=host)
    assert response.status == 400
    error = await error_of(response)
    assert error["code"] == "invalid_query" and error["details"][0]["path"] == path


async def test_unknown_reservation_is_404(client, db, base, host) -> None:
    before = await table_counts(db)
    assert (await client.get(f"{base}/reservations/999999", headers=host)).status == 404
    assert (await set_status(client, base, host, 999999, "confirmed")).status == 404
    assert (await client.patch(f"{base}/reservations/999999", headers=host, json={"note": "x"})).status == 404
    assert await table_counts(db) == before
