"""The floor over HTTP: areas, tables, paging, If-Match, and every table status step with its turn."""
from __future__ import annotations

from collections import deque
from typing import Any

import asyncpg
import msgspec
import pytest
from aiohttp.test_utils import TestClient
from conftest import bearer, error_of, table_counts

# The table state machine as migration 0003 defines it (checked against the database below).
LEGAL = [
    ("free", "seated"), ("free", "blocked"),
    ("seated", "ordering"), ("seated", "dirty"), ("seated", "free"),
    ("ordering", "waiting_food"), ("ordering", "eating"), ("ordering", "paying"), ("ordering", "dirty"),
    ("waiting_food", "eating"), ("waiting_food", "ordering"),
    ("eating", "ordering"), ("eating", "waiting_food"), ("eating", "paying"),
    ("paying", "dirty"), ("paying", "free"),
    ("dirty", "free"),
    ("blocked", "free"),
]
ILLEGAL = [("free", "eating"), ("free", "paying"), ("free", "dirty"), ("dirty", "seated"),
           ("blocked", "seated"), ("paying", "ordering"), ("seated", "eating"), ("eating", "free"),
           ("waiting_food", "paying")]
STAMPED = ("ordering", "waiting_food", "eating", "paying", "dirty")
PARTY = 3


async def seq_of(db: asyncpg.Connection, rid: int) -> int:
    return await db.fetchval("SELECT seq FROM restaurants WHERE id = $1", rid)


async def last_event(db: asyncpg.Connection, rid: int) -> dict[str, Any]:
    row = await db.fetchrow("SELECT seq, channel, name, data FROM events WHERE restaurant_id = $1 "
                            "ORDER BY seq DESC LIMIT 1", rid)
    return {**dict(row), "data": msgspec.json.decode(row["data"])}


def path_to(status: str) -> list[str]:
    """The shortest walk of legal steps from a free table to `status`."""
    queue: deque[list[str]] = deque([[]])
    while queue:
        walk = queue.popleft()
        here = walk[-1] if walk else "free"
        if here == status:
            return walk
        queue.extend(walk + [to] for frm, to in LEGAL if frm == here and to not in walk)
    raise AssertionError(f"{status} cannot be reached")


async def turn(db: asyncpg.Connection, turn_id: int | None) -> asyncpg.Record | None:
    return None if turn_id is None else await db.fetchrow("SELECT * FROM table_turns WHERE id = $1",
                                                          turn_id)


async def step(client: TestClient, db: asyncpg.Connection, base: str, headers: dict[str, str],
               rid: int, table_id: int, status: str) -> dict[str, Any]:
    """Move a table one step and check the turn, the event and the seq header it leaves behind."""
    before = await db.fetchrow("SELECT turn_id FROM dining_tables WHERE id = $1", table_id)
    old = await turn(db, before["turn_id"])
    body = {"status": status, **({"party_size": PARTY} if status == "seated" else {})}
    response = await client.post(f"{base}/tables/{table_id}/status", headers=headers, json=body)
    assert response.status == 200, await response.text()
    table = await response.json()
    assert table["status"] == status
    turn_id = await db.fetchval("SELECT turn_id FROM dining_tables WHERE id = $1", table_id)
    assert table["turn_id"] == turn_id
    if status == "seated":
        opened = await turn(db, turn_id)
        assert opened["table_id"] == table_id and opened["party_size"] == PARTY
        assert opened["seated_at"] is not None and opened["freed_at"] is None
        assert all(opened[f"{s}_at"] is None for s in STAMPED)
        assert table["party_size"] == PARTY and table["seated_at"] is not None
    elif status in ("free", "blocked"):
        assert turn_id is None and table["party_size"] is None
        if old is not None:
            closed = await turn(db, old["id"])
            assert closed["freed_at"] is not None and closed["freed_at"] >= closed["seated_at"]
    else:
        assert turn_id == before["turn_id"]
        stamped = await turn(db, turn_id)
        column = f"{status}_at"
        assert stamped[column] is not None
        if old[column] is not None:
            assert stamped[column] == old[column]  # stamped once, on the first visit
    event = await last_event(db, rid)
    assert (event["channel"], event["name"]) == ("floor", "table.status")
    assert event["data"]["table"]["id"] == table_id and event["data"]["table"]["status"] == status
    assert int(response.headers["X-Serveline-Seq"]) == event["seq"] == await seq_of(db, rid)
    return table


async def walk_to(client, db, base, headers, rid, table_id, status) -> None:
    for next_status in path_to(status):
        await step(client, db, base, headers, rid, table_id, next_status)


async def test_the_transition_list_matches_the_database(db: asyncpg.Connection) -> None:
    rows = await db.fetch("SELECT from_status, to_status FROM table_transitions")
    assert sorted(tuple(r) for r in rows) == sorted(LEGAL)


async def test_areas_list_has_items_and_next(client, db, base, rid, manager) -> None:
    response = await client.get(base + "/areas", headers=manager)
    assert response.status == 200
    page = await response.json()
    assert set(page) == {"items", "next"} and page["next"] is None
    assert [a["name"] for a in page["items"]] == ["Dining room", "Patio"]
    assert set(page["items"][0]) == {"id", "name", "sort", "version"}
    assert int(response.headers["X-Serveline-Seq"]) == await seq_of(db, rid)


async def test_creating_an_area_returns_201_and_an_event(client, db, base, rid, manager) -> None:
    response = await client.post(base + "/areas", headers=manager, json={"name": "Bar", "sort": 3})
    assert response.status == 201, await response.text()
    area = await response.json()
    assert area["name"] == "Bar" and area["sort"] == 3 and area["version"] == 1
    event = await last_event(db, rid)
    assert (event["channel"], event["name"], event["data"]["area"]) == ("floor", "area.created", area)
    assert int(response.headers["X-Serveline-Seq"]) == await seq_of(db, rid)


async def test_duplicate_area_name_is_rejected_with_409(client, db, base, manager) -> None:
    before = await table_counts(db)
    response = await client.post(base + "/areas", headers=manager, json={"name": "Patio"})
    assert response.status == 409
    assert (await error_of(response))["code"] == "conflict"
    assert await table_counts(db) == before


async def test_tables_list_filters_by_area_and_status(client, db, base, rid, manager, labels) -> None:
    listed = await (await client.get(base + "/areas", headers=manager)).json()
    areas = {a["name"]: a["id"] for a in listed["items"]}
    patio = await (await client.get(f"{base}/tables?area_id={areas['Patio']}", headers=manager)).json()
    assert sorted(t["label"] for t in patio["items"]) == sorted(f"P{n}" for n in range(1, 9))
    await step(client, db, base, manager, rid, labels["D2"], "seated")
    await step(client, db, base, manager, rid, labels["P5"], "blocked")
    seated = await (await client.get(base + "/tables?status=seated", headers=manager)).json()
    assert [t["label"] for t in seated["items"]] == ["D2"]
    assert seated["items"][0]["party_size"] == PARTY
    free_patio = await client.get(f"{base}/tables?status=free&area_id={areas['Patio']}", headers=manager)
    assert len((await free_patio.json())["items"]) == 7
    assert int(free_patio.headers["X-Serveline-Seq"]) == await seq_of(db, rid)


async def test_unknown_status_filter_is_400(client, base, manager) -> None:
    response = await client.get(base + "/tables?status=sleeping", headers=manager)
    assert response.status == 400
    assert (await error_of(response))["details"][0]["path"] == "query.status"


async def test_keyset_pages_walk_all_20_tables_without_repeats(client, base, manager, labels) -> None:
    seen: list[int] = []
    url = base + "/tables?limit=6"
    pages = 0
    while url:
        page = await (await client.get(url, headers=manager)).json()
        pages += 1
        assert len(page["items"]) <= 6
        seen += [t["id"] for t in page["items"]]
        url = f"{base}/tables?limit=6&cursor={page['next']}" if page["next"] else None
    assert pages == 4
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 20
    assert set(seen) == set(labels.values())


async def test_creating_a_table_returns_201_with_defaults(client, db, base, rid, manager) -> None:
    area_id = (await (await client.get(base + "/areas", headers=manager)).json())["items"][1]["id"]
    response = await client.post(base + "/tables", headers=manager,
                                 json={"label": "P9", "seats": 2, "area_id": area_id})
    assert response.status == 201, await response.text()
    table = await response.json()
    assert (table["label"], table["seats"], table["area_id"]) == ("P9", 2, area_id)
    assert (table["x"], table["y"], table["shape"], table["status"]) == (0, 0, "square", "free")
    assert table["turn_id"] is None and table["version"] == 1
    event = await last_event(db, rid)
    assert (event["channel"], event["name"], event["data"]["table"]["id"]) == ("floor", "table.created",
                                                                               table["id"])
    assert int(response.headers["X-Serveline-Seq"]) == event["seq"] == await seq_of(db, rid)
    assert await db.fetchval("SELECT count(*) FROM dining_tables WHERE restaurant_id = $1", rid) == 21


async def test_duplicate_table_label_is_rejected_with_409(client, db, base, manager, labels) -> None:
    area_id = await db.fetchval("SELECT area_id FROM dining_tables WHERE id = $1", labels["D1"])
    before = await table_counts(db)
    response = await client.post(base + "/tables", headers=manager,
                                 json={"label": "D1", "seats": 4, "area_id": area_id})
    assert response.status == 409
    assert (await error_of(response))["code"] == "conflict"
    assert await table_counts(db) == before


async def test_table_in_another_restaurants_area_is_rejected_with_422(client, db, base, manager,
                                                                       restaurant_ids) -> None:
    foreign_area = await db.fetchval("SELECT min(id) FROM areas WHERE restaurant_id = $1",
                                     restaurant_ids["other"])
    before = await table_counts(db)
    response = await client.post(base + "/tables", headers=manager,
                                 json={"label": "X1", "seats": 4, "area_id": foreign_area})
    assert response.status == 422
    error = await error_of(response)
    assert error["code"] == "invalid" and error["details"][0]["path"] == "$.area_id"
    assert await table_counts(db) == before


async def test_patch_without_if_match_updates_and_bumps_version(client, db, base, rid, manager,
                                                                labels) -> None:
    response = await client.patch(f"{base}/tables/{labels['D1']}", headers=manager,
                                  json={"seats": 5, "shape": "round"})
    assert response.status == 200, await response.text()
    table = await response.json()
    assert (table["seats"], table["shape"], table["label"], table["version"]) == (5, "round", "D1", 2)
    assert await db.fetchval("SELECT seats FROM dining_tables WHERE id = $1", labels["D1"]) == 5
    assert (await last_event(db, rid))["name"] == "table.updated"
    assert int(response.headers["X-Serveline-Seq"]) == await seq_of(db, rid)


async def test_patch_with_current_if_match_succeeds(client, base, manager, labels) -> None:
    response = await client.patch(f"{base}/tables/{labels['D1']}", json={"x": 10},
                                  headers={**manager, "If-Match": '"1"'})
    assert response.status == 200, await response.text()
    assert (await response.json())["version"] == 2


async def test_stale_if_match_is_412_and_writes_nothing(client, db, base, manager, labels) -> None:
    await client.patch(f"{base}/tables/{labels['D1']}", headers=manager, json={"x": 10})
    before = await table_counts(db)
    response = await client.patch(f"{base}/tables/{labels['D1']}", json={"x": 20},
                                  headers={**manager, "If-Match": '"1"'})
    assert response.status == 412
    error = await error_of(response)
    assert error["code"] == "precondition_failed" and error["details"] == [{"version": 2}]
    assert await table_counts(db) == before
    assert await db.fetchval("SELECT x FROM dining_tables WHERE id = $1", labels["D1"]) == 10


async def test_patch_to_a_taken_label_is_409(client, db, base, manager, labels) -> None:
    before = await table_counts(db)
    response = await client.patch(f"{base}/tables/{labels['D1']}", headers=manager, json={"label": "D2"})
    assert response.status == 409
    assert (await error_of(response))["code"] == "conflict"
    assert await table_counts(db) == before


async def test_get_one_table(client, base, manager, labels) -> None:
    response = await client.get(f"{base}/tables/{labels['P1']}", headers=manager)
    assert response.status == 200
    table = await response.json()
    assert (table["id"], table["label"], table["seats"], table["status"]) == (labels["P1"], "P1", 2, "free")


@pytest.mark.parametrize("method,suffix,body", [
    ("GET", "", None), ("PATCH", "", {"seats": 2}), ("POST", "/status", {"status": "seated"})])
async def test_unknown_and_foreign_table_ids_are_404(client, db, base, manager, restaurant_ids,
                                                      method, suffix, body) -> None:
    foreign = await db.fetchval("SELECT min(id) FROM dining_tables WHERE restaurant_id = $1",
                                restaurant_ids["other"])
    before = await table_counts(db)
    for table_id in (999_999, foreign, "abc"):
        response = await client.request(method, f"{base}/tables/{table_id}{suffix}", headers=manager,
                                        json=body)
        assert response.status == 404, await response.text()
        assert (await error_of(response))["code"] == "not_found"
    assert await table_counts(db) == before
    assert await db.fetchval("SELECT count(*) FROM dining_tables WHERE restaurant_id = $1 "
                             "AND (status <> 'free' OR version <> 1)", restaurant_ids["other"]) == 0


@pytest.mark.parametrize("frm,to", LEGAL, ids=[f"{f}->{t}" for f, t in LEGAL])
async def test_every_legal_transition_succeeds_and_records_the_turn(client, db, base, rid, manager,
                                                                    labels, frm, to) -> None:
    await walk_to(client, db, base, manager, rid, labels["D4"], frm)
    table = await step(client, db, base, manager, rid, labels["D4"], to)
    assert table["version"] == len(path_to(frm)) + 2


async def test_a_full_turn_is_stamped_once_per_step_and_closed_when_freed(client, db, base, rid,
                                                                          manager, labels) -> None:
    table_id = labels["D5"]
    for status in ("seated", "ordering", "waiting_food", "ordering", "eating", "waiting_food",
                   "eating", "paying", "dirty", "free"):
        await step(client, db, base, manager, rid, table_id, status)
    turns = await db.fetch("SELECT * FROM table_turns WHERE table_id = $1", table_id)
    assert len(turns) == 1
    done = turns[0]
    assert done["party_size"] == PARTY
    stamps = [done["seated_at"], done["ordering_at"], done["waiting_food_at"], done["eating_at"],
              done["paying_at"], done["dirty_at"], done["freed_at"]]
    assert all(s is not None for s in stamps) and stamps == sorted(stamps)
    assert await db.fetchval("SELECT turn_id FROM dining_tables WHERE id = $1", table_id) is None


@pytest.mark.parametrize("frm,to", ILLEGAL, ids=[f"{f}->{t}" for f, t in ILLEGAL])
async def test_illegal_jump_is_409_listing_allowed_statuses(client, db, base, rid, manager, labels,
                                                            frm, to) -> None:
    await walk_to(client, db, base, manager, rid, labels["D7"], frm)
    before = await table_counts(db)
    row_before = await db.fetchrow("SELECT * FROM dining_tables WHERE id = $1", labels["D7"])
    response = await client.post(f"{base}/tables/{labels['D7']}/status", headers=manager,
                                 json={"status": to})
    assert response.status == 409
    error = await error_of(response)
    assert error["code"] == "conflict"
    assert error["details"][0]["status"] == frm
    assert sorted(error["details"][0]["allowed"]) == sorted(t for f, t in LEGAL if f == frm)
    assert await table_counts(db) == before
    assert await db.fetchrow("SELECT * FROM dining_tables WHERE id = $1", labels["D7"]) == row_before


@pytest.mark.parametrize("body,path", [({"status": "sleeping"}, "$.status"), ({}, "$"),
                                       ({"status": "seated", "party_size": 0}, "$.party_size"),
                                       ({"status": "seated", "vip": True}, "$")])
async def test_unknown_status_or_bad_body_is_422(client, db, base, manager, labels, body, path) -> None:
    before = await table_counts(db)
    response = await client.post(f"{base}/tables/{labels['D1']}/status", headers=manager, json=body)
    assert response.status == 422
    error = await error_of(response)
    assert error["code"] == "validation_failed" and error["details"][0]["path"] == path
    assert await table_counts(db) == before


async def test_status_change_with_stale_if_match_is_412(client, db, base, rid, manager, labels) -> None:
    await step(client, db, base, manager, rid, labels["D8"], "seated")
    before = await table_counts(db)
    response = await client.post(f"{base}/tables/{labels['D8']}/status", json={"status": "ordering"},
                                 headers={**manager, "If-Match": '"1"'})
    assert response.status == 412
    assert (await error_of(response))["details"] == [{"version": 2}]
    assert await table_counts(db) == before
    fresh = await client.post(f"{base}/tables/{labels['D8']}/status", json={"status": "ordering"},
                              headers={**manager, "If-Match": '"2"'})
    assert fresh.status == 200, await fresh.text()


async def test_kitchen_staff_cannot_move_tables(client, db, base, tokens, labels) -> None:
    kitchen = bearer(await tokens("kitchen"))
    before = await table_counts(db)
    response = await client.post(f"{base}/tables/{labels['D1']}/status", headers=kitchen,
                                 json={"status": "seated"})
    assert response.status == 403
    assert await table_counts(db) == before


async def test_a_party_moves_to_a_free_table_with_its_orders_and_nothing_for_the_kitchen(
        client: TestClient, db, base, rid, manager, labels, menu):
    await client.post(f"{base}/tables/{labels['D1']}/status", headers=manager,
                      json={"status": "seated", "party_size": 4})
    await client.post(f"{base}/tables/{labels['D1']}/status", headers=manager,
                      json={"status": "ordering"})
    order = await (await client.post(f"{base}/orders", headers=manager, json={
        "table_id": labels["D1"], "items": [{"menu_item_id": menu["Burger"]["id"]}]})).json()
    before = await seq_of(db, rid)
    response = await client.post(f"{base}/tables/{labels['D1']}/move", headers=manager,
                                 json={"to_table_id": labels["D2"]})
    assert response.status == 200, await response.text()
    moved = await response.json()
    assert moved["order_ids"] == [order["id"]]
    assert (moved["table"]["id"], moved["table"]["status"], moved["table"]["party_size"]) == (
        labels["D2"], "ordering", 4)
    assert (moved["left"]["status"], moved["left"]["turn_id"]) == ("dirty", None)
    assert await db.fetchval("SELECT table_id FROM orders WHERE id = $1", order["id"]) == labels["D2"]
    turns = await db.fetch("SELECT table_id, stay_id, freed_at IS NOT NULL AS ended, ordering_at "
                           "FROM table_turns WHERE restaurant_id = $1 ORDER BY id", rid)
    assert [(t["table_id"], t["ended"]) for t in turns] == [(labels["D1"], True), (labels["D2"], False)]
    assert turns[1]["stay_id"] is not None and turns[1]["ordering_at"] == turns[0]["ordering_at"]
    names = await db.fetch("SELECT channel, name FROM events WHERE restaurant_id = $1 AND seq > $2 "
                           "ORDER BY seq", rid, before)
    assert [(r["channel"], r["name"]) for r in names] == [
        ("floor", "table.status"), ("floor", "table.status"), ("orders", "order.moved")]
    assert int(response.headers["X-Serveline-Seq"]) == before + 3


@pytest.mark.parametrize("case, status, code", [
    ("not_seated", 409, "conflict"), ("target_taken", 409, "conflict"),
    ("too_small", 409, "conflict"), ("same_table", 422, "invalid"),
    ("other_restaurant", 422, "invalid"), ("stale", 412, "precondition_failed"),
    ("target_has_an_order", 409, "table_has_open_order")])
async def test_a_move_that_cannot_happen_says_why_and_changes_nothing(
        client: TestClient, db, base, rid, manager, labels, restaurant_ids, menu, case, status, code):
    source, target = labels["D1"], labels["D2"]
    if case != "not_seated":
        await client.post(f"{base}/tables/{source}/status", headers=manager,
                          json={"status": "seated", "party_size": 4})
    if case == "target_taken":
        await client.post(f"{base}/tables/{target}/status", headers=manager, json={"status": "blocked"})
    if case == "too_small":
        target = labels["P1"]  # seats 2
    if case == "target_has_an_order":  # free, but an order was taken for it
        placed = await client.post(f"{base}/orders", headers=manager, json={
            "table_id": target, "items": [{"menu_item_id": menu["Burger"]["id"]}]})
        assert placed.status == 201, await placed.text()
    if case == "same_table":
        target = source
    if case == "other_restaurant":
        target = await db.fetchval("SELECT id FROM dining_tables WHERE restaurant_id = $1 LIMIT 1",
                                   restaurant_ids["other"])
    headers = {**manager, "If-Match": '"99"'} if case == "stale" else manager
    before = await table_counts(db)
    response = await client.post(f"{base}/tables/{source}/move", headers=headers,
                                 json={"to_table_id": target})
    assert response.status == status, await response.text()
    assert (await error_of(response))["code"] == code
    assert await table_counts(db) == before
