"""The waitlist over HTTP: adding, notifying, seating onto a table in one go, leaving, estimates."""
from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp.test_utils import TestClient
from conftest import bearer, error_of, table_counts


@pytest.fixture
async def tables(db: asyncpg.Connection, rid: int) -> list[asyncpg.Record]:
    return await db.fetch("SELECT id, label, seats FROM dining_tables WHERE restaurant_id = $1 "
                          "ORDER BY id", rid)


async def add(client: TestClient, base: str, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post(base + "/waitlist", headers=headers, json={"name": "Ada", "size": 2, **body})
    assert response.status == 201, await response.text()
    return await response.json()


async def post(client: TestClient, url: str, headers: dict[str, str], body: Any = None):
    return await client.post(url, headers=headers, json=body) if body is not None else \
        await client.post(url, headers=headers)


async def occupy(client: TestClient, base: str, headers: dict[str, str], table_ids: list[int]) -> None:
    for table_id in table_ids:
        response = await client.post(f"{base}/tables/{table_id}/status", headers=headers,
                                     json={"status": "seated", "party_size": 6})
        assert response.status == 200, await response.text()


async def estimate(client: TestClient, base: str, headers: dict[str, str], size: int) -> dict[str, Any]:
    response = await client.get(f"{base}/waitlist/estimate?size={size}", headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_adding_a_party_returns_201_with_defaults(client, db, base, rid, host) -> None:
    response = await client.post(base + "/waitlist", headers=host, json={"name": "Ada", "size": 4})
    assert response.status == 201, await response.text()
    party = await response.json()
    assert (party["name"], party["size"], party["status"], party["version"]) == ("Ada", 4, "waiting", 1)
    assert party["phone"] is None and party["note"] == "" and party["quoted_minutes"] is None
    assert party["table_id"] is None and party["seated_at"] is None and party["waited_minutes"] == 0
    event = await db.fetchrow("SELECT seq, channel, name FROM events WHERE restaurant_id = $1 "
                              "ORDER BY seq DESC LIMIT 1", rid)
    assert (event["channel"], event["name"]) == ("floor", "waitlist.added")
    assert int(response.headers["X-Serveline-Seq"]) == event["seq"]


@pytest.mark.parametrize("body,path", [
    ({"name": "Ada", "size": 0}, "$.size"),
    ({"name": "Ada", "size": 101}, "$.size"),
    ({"name": "", "size": 2}, "$.name"),
    ({"name": "Ada", "size": "2"}, "$.size"),
    ({"name": 7, "size": 2}, "$.name"),
    ({"name": "Ada", "size": 2.5}, "$.size"),
    ({"name": "Ada", "size": 2, "vip": True}, "$"),
    ({"name": "Ada", "size": 2, "phone": "call me maybe"}, "$.phone"),
    ({"name": "Ada", "size": 2, "phone": "12"}, "$.phone"),
    ({"size": 2}, "$"),
], ids=["size-0", "size-101", "empty-name", "size-string", "name-int", "size-float", "unknown-field",
        "phone-letters", "phone-short", "no-name"])
async def test_bad_party_is_422_and_writes_nothing(client, db, base, host, body, path) -> None:
    before = await table_counts(db)
    response = await client.post(base + "/waitlist", headers=host, json=body)
    assert response.status == 422
    error = await error_of(response)
    assert error["code"] == "validation_failed" and error["details"][0]["path"] == path
    assert await table_counts(db) == before


async def test_list_shows_open_parties_by_default_and_all_on_request(client, base, host) -> None:
    waiting = await add(client, base, host, name="Waiting")
    notified = await add(client, base, host, name="Notified")
    gone = await add(client, base, host, name="Gone")
    assert (await post(client, f"{base}/waitlist/{notified['id']}/notify", host)).status == 200
    assert (await post(client, f"{base}/waitlist/{gone['id']}/leave", host)).status == 200
    response = await client.get(base + "/waitlist", headers=host)
    assert response.status == 200 and "X-Serveline-Seq" in response.headers
    page = await response.json()
    assert set(page) == {"items", "next"}
    assert [p["id"] for p in page["items"]] == [waiting["id"], notified["id"]]
    everyone = await (await client.get(base + "/waitlist?status=all", headers=host)).json()
    assert [p["status"] for p in everyone["items"]] == ["waiting", "notified", "left"]


async def test_notify_then_seat_picks_the_smallest_free_table_that_fits(client, db, base, rid, host,
                                                                         tables) -> None:
    party = await add(client, base, host, size=2)
    notified = await post(client, f"{base}/waitlist/{party['id']}/notify", host)
    assert notified.status == 200
    assert (await notified.json())["status"] == "notified"
    response = await post(client, f"{base}/waitlist/{party['id']}/seat", host)
    assert response.status == 200, await response.text()
    seated = await response.json()
    best = min((t for t in tables if t["seats"] >= 2), key=lambda t: (t["seats"], t["id"]))
    assert seated["status"] == "seated" and seated["table_id"] == best["id"] and best["seats"] == 2
    assert seated["seated_at"] is not None and seated["notified_at"] is not None
    table = await db.fetchrow("SELECT status, turn_id FROM dining_tables WHERE id = $1", best["id"])
    assert table["status"] == "seated"
    turn = await db.fetchrow("SELECT * FROM table_turns WHERE id = $1", table["turn_id"])
    assert turn["party_size"] == 2 and turn["table_id"] == best["id"] and turn["freed_at"] is None
    names = [r["name"] for r in await db.fetch(
        "SELECT name FROM events WHERE restaurant_id = $1 AND seq > $2 ORDER BY seq", rid,
        int(notified.headers["X-Serveline-Seq"]))]
    assert names == ["table.status", "waitlist.updated"]


async def test_seat_on_an_explicit_table(client, db, base, host, tables) -> None:
    party = await add(client, base, host, size=3)
    six_top = next(t for t in tables if t["seats"] == 6)
    response = await post(client, f"{base}/waitlist/{party['id']}/seat", host, {"table_id": six_top["id"]})
    assert response.status == 200, await response.text()
    assert (await response.json())["table_id"] == six_top["id"]
    assert await db.fetchval("SELECT tt.party_size FROM dining_tables t JOIN table_turns tt "
                             "ON tt.id = t.turn_id WHERE t.id = $1", six_top["id"]) == 3


async def test_seat_onto_an_occupied_table_is_409_and_the_party_stays(client, db, base, host,
                                                                       tables) -> None:
    first, second = await add(client, base, host), await add(client, base, host)
    table_id = tables[0]["id"]
    seated = await post(client, f"{base}/waitlist/{first['id']}/seat", host, {"table_id": table_id})
    assert seated.status == 200
    before = await table_counts(db)
    response = await post(client, f"{base}/waitlist/{second['id']}/seat", host, {"table_id": table_id})
    assert response.status == 409
    assert (await error_of(response))["details"][0]["status"] == "seated"
    assert await table_counts(db) == before
    assert await db.fetchval("SELECT status FROM waitlist_parties WHERE id = $1", second["id"]) == "waiting"


async def test_seat_when_no_table_fits_is_409_and_writes_nothing(client, db, base, host) -> None:
    party = await add(client, base, host, size=40)
    before = await table_counts(db)
    response = await post(client, f"{base}/waitlist/{party['id']}/seat", host)
    assert response.status == 409
    assert (await error_of(response))["code"] == "conflict"
    assert await table_counts(db) == before


@pytest.mark.parametrize("whose", ["other", "unknown"])
async def test_seat_onto_a_foreign_or_unknown_table_is_422_and_writes_nothing(
        client, db, base, host, restaurant_ids, whose) -> None:
    party = await add(client, base, host)
    other = restaurant_ids["other"]
    table_id = 999_999 if whose == "unknown" else await db.fetchval(
        "SELECT min(id) FROM dining_tables WHERE restaurant_id = $1", other)
    other_before = await db.fetch("SELECT * FROM dining_tables WHERE restaurant_id = $1 ORDER BY id", other)
    before = await table_counts(db)
    response = await post(client, f"{base}/waitlist/{party['id']}/seat", host, {"table_id": table_id})
    assert response.status == 422, await response.text()
    error = await error_of(response)
    assert error["code"] == "invalid" and error["details"][0]["path"] == "$.table_id"
    assert await table_counts(db) == before
    assert await db.fetchval("SELECT status FROM waitlist_parties WHERE id = $1", party["id"]) == "waiting"
    assert await db.fetch("SELECT * FROM dining_tables WHERE restaurant_id = $1 ORDER BY id",
                          other) == other_before


@pytest.mark.parametrize("body,status", [(None, "left"), ({"no_show": False}, "left"),
                                         ({"no_show": True}, "no_show")])
async def test_leaving_marks_the_party_left_or_no_show(client, db, base, host, body, status) -> None:
    party = await add(client, base, host)
    response = await post(client, f"{base}/waitlist/{party['id']}/leave", host, body)
    assert response.status == 200, await response.text()
    gone = await response.json()
    assert gone["status"] == status and gone["left_at"] is not None and gone["version"] == 2
    assert await db.fetchval("SELECT status FROM waitlist_parties WHERE id = $1", party["id"]) == status


async def test_notifying_a_seated_party_is_409(client, db, base, host) -> None:
    party = await add(client, base, host)
    assert (await post(client, f"{base}/waitlist/{party['id']}/seat", host)).status == 200
    before = await table_counts(db)
    response = await post(client, f"{base}/waitlist/{party['id']}/notify", host)
    assert response.status == 409
    assert (await error_of(response))["details"] == [{"status": "seated", "allowed": []}]
    assert await table_counts(db) == before


async def test_seating_a_party_that_left_is_409_and_no_table_moves(client, db, base, host) -> None:
    party = await add(client, base, host)
    assert (await post(client, f"{base}/waitlist/{party['id']}/leave", host)).status == 200
    before = await table_counts(db)
    response = await post(client, f"{base}/waitlist/{party['id']}/seat", host)
    assert response.status == 409
    assert (await error_of(response))["details"][0]["status"] == "left"
    assert await table_counts(db) == before
    assert await db.fetchval("SELECT count(*) FROM dining_tables WHERE status <> 'free'") == 0


async def test_unknown_party_is_404(client, db, base, host) -> None:
    before = await table_counts(db)
    for action in ("notify", "seat", "leave"):
        response = await post(client, f"{base}/waitlist/999999/{action}", host)
        assert response.status == 404
    assert (await client.get(f"{base}/waitlist/999999", headers=host)).status == 404
    assert await table_counts(db) == before


async def test_patch_with_current_if_match_updates_the_party(client, db, base, host) -> None:
    party = await add(client, base, host)
    response = await client.patch(f"{base}/waitlist/{party['id']}", json={"size": 5, "note": "high chair"},
                                  headers={**host, "If-Match": '"1"'})
    assert response.status == 200, await response.text()
    changed = await response.json()
    assert (changed["size"], changed["note"], changed["name"]) == (5, "high chair", "Ada")
    assert changed["version"] == 2
    assert await db.fetchval("SELECT size FROM waitlist_parties WHERE id = $1", party["id"]) == 5


async def test_patch_with_stale_if_match_is_412_and_writes_nothing(client, db, base, host) -> None:
    party = await add(client, base, host)
    changed = await client.patch(f"{base}/waitlist/{party['id']}", headers=host, json={"size": 3})
    assert changed.status == 200
    before = await table_counts(db)
    response = await client.patch(f"{base}/waitlist/{party['id']}", json={"size": 4},
                                  headers={**host, "If-Match": '"1"'})
    assert response.status == 412
    assert (await error_of(response))["details"] == [{"version": 2}]
    assert await table_counts(db) == before


async def test_estimate_is_zero_when_a_fitting_table_is_free_and_nobody_waits(client, base, host) -> None:
    result = await estimate(client, base, host, 2)
    assert result["minutes"] == 0 and result["parties_ahead"] == 0
    assert result["fitting_tables"] == result["free_tables"] == 20
    assert result["basis"] == "default"


async def history(db: asyncpg.Connection, rid: int, table_ids: list[int], minutes: int) -> None:
    """Finished turns on these tables, each `minutes` long, in the last few hours."""
    for n, table_id in enumerate(table_ids * 3):
        await db.execute(
            "INSERT INTO table_turns (restaurant_id, table_id, party_size, seated_at, freed_at) "
            "VALUES ($1, $2, 5, now() - make_interval(hours => $3 + 3), "
            "now() - make_interval(hours => $3 + 3) + make_interval(mins => $4))",
            rid, table_id, n, minutes)


async def test_estimate_follows_recent_turn_times_when_every_fitting_table_is_taken(
        client, db, base, rid, host, tables) -> None:
    six_tops = [t["id"] for t in tables if t["seats"] == 6]
    await occupy(client, base, host, six_tops)
    await history(db, rid, six_tops, 30)
    fast = await estimate(client, base, host, 6)
    assert fast["basis"] == "recent_turns" and fast["turn_minutes"] == 30
    assert fast["fitting_tables"] == len(six_tops) and fast["free_tables"] == 0
    assert fast["minutes"] == 30
    await db.execute("DELETE FROM table_turns WHERE freed_at IS NOT NULL")
    await history(db, rid, six_tops, 90)
    slow = await estimate(client, base, host, 6)
    assert slow["basis"] == "recent_turns" and slow["turn_minutes"] == 90
    assert slow["minutes"] == 90 > fast["minutes"]


async def test_estimate_uses_the_default_turn_without_history(client, base, host, tables) -> None:
    await occupy(client, base, host, [t["id"] for t in tables if t["seats"] == 6])
    result = await estimate(client, base, host, 5)
    assert result["basis"] == "default" and result["turn_minutes"] == 60
    assert 0 < result["minutes"] <= 60 and result["free_tables"] == 0


async def test_estimate_counts_parties_already_waiting(client, db, base, rid, host, tables) -> None:
    six_tops = [t["id"] for t in tables if t["seats"] == 6]
    await occupy(client, base, host, six_tops)
    await history(db, rid, six_tops, 30)
    for _ in range(len(six_tops)):
        await add(client, base, host, size=6)
    result = await estimate(client, base, host, 6)
    assert result["parties_ahead"] == len(six_tops)
    assert result["minutes"] == 60  # every table turns once before this party's turn comes


@pytest.mark.parametrize("query", ["", "?size=", "?size=0", "?size=101", "?size=abc", "?size=-2"])
async def test_estimate_without_a_good_size_is_400(client, base, host, query) -> None:
    response = await client.get(f"{base}/waitlist/estimate{query}", headers=host)
    assert response.status == 400
    error = await error_of(response)
    assert error["code"] == "invalid_query" and error["details"][0]["path"] == "query.size"


async def test_events_of_a_seat_carry_party_and_table(client, db, base, rid, host) -> None:
    party = await add(client, base, host, size=4)
    response = await post(client, f"{base}/waitlist/{party['id']}/seat", host)
    seated = await response.json()
    rows = await db.fetch("SELECT channel, name, data FROM events WHERE restaurant_id = $1 "
                          "ORDER BY seq DESC LIMIT 2", rid)
    data = {r["name"]: msgspec.json.decode(r["data"]) for r in rows}
    assert {r["channel"] for r in rows} == {"floor"}
    assert data["waitlist.updated"]["party"]["table_id"] == seated["table_id"]
    assert data["table.status"]["table"]["id"] == seated["table_id"]
    assert data["table.status"]["table"]["party_size"] == 4


async def test_seating_on_a_table_too_small_is_422_and_writes_nothing(client, db, rid, tokens):
    host = bearer(await tokens("host"))
    party = await (await client.post(f"/api/v1/restaurants/{rid}/waitlist", headers=host,
                                     json={"name": "Six", "size": 6})).json()
    two_top = await db.fetchval("SELECT id FROM dining_tables WHERE restaurant_id = $1 AND seats = 2 "
                                "LIMIT 1", rid)
    before = await table_counts(db)
    response = await client.post(f"/api/v1/restaurants/{rid}/waitlist/{party['id']}/seat",
                                 headers=host, json={"table_id": two_top})
    assert response.status == 422
    assert (await error_of(response))["details"][0]["path"] == "$.table_id"
    assert await table_counts(db) == before


async def test_estimate_for_a_party_no_table_fits_is_422(client, rid, tokens):
    response = await client.get(f"/api/v1/restaurants/{rid}/waitlist/estimate?size=40",
                                headers=bearer(await tokens("host")))
    assert response.status == 422
    assert (await error_of(response))["details"][0]["path"] == "query.size"
