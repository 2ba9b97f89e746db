"""Reservation pacing over HTTP: covers and parties per slot and per service period, the host's
override with a recorded reason, availability that respects it, no race past the last seat, and
the stricter limit while the kitchen is behind."""
from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
import pytest
from aiohttp.test_utils import TestClient
from conftest import error_of, table_counts

NY = ZoneInfo("America/New_York")
DAY = datetime.now(NY).date() + timedelta(days=3)


def at(hour: int, minute: int = 0, day: date = DAY) -> str:
    """A local New York time on `day`, as ISO 8601 with its offset."""
    return datetime.combine(day, time(hour, minute), NY).isoformat()


def local(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(NY).strftime("%H:%M")


@pytest.fixture
def pace(client: TestClient, base: str, manager: dict[str, str]):
    async def set_settings(**settings: Any) -> dict[str, Any]:
        response = await client.patch(base, headers=manager, json={"settings": settings})
        assert response.status == 200, await response.text()
        return (await response.json())["restaurant"]["settings"]
    return set_settings


async def post(client: TestClient, base: str, headers: dict[str, str], size: int, starts_at: str,
               **body: Any):
    return await client.post(base + "/reservations", headers=headers,
                             json={"name": "Bo", "size": size, "starts_at": starts_at, **body})


async def book(client: TestClient, base: str, headers: dict[str, str], size: int, starts_at: str,
               **body: Any) -> dict[str, Any]:
    response = await post(client, base, headers, size, starts_at, **body)
    assert response.status == 201, await response.text()
    return await response.json()


async def refused(response, limit: str) -> dict[str, Any]:
    assert response.status == 409, await response.text()
    error = await error_of(response)
    assert error["code"] == "pacing_limit" and error["details"][0]["limit"] == limit
    assert "pacing_override" in error["message"]
    return error


async def test_a_booking_past_the_slot_covers_limit_is_409_and_writes_nothing(
        client, db, base, host, pace) -> None:
    await pace(pacing_covers_per_slot=6)
    await book(client, base, host, 4, at(19))
    await book(client, base, host, 2, at(19, 10))  # 19:00-19:15 is one slot: 6 of 6
    before = await table_counts(db)
    error = await refused(await post(client, base, host, 1, at(19, 5)), "slot_covers")
    detail = error["details"][0]
    assert (detail["max"], detail["booked"], detail["adds"], detail["kitchen_behind"]) == (6, 6, 1, False)
    assert local(detail["slot_starts_at"]) == "19:00" and local(detail["slot_ends_at"]) == "19:15"
    assert "19:00 slot is full: 6 of 6 covers" in error["message"]
    assert await table_counts(db) == before
    await book(client, base, host, 6, at(19, 15))  # the next slot has its own covers


async def test_a_booking_past_the_slot_parties_limit_is_409_and_cancelled_ones_do_not_count(
        client, db, base, host, pace) -> None:
    await pace(pacing_parties_per_slot=2)
    first = await book(client, base, host, 2, at(20))
    await book(client, base, host, 8, at(20, 14))
    before = await table_counts(db)
    error = await refused(await post(client, base, host, 1, at(20, 7)), "slot_parties")
    assert (error["details"][0]["max"], error["details"][0]["booked"]) == (2, 2)
    assert await table_counts(db) == before
    response = await client.post(f"{base}/reservations/{first['id']}/status", headers=host,
                                 json={"status": "cancelled"})
    assert response.status == 200
    await book(client, base, host, 1, at(20, 7))


async def test_a_host_overrides_the_limit_with_a_reason_that_is_recorded(
        client, db, rid, base, host, pace) -> None:
    await pace(pacing_covers_per_slot=4)
    within = await book(client, base, host, 4, at(19), pacing_override={"reason": "not needed"})
    assert within["pacing_override"] is None  # within the limits nothing is overridden
    made = await book(client, base, host, 2, at(19, 5), pacing_override={"reason": "VIP birthday"})
    override = made["pacing_override"]
    host_id = await db.fetchval("SELECT id FROM users WHERE email = 'host@demo.test'")
    assert override["reason"] == "VIP birthday" and override["by_user_id"] == host_id
    assert override["by"] and abs(datetime.fromisoformat(override["at"]) - datetime.now(UTC)) < timedelta(
        minutes=1)
    row = await db.fetchrow("SELECT override_reason, override_by, override_at FROM reservations "
                            "WHERE id = $1", made["id"])
    assert (row["override_reason"], row["override_by"]) == ("VIP birthday", host_id)
    event = await db.fetchrow("SELECT channel, name, data FROM events WHERE restaurant_id = $1 "
                              "ORDER BY seq DESC LIMIT 1", rid)
    data = msgspec.json.decode(event["data"])
    assert (event["channel"], event["name"]) == ("floor", "reservation.created")
    assert data["reservation"]["pacing_override"]["reason"] == "VIP birthday"
    again = await client.get(f"{base}/reservations/{made['id']}", headers=host)
    assert (await again.json())["pacing_override"] == override


@pytest.mark.parametrize("override,path", [
    ({}, "$.pacing_override"), ({"reason": ""}, "$.pacing_override.reason"),
    ({"reason": "   "}, "$.pacing_override.reason"), ({"reason": "x" * 201}, "$.pacing_override.reason"),
    ({"reason": "VIP", "by": "me"}, "$.pacing_override"), ("VIP", "$.pacing_override")])
async def test_an_override_without_a_reason_is_422_and_writes_nothing(
        client, db, base, host, pace, override, path) -> None:
    await pace(pacing_covers_per_slot=2)
    await book(client, base, host, 2, at(19))
    before = await table_counts(db)
    response = await post(client, base, host, 2, at(19), pacing_override=override)
    assert response.status == 422
    error = await error_of(response)
    assert error["code"] == "validation_failed" and error["details"][0]["path"].startswith(path)
    assert await table_counts(db) == before


async def test_service_period_limits_count_the_whole_period(client, db, base, host, pace) -> None:
    await pace(service_periods=[
        {"name": "early", "start": "16:00", "end": "18:00", "max_parties": 1},
        {"name": "dinner", "start": "18:00", "end": "22:00", "max_covers": 8, "covers_per_slot": 5},
        {"name": "late", "start": "23:00", "end": "01:00", "max_covers": 2}])
    await book(client, base, host, 4, at(18, 30))
    await book(client, base, host, 4, at(21, 45))
    before = await table_counts(db)
    error = await refused(await post(client, base, host, 1, at(20)), "period_covers")
    detail = error["details"][0]
    assert (detail["period"], detail["max"], detail["booked"]) == ("dinner", 8, 8)
    assert "the dinner period is full: 8 of 8 covers" in error["message"]
    assert await table_counts(db) == before
    await book(client, base, host, 2, at(16))
    await refused(await post(client, base, host, 1, at(17, 59)), "period_parties")
    await book(client, base, host, 6, at(22, 15))  # between periods: no limit at all
    await book(client, base, host, 2, at(23, 30))  # the late period runs past midnight
    await refused(await post(client, base, host, 1, at(0, 30, DAY + timedelta(days=1))), "period_covers")


async def test_a_period_may_have_its_own_slot_limit(client, base, host, pace) -> None:
    await pace(pacing_covers_per_slot=10,
               service_periods=[{"name": "dinner", "start": "18:00", "end": "22:00", "covers_per_slot": 3}])
    await book(client, base, host, 3, at(19))
    error = await refused(await post(client, base, host, 1, at(19)), "slot_covers")
    assert error["details"][0]["max"] == 3 and error["details"][0]["period"] == "dinner"
    await book(client, base, host, 10, at(17))  # outside it, the restaurant's 10


async def test_moving_or_growing_a_booking_into_a_full_slot_is_409_unless_overridden(
        client, db, base, host, pace) -> None:
    await pace(pacing_covers_per_slot=4)
    await book(client, base, host, 4, at(19))
    mine = await book(client, base, host, 2, at(20))
    url = f"{base}/reservations/{mine['id']}"
    before = await table_counts(db)
    await refused(await client.patch(url, headers=host, json={"starts_at": at(19, 5)}), "slot_covers")
    await refused(await client.patch(url, headers=host, json={"size": 5}), "slot_covers")
    assert await table_counts(db) == before
    grown = await client.patch(url, headers=host, json={"size": 4})  # its own covers do not count
    assert grown.status == 200 and (await grown.json())["pacing_override"] is None
    moved = await client.patch(url, headers=host, json={"starts_at": at(19, 5),
                                                        "pacing_override": {"reason": "regulars"}})
    assert moved.status == 200, await moved.text()
    assert (await moved.json())["pacing_override"]["reason"] == "regulars"
    renamed = await client.patch(url, headers=host, json={"name": "Al"})  # the record stays
    assert (await renamed.json())["pacing_override"]["reason"] == "regulars"


async def availability(client: TestClient, base: str, headers: dict[str, str], size: int,
                       day: date = DAY) -> dict:
    response = await client.get(f"{base}/availability?date={day.isoformat()}&size={size}", headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_availability_does_not_offer_a_slot_pacing_would_refuse(client, base, host, pace) -> None:
    before = await availability(client, base, host, 2)
    assert before["paced_out"] == [] and before["kitchen"]["behind"] is False
    await pace(pacing_covers_per_slot=4)
    await book(client, base, host, 3, at(19))
    two = await availability(client, base, host, 2)
    offered = [local(s["starts_at"]) for s in two["items"]]
    assert "19:00" not in offered and "18:45" in offered and "19:15" in offered
    [out] = two["paced_out"]
    assert local(out["starts_at"]) == "19:00"
    assert (out["limit"], out["max"], out["booked"], out["kitchen_behind"]) == ("slot_covers", 4, 3, False)
    one = await availability(client, base, host, 1)  # one more cover still fits
    assert "19:00" in [local(s["starts_at"]) for s in one["items"]] and one["paced_out"] == []


async def test_two_bookings_racing_for_the_last_covers_cannot_both_pass(client, db, base, host, pace) -> None:
    await pace(pacing_covers_per_slot=6)
    await book(client, base, host, 4, at(19))
    answers = await asyncio.gather(*[post(client, base, host, 2, at(19, n)) for n in range(6)])
    assert sorted(a.status for a in answers) == [201] + [409] * 5
    for answer in answers:
        if answer.status == 409:
            assert (await error_of(answer))["code"] == "pacing_limit"
    covers = await db.fetchval("SELECT sum(size) FROM reservations WHERE starts_at >= $1 AND starts_at < $2",
                               datetime.fromisoformat(at(19)), datetime.fromisoformat(at(19, 15)))
    assert covers == 6


async def late_tickets(client: TestClient, base: str, server: dict[str, str], menu: dict,
                       db: asyncpg.Connection, rid: int, count: int) -> list[int]:
    """Fire orders until `count` tickets are open, then date them 20 minutes back (past amber)."""
    for _ in range(count):
        response = await client.post(base + "/orders", headers=server,
                                     json={"items": [{"menu_item_id": menu["Burger"]["id"]}]})
        assert response.status == 201, await response.text()
    rows = await db.fetch("UPDATE tickets SET fired_at = now() - interval '20 minutes' "
                          "WHERE restaurant_id = $1 AND status <> 'bumped' RETURNING id", rid)
    assert len(rows) >= count
    return [r["id"] for r in rows]


async def test_a_stricter_limit_applies_while_the_kitchen_is_behind_and_lifts_when_it_catches_up(
        client, db, rid, base, host, server, cook, menu, pace) -> None:
    await pace(pacing_covers_per_slot=10, ticket_amber_minutes=8,
               kitchen_behind={"open_late_tickets": 2, "covers_per_slot": 2, "within_minutes": 180})
    soon = (datetime.now(UTC) + timedelta(hours=1)).replace(second=0, microsecond=0)
    later = soon + timedelta(hours=4)  # past within_minutes: only the normal limit
    tickets = await late_tickets(client, base, server, menu, db, rid, 3)
    state = (await availability(client, base, host, 2, soon.astimezone(NY).date()))["kitchen"]
    assert state["behind"] is True and state["late_tickets"] == len(tickets) and state["threshold"] == 2
    until = datetime.fromisoformat(state["stricter_until"]) - datetime.now(UTC)
    assert timedelta(minutes=175) < until <= timedelta(minutes=180)
    before = await table_counts(db)
    error = await refused(await post(client, base, host, 3, soon.isoformat()), "slot_covers")
    assert (error["details"][0]["max"], error["details"][0]["kitchen_behind"]) == (2, True)
    assert "while the kitchen is behind" in error["message"]
    assert await table_counts(db) == before
    await book(client, base, host, 3, later.isoformat())
    for ticket_id in tickets:
        for step in ("start", "bump"):
            response = await client.post(f"{base}/kitchen/tickets/{ticket_id}/{step}", headers=cook)
            assert response.status == 200, await response.text()
    state = (await availability(client, base, host, 2, soon.astimezone(NY).date()))["kitchen"]
    assert (state["behind"], state["late_tickets"], state["stricter_until"]) == (False, 0, None)
    await book(client, base, host, 3, soon.isoformat())


async def test_fresh_tickets_do_not_make_the_kitchen_behind(client, base, host, server, menu, pace) -> None:
    await pace(kitchen_behind={"open_late_tickets": 0, "parties_per_slot": 0})
    soon = (datetime.now(UTC) + timedelta(hours=1)).replace(second=0, microsecond=0)
    response = await client.post(base + "/orders", headers=server,
                                 json={"items": [{"menu_item_id": menu["Burger"]["id"]}]})
    assert response.status == 201
    await book(client, base, host, 2, soon.isoformat())  # the ticket is not past amber yet


@pytest.mark.parametrize("settings,code,path", [
    ({"pacing_covers_per_slot": -1}, "validation_failed", "$.settings.pacing_covers_per_slot"),
    ({"pacing_parties_per_slot": "many"}, "validation_failed", "$.settings.pacing_parties_per_slot"),
    ({"pacing_slot_minutes": 7}, "validation_failed", "$.settings.pacing_slot_minutes"),
    ({"service_periods": [{"name": "dinner", "start": "25:00", "end": "22:00"}]},
     "validation_failed", "$.settings.service_periods[0].start"),
    ({"service_periods": [{"name": "dinner", "start": "18:00", "end": "18:00"}]},
     "validation_failed", "$.settings.service_periods[0]"),
    ({"service_periods": [{"name": "", "start": "18:00", "end": "19:00"}]},
     "validation_failed", "$.settings.service_periods[0].name"),
    ({"service_periods": [{"name": "a", "start": "17:00", "end": "19:00"},
                          {"name": "a", "start": "20:00", "end": "21:00"}]},
     "invalid", "$.settings.service_periods[1].name"),
    ({"service_periods": [{"name": "a", "start": "17:00", "end": "19:00"},
                          {"name": "b", "start": "18:30", "end": "21:00"}]},
     "invalid", "$.settings.service_periods[1]"),
    ({"service_periods": [{"name": "late", "start": "22:00", "end": "02:00"},
                          {"name": "brunch", "start": "01:00", "end": "03:00"}]},
     "invalid", "$.settings.service_periods[1]"),
    ({"kitchen_behind": {"open_late_tickets": 5}}, "validation_failed", "$.settings.kitchen_behind"),
    ({"kitchen_behind": {"covers_per_slot": 5}}, "validation_failed", "$.settings.kitchen_behind"),
    ({"kitchen_behind": {"open_late_tickets": 5, "covers_per_slot": 2, "within_minutes": 5}},
     "validation_failed", "$.settings.kitchen_behind.within_minutes"),
])
async def test_bad_pacing_settings_are_422_and_write_nothing(client, db, base, manager, settings, code,
                                                             path) -> None:
    before = await table_counts(db)
    response = await client.patch(base, headers=manager, json={"settings": settings})
    assert response.status == 422, await response.text()
    error = await error_of(response)
    assert (error["code"], error["details"][0]["path"]) == (code, path)
    assert await table_counts(db) == before


async def test_pacing_settings_round_trip(client, base, pace) -> None:
    saved = await pace(pacing_slot_minutes=30, pacing_covers_per_slot=20, service_periods=[
        {"name": "lunch", "start": "11:30", "end": "14:30", "max_covers": 60}],
        kitchen_behind={"open_late_tickets": 8, "covers_per_slot": 10})
    assert saved["pacing_slot_minutes"] == 30 and saved["pacing_parties_per_slot"] is None
    assert saved["service_periods"][0]["max_covers"] == 60
    assert saved["kitchen_behind"] == {"open_late_tickets": 8, "covers_per_slot": 10,
                                       "parties_per_slot": None, "within_minutes": 180}


async def test_availability_holds_back_slots_under_the_stricter_limit_while_behind(
        client, db, rid, base, host, server, menu, pace) -> None:
    await pace(service_start="00:00", service_end="23:45",
               reservation_durations=[{"max_size": 100, "minutes": 15}],
               kitchen_behind={"open_late_tickets": 0, "covers_per_slot": 0, "within_minutes": 1440})
    day = (datetime.now(NY) + timedelta(hours=1)).date()  # a day with slots still to come
    assert (await availability(client, base, host, 2, day))["paced_out"] == []
    await late_tickets(client, base, server, menu, db, rid, 1)
    answer = await availability(client, base, host, 2, day)
    until = datetime.fromisoformat(answer["kitchen"]["stricter_until"])
    assert answer["kitchen"]["behind"] is True and answer["paced_out"]
    assert all(datetime.fromisoformat(s["starts_at"]) < until and s["kitchen_behind"] and s["max"] == 0
               for s in answer["paced_out"])
    assert all(datetime.fromisoformat(s["starts_at"]) >= until for s in answer["items"])
