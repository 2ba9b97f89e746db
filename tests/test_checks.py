"""Split checks over HTTP: by items, by seats, evenly; paid one by one, the last closing the order.
Amounts add up to the order's total exactly, and the kitchen receives nothing twice."""
from __future__ import annotations

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from conftest import error_of, table_counts
from test_table_merges import kitchen_sent, lines_as_sent, new_names, order_at, seq_of

from store.checks import shares


async def split(client: TestClient, base: str, headers: dict, order_id: int, body: dict) -> dict:
    response = await client.post(f"{base}/orders/{order_id}/checks/split", headers=headers,
                                 json=body)
    assert response.status == 200, await response.text()
    return await response.json()


async def pay(client: TestClient, base: str, headers: dict, order_id: int, check_id: int,
              **body) -> dict:
    response = await client.post(f"{base}/orders/{order_id}/checks/{check_id}/pay",
                                 headers=headers, json={"method": "card", **body})
    assert response.status == 200, await response.text()
    return await response.json()


def test_shares_add_up_exactly_with_the_remainder_on_the_first_checks() -> None:
    assert shares(3100, 3) == [1034, 1033, 1033]
    assert shares(1001, 3) == [334, 334, 333]
    assert shares(2, 3) == [1, 1, 0]
    assert all(sum(shares(n, k)) == n for n in range(0, 500, 7) for k in range(2, 21))


async def test_an_even_split_adds_up_to_the_total_and_the_kitchen_hears_nothing(
        client, db, base, rid, server, menu):
    order = await order_at(client, base, server, None, menu["Burger"]["id"], menu["Fries"]["id"],
                           menu["Espresso"]["id"], menu["Cola"]["id"])
    assert order["total_minor"] == 3100
    sent, lines, before = await kitchen_sent(db, rid), await lines_as_sent(db, rid), await seq_of(db, rid)
    checks = await split(client, base, server, order["id"], {"by": "even", "count": 3})
    assert [c["subtotal_minor"] for c in checks["checks"]] == [1034, 1033, 1033]
    assert [c["number"] for c in checks["checks"]] == [1, 2, 3]
    assert (checks["total_minor"], checks["due_minor"], checks["paid_minor"]) == (3100, 3100, 0)
    assert checks["checks"][0]["lines"] == [{"item_id": None, "name": "1/3 of the order", "qty": 1,
                                             "amount_minor": 1034, "share": "1/3"}]
    assert await new_names(db, rid, before) == [("orders", "order.split")]
    listed = await (await client.get(f"{base}/orders/{order['id']}/checks", headers=server)).json()
    assert listed == checks
    for check in checks["checks"]:
        paid = await pay(client, base, server, order["id"], check["id"], tip_minor=100)
    assert (paid["order_status"], paid["paid_minor"], paid["due_minor"]) == ("closed", 3100, 0)
    closed = await (await client.get(f"{base}/orders/{order['id']}", headers=server)).json()
    assert closed["status"] == "closed"
    assert closed["payment"]["method"] == "split"
    assert (closed["payment"]["total_minor"], closed["payment"]["amount_minor"],
            closed["payment"]["tip_minor"]) == (3100, 3100, 300)
    assert [c["number"] for c in closed["payment"]["checks"]] == [1, 2, 3]
    assert await kitchen_sent(db, rid) == sent
    assert await lines_as_sent(db, rid) == lines
    assert await new_names(db, rid, before) == [
        ("orders", "order.split"), ("orders", "check.paid"), ("orders", "check.paid"),
        ("orders", "check.paid"), ("orders", "order.closed")]


async def test_a_split_by_seats_shares_lines_without_a_seat_evenly(client, db, base, rid, server,
                                                                   menu):
    order = await order_at(client, base, server, None, menu["Burger"]["id"], menu["Salmon"]["id"],
                           menu["Cola"]["id"], menu["Burrata"]["id"])
    burger, salmon, cola, burrata = (i["id"] for i in order["items"])
    await db.execute("UPDATE order_items SET seat = CASE id WHEN $1 THEN 1 WHEN $2 THEN 2 "
                     "WHEN $3 THEN 3 END WHERE id = ANY($4::bigint[])",
                     burger, salmon, cola, [burger, salmon, cola])
    sent = await kitchen_sent(db, rid)
    checks = await split(client, base, server, order["id"], {"by": "seats"})
    assert [c["seat"] for c in checks["checks"]] == [1, 2, 3]
    assert [[(line["item_id"], line["amount_minor"], line["share"]) for line in c["lines"]]
            for c in checks["checks"]] == [
        [(burger, 1800, None), (burrata, 467, "1/3")],
        [(salmon, 2600, None), (burrata, 467, "1/3")],
        [(cola, 400, None), (burrata, 466, "1/3")]]
    assert sum(c["subtotal_minor"] for c in checks["checks"]) == order["total_minor"]
    assert await kitchen_sent(db, rid) == sent


async def test_a_split_by_items_puts_each_line_on_one_check_and_replaces_an_unpaid_split(
        client, db, base, rid, server, menu):
    order = await order_at(client, base, server, None, menu["Burger"]["id"], menu["Fries"]["id"],
                           menu["Cola"]["id"])
    burger, fries, cola = (i["id"] for i in order["items"])
    await split(client, base, server, order["id"], {"by": "even", "count": 2})
    sent = await kitchen_sent(db, rid)
    checks = await split(client, base, server, order["id"], {"by": "items",
                                                              "checks": [[burger, cola], [fries]]})
    assert [(c["number"], c["split_by"], c["subtotal_minor"]) for c in checks["checks"]] == [
        (1, "items", 2200), (2, "items", 600)]
    assert await db.fetchval("SELECT count(*) FROM checks WHERE order_id = $1", order["id"]) == 2
    first = await pay(client, base, server, order["id"], checks["checks"][0]["id"],
                      amount_minor=2500)
    assert first["order_status"] == "open" and first["checks"][0]["status"] == "paid"
    assert first["checks"][0]["payment"]["amount_minor"] == 2500
    # Paying twice, or splitting again once a check is paid, is refused and writes nothing.
    before = await table_counts(db)
    twice = await client.post(f"{base}/orders/{order['id']}/checks/{checks['checks'][0]['id']}/pay",
                              headers=server, json={"method": "cash"})
    assert twice.status == 409 and (await error_of(twice))["code"] == "conflict"
    again = await client.post(f"{base}/orders/{order['id']}/checks/split", headers=server,
                              json={"by": "seats"})
    assert again.status == 409 and (await error_of(again))["code"] == "checks_paid"
    assert await table_counts(db) == before
    last = await pay(client, base, server, order["id"], checks["checks"][1]["id"])
    assert last["order_status"] == "closed"
    assert await kitchen_sent(db, rid) == sent


async def test_paying_a_check_of_an_order_closed_otherwise_is_a_conflict(client, db, base, server,
                                                                         menu):
    order = await order_at(client, base, server, None, menu["Burger"]["id"], menu["Fries"]["id"])
    checks = await split(client, base, server, order["id"], {"by": "even", "count": 2})
    await client.post(f"{base}/orders/{order['id']}/close", headers=server, json={
        "payment": {"method": "cash", "amount_minor": order["total_minor"]}})
    before = await table_counts(db)
    response = await client.post(f"{base}/orders/{order['id']}/checks/{checks['checks'][0]['id']}/pay",
                                 headers=server, json={"method": "card"})
    assert response.status == 409 and (await error_of(response))["code"] == "conflict"
    assert await table_counts(db) == before


async def test_a_check_of_an_order_that_changed_since_the_split_is_not_paid(
        client, db, base, server, menu):
    order = await order_at(client, base, server, None, menu["Burger"]["id"], menu["Fries"]["id"])
    checks = await split(client, base, server, order["id"], {"by": "even", "count": 2})
    await client.post(f"{base}/orders/{order['id']}/items/{order['items'][1]['id']}/void",
                      headers=server)
    before = await table_counts(db)
    response = await client.post(f"{base}/orders/{order['id']}/checks/{checks['checks'][0]['id']}/pay",
                                 headers=server, json={"method": "card"})
    assert response.status == 409
    assert (await error_of(response))["details"] == [{"total_minor": 1800, "split_minor": 2400}]
    assert await table_counts(db) == before


@pytest.mark.parametrize("case, status, code", [
    ("missing_item", 422, "invalid"), ("duplicate_item", 422, "invalid"),
    ("other_orders_item", 422, "invalid"), ("void_item", 422, "invalid"),
    ("one_check", 422, "validation_failed"), ("count_1", 422, "invalid"),
    ("count_21", 422, "validation_failed"), ("unknown_by", 422, "validation_failed"),
    ("no_seats", 422, "invalid"), ("closed", 409, "conflict"),
    ("stale", 412, "precondition_failed"), ("unknown_order", 404, "not_found")])
async def test_a_split_that_cannot_happen_says_why_and_writes_nothing(
        client, db, base, server, menu, case, status, code):
    order = await order_at(client, base, server, None, menu["Burger"]["id"], menu["Fries"]["id"],
                           menu["Cola"]["id"])
    other = await order_at(client, base, server, None, menu["Salmon"]["id"])
    a, b, c = (i["id"] for i in order["items"])
    body = {"missing_item": {"by": "items", "checks": [[a], [b]]},
            "duplicate_item": {"by": "items", "checks": [[a, b], [b, c]]},
            "other_orders_item": {"by": "items", "checks": [[a, b], [c, other["items"][0]["id"]]]},
            "void_item": {"by": "items", "checks": [[a, b], [c]]},
            "one_check": {"by": "items", "checks": [[a, b, c]]},
            "count_1": {"by": "even", "count": 1}, "count_21": {"by": "even", "count": 21},
            "unknown_by": {"by": "guest"}, "no_seats": {"by": "seats"},
            }.get(case, {"by": "even", "count": 2})
    order_id = 10**12 if case == "unknown_order" else order["id"]
    if case == "void_item":
        await client.post(f"{base}/orders/{order['id']}/items/{c}/void", headers=server)
    if case == "closed":
        await client.post(f"{base}/orders/{order['id']}/close", headers=server, json={
            "payment": {"method": "cash", "amount_minor": order["total_minor"]}})
    headers = {**server, "If-Match": '"99"'} if case == "stale" else server
    before = await table_counts(db)
    response = await client.post(f"{base}/orders/{order_id}/checks/split", headers=headers,
                                 json=body)
    assert response.status == status, await response.text()
    assert (await error_of(response))["code"] == code
    assert await table_counts(db) == before


@pytest.mark.parametrize("case, status, code", [
    ("short", 422, "invalid"), ("unknown_check", 404, "not_found"),
    ("bad_method", 422, "validation_failed"), ("stale", 412, "precondition_failed")])
async def test_a_payment_that_cannot_happen_says_why_and_writes_nothing(
        client, db, base, server, menu, case, status, code):
    order = await order_at(client, base, server, None, menu["Burger"]["id"], menu["Fries"]["id"])
    checks = await split(client, base, server, order["id"], {"by": "even", "count": 2})
    check_id = 10**12 if case == "unknown_check" else checks["checks"][0]["id"]
    body = {"short": {"method": "card", "amount_minor": 100},
            "bad_method": {"method": "iou"}}.get(case, {"method": "card"})
    headers = {**server, "If-Match": '"99"'} if case == "stale" else server
    before = await table_counts(db)
    response = await client.post(f"{base}/orders/{order['id']}/checks/{check_id}/pay",
                                 headers=headers, json=body)
    assert response.status == status, await response.text()
    assert (await error_of(response))["code"] == code
    assert await table_counts(db) == before


async def test_moving_lines_drops_an_unpaid_split_and_a_paid_one_refuses(
        client, db: asyncpg.Connection, base, server, menu):
    source = await order_at(client, base, server, None, menu["Burger"]["id"], menu["Fries"]["id"])
    target = await order_at(client, base, server, None, menu["Salmon"]["id"])
    await split(client, base, server, source["id"], {"by": "even", "count": 2})
    moved = await client.post(f"{base}/orders/{source['id']}/items/transfer", headers=server,
                              json={"item_ids": [source["items"][1]["id"]],
                                    "to_order_id": target["id"]})
    assert moved.status == 200, await moved.text()
    assert await db.fetchval("SELECT count(*) FROM checks WHERE order_id = $1", source["id"]) == 0
    checks = await split(client, base, server, target["id"], {"by": "even", "count": 2})
    await pay(client, base, server, target["id"], checks["checks"][0]["id"])
    before = await table_counts(db)
    refused = await client.post(f"{base}/orders/{target['id']}/items/transfer", headers=server,
                                json={"item_ids": [target["items"][0]["id"]],
                                      "to_order_id": source["id"]})
    assert refused.status == 409 and (await error_of(refused))["code"] == "conflict"
    assert await table_counts(db) == before


async def test_ipads_see_the_split_and_payments_live_and_the_kitchen_hears_nothing(
        client, base, rid, server, tokens, menu, open_socket):
    order = await order_at(client, base, server, None, menu["Burger"]["id"], menu["Fries"]["id"])
    ipad = await open_socket(rid, await tokens("server"))
    await ipad.send(type="subscribe", channels=["orders"])
    await ipad.until("subscribed")
    cook = await open_socket(rid, await tokens("kitchen"))
    await cook.send(type="subscribe", channels=["kitchen:grill", "kitchen:fry"])
    await cook.until("subscribed")
    checks = await split(client, base, server, order["id"], {"by": "even", "count": 2})
    split_event = await ipad.until("event", "order.split")
    assert split_event["data"]["checks"] == checks
    for check in checks["checks"]:
        await pay(client, base, server, order["id"], check["id"])
    paid = await ipad.until("event", "check.paid")
    assert paid["data"]["check_id"] == checks["checks"][0]["id"]
    closed = await ipad.until("event", "order.closed")
    assert closed["data"]["order"]["payment"]["method"] == "split"
    with pytest.raises(TimeoutError):
        await cook.until("event", timeout=1.0)


async def paid_half(client, base, server, menu) -> tuple[dict, dict]:
    """An order of 2 × Burger split in two, the first check paid with a 500 tip."""
    order = await order_at(client, base, server, None, menu["Burger"]["id"], menu["Burger"]["id"])
    checks = await split(client, base, server, order["id"], {"by": "even", "count": 2})
    await pay(client, base, server, order["id"], checks["checks"][0]["id"], tip_minor=500)
    return order, checks


async def test_a_line_added_after_a_check_is_paid_is_split_as_the_rest(client, db, base, rid,
                                                                       server, menu):
    order, checks = await paid_half(client, base, server, menu)
    half = checks["checks"][0]["subtotal_minor"]
    added = await client.post(f"{base}/orders/{order['id']}/items", headers=server,
                              json={"items": [{"menu_item_id": menu["Espresso"]["id"]}]})
    assert added.status == 200, await added.text()
    total = (await added.json())["total_minor"]
    # The open check no longer matches: paying it is refused, and the rest is split again.
    stale = await client.post(f"{base}/orders/{order['id']}/checks/{checks['checks'][1]['id']}/pay",
                              headers=server, json={"method": "card"})
    assert stale.status == 409, await stale.text()
    rest = await split(client, base, server, order["id"], {"by": "even", "count": 1})
    assert [(c["number"], c["status"], c["subtotal_minor"]) for c in rest["checks"]] == [
        (1, "paid", half), (2, "open", total - half)]
    assert rest["checks"][1]["lines"][0]["name"] == "1/1 of the rest"
    closed = await pay(client, base, server, order["id"], rest["checks"][1]["id"])
    assert (closed["order_status"], closed["paid_minor"], closed["due_minor"]) == ("closed", total, 0)
    payment = (await (await client.get(f"{base}/orders/{order['id']}", headers=server)).json())["payment"]
    assert (payment["total_minor"], payment["amount_minor"], payment["tip_minor"]) == (total, total, 500)


async def test_closing_after_a_paid_check_takes_only_the_rest_and_keeps_its_payment(
        client, db, base, rid, server, menu):
    order, checks = await paid_half(client, base, server, menu)
    half, total = checks["checks"][0]["subtotal_minor"], order["total_minor"]
    close = f"{base}/orders/{order['id']}/close"
    before = await table_counts(db)
    short = await client.post(close, headers=server, json={"payment": {
        "method": "cash", "amount_minor": total - half - 1}})
    assert short.status == 422 and (await error_of(short))["details"][0]["due_minor"] == total - half
    assert await table_counts(db) == before
    done = await client.post(close, headers=server, json={"payment": {
        "method": "cash", "amount_minor": total - half, "tip_minor": 100}})
    assert done.status == 200, await done.text()
    payment = (await done.json())["payment"]
    assert (payment["total_minor"], payment["amount_minor"], payment["tip_minor"]) == (
        total, total, 600)  # the check's 500 tip and this 100: nothing charged twice
    assert [c["number"] for c in payment["checks"]] == [1]
    assert payment["rest"]["amount_minor"] == total - half
    left = await db.fetch("SELECT number, status FROM checks WHERE order_id = $1", order["id"])
    assert [(r["number"], r["status"]) for r in left] == [(1, "paid")]


async def test_a_check_larger_than_a_check_holds_is_422_and_writes_nothing(client, db, base, server,
                                                                            tokens, menu):
    owner = {"Authorization": f"Bearer {await tokens('owner')}"}
    made = await client.post(f"{base}/menu/items", headers=owner, json={
        "category_id": menu["Burger"]["category_id"], "name": "Cellar wine", "station": "bar",
        "price_minor": 10_000_000})
    assert made.status == 201, await made.text()
    wine = (await made.json()).get("item", await made.json())
    order = await client.post(f"{base}/orders", headers=server, json={"items": [
        {"menu_item_id": wine["id"], "qty": 99} for _ in range(5)]})  # 4.95 billion in all
    assert order.status == 201, await order.text()
    order = await order.json()
    before = await table_counts(db)
    response = await client.post(f"{base}/orders/{order['id']}/checks/split", headers=server,
                                 json={"by": "even", "count": 2})
    assert response.status == 422, await response.text()
    assert await table_counts(db) == before
