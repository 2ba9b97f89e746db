"""Split checks: an order split by items, by seats or evenly into checks paid separately.

A split only divides what the order owes; it never touches tickets or items. Amounts are integer
minor units and always add up to the order's total exactly: a share that does not divide evenly
gives its remainder, a unit each, to the first checks. Paying the last open check closes the order.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
import msgspec

from store import events, orders
from store.errors import Conflict, Invalid, NotFound, Stale
from store.floor import Id

ItemGroup = Annotated[list[Id], msgspec.Meta(min_length=1, max_length=100)]


class ByItems(msgspec.Struct, forbid_unknown_fields=True, frozen=True, tag_field="by",
              tag="items"):
    checks: Annotated[list[ItemGroup], msgspec.Meta(min_length=2, max_length=20)]  # item ids


class BySeats(msgspec.Struct, forbid_unknown_fields=True, frozen=True, tag_field="by",
              tag="seats"):
    """One check per seat on the order; a line without a seat is shared evenly among them."""


class Evenly(msgspec.Struct, forbid_unknown_fields=True, frozen=True, tag_field="by", tag="even"):
    count: Annotated[int, msgspec.Meta(ge=1, le=20)]  # 1: only for the rest after paid checks


SplitIn = ByItems | BySeats | Evenly


class CheckPaymentIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """As an order's payment (orders.Payment); the amount defaults to the check's subtotal."""
    method: Literal["card", "cash", "other"]
    amount_minor: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)] | None = None
    tip_minor: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 0
    reference: Annotated[str, msgspec.Meta(max_length=100)] | None = None


class CheckLine(msgspec.Struct, frozen=True):
    item_id: int | None  # None: an even split's share of the whole order
    name: str
    qty: int
    amount_minor: int  # what this check pays of the line
    share: str | None  # "1/3" when the line is shared, None when this check has it whole


class Check(msgspec.Struct, frozen=True):
    id: int
    number: int
    split_by: Literal["items", "seats", "even"]
    seat: int | None
    lines: list[CheckLine]
    subtotal_minor: int
    status: Literal["open", "paid"]
    payment: dict[str, Any] | None
    created_at: datetime
    paid_at: datetime | None
    version: int


class Checks(msgspec.Struct, frozen=True):
    order_id: int
    order_status: Literal["open", "closed"]
    total_minor: int  # the order's total now
    paid_minor: int  # subtotals of the paid checks
    due_minor: int  # subtotals of the open checks
    checks: list[Check]


GET_CHECKS = """
SELECT json_build_object(
    'order_id', o.id, 'order_status', o.status,
    'total_minor', (SELECT coalesce(sum(oi.line_total_minor) FILTER (WHERE oi.status <> 'void'), 0)
                    FROM order_items oi WHERE oi.restaurant_id = $1 AND oi.order_id = o.id),
    'paid_minor', coalesce(c.paid, 0), 'due_minor', coalesce(c.due, 0),
    'checks', coalesce(c.list, '[]'))::text
FROM orders o
CROSS JOIN LATERAL (
    SELECT sum(ch.subtotal_minor) FILTER (WHERE ch.status = 'paid') AS paid,
           sum(ch.subtotal_minor) FILTER (WHERE ch.status = 'open') AS due,
           json_agg(ch ORDER BY ch.number) AS list
    FROM (SELECT id, number, split_by, seat, lines, subtotal_minor, status, payment, created_at,
                 paid_at, version
          FROM checks WHERE restaurant_id = $1 AND order_id = o.id) ch
) c
WHERE o.restaurant_id = $1 AND o.id = $2"""

LOCK_ORDER = """
SELECT o.status, o.version,
       EXISTS (SELECT 1 FROM checks c WHERE c.restaurant_id = $1 AND c.order_id = o.id
               AND c.status = 'paid') AS paid_checks
FROM orders o WHERE o.restaurant_id = $1 AND o.id = $2 FOR NO KEY UPDATE"""

LIVE_LINES = """
SELECT id, name, qty, line_total_minor, seat FROM order_items
WHERE restaurant_id = $1 AND order_id = $2 AND status <> 'void' ORDER BY id"""

DROP_SPLIT = "DELETE FROM checks WHERE restaurant_id = $1 AND order_id = ANY($2::bigint[])"

ANY_PAID = """
SELECT EXISTS (SELECT 1 FROM checks WHERE restaurant_id = $1 AND order_id = ANY($2::bigint[])
               AND status = 'paid')"""

INSERT_CHECKS = """
INSERT INTO checks (restaurant_id, order_id, number, split_by, seat, lines, subtotal_minor)
SELECT $1, $2, c.number, $3, c.seat, c.lines, c.subtotal_minor
FROM jsonb_to_recordset($4::jsonb) AS c(number int, seat int, lines jsonb, subtotal_minor int)"""

LOCK_CHECK = """
SELECT id, number, status, version, subtotal_minor FROM checks
WHERE restaurant_id = $1 AND order_id = $2 AND id = $3 FOR UPDATE"""

# What the checks add up to, and what is still open, beside the order's total now.
SPLIT_STATE = """
SELECT coalesce(sum(subtotal_minor), 0) AS split_minor,
       count(*) FILTER (WHERE status = 'open') AS open,
       (SELECT coalesce(sum(line_total_minor) FILTER (WHERE status <> 'void'), 0)
        FROM order_items WHERE restaurant_id = $1 AND order_id = $2) AS total_minor
FROM checks WHERE restaurant_id = $1 AND order_id = $2"""

PAY_CHECK = """
UPDATE checks SET status = 'paid', paid_at = now(), payment = $4, version = version + 1
WHERE restaurant_id = $1 AND order_id = $2 AND id = $3"""

PAYMENTS = """
SELECT coalesce(jsonb_agg(payment || jsonb_build_object('check_id', id, 'number', number)
                          ORDER BY number), '[]') AS checks,
       coalesce(sum((payment->>'amount_minor')::bigint), 0)::bigint AS amount_minor,
       coalesce(sum((payment->>'tip_minor')::bigint), 0)::bigint AS tip_minor
FROM checks WHERE restaurant_id = $1 AND order_id = $2"""


def shares(amount: int, count: int) -> list[int]:
    """`amount` in `count` parts that add up exactly, the remainder a unit each to the first."""
    base, extra = divmod(amount, count)
    return [base + (1 if i < extra else 0) for i in range(count)]


def _line(item: asyncpg.Record, amount: int, share: str | None) -> dict[str, Any]:
    return {"item_id": item["id"], "name": item["name"], "qty": item["qty"],
            "amount_minor": amount, "share": share}


def _by_items(lines: list[asyncpg.Record], body: ByItems) -> list[dict[str, Any]]:
    live = {item["id"]: item for item in lines}
    seen: set[int] = set()
    problems = []
    for c, group in enumerate(body.checks):
        for i, item_id in enumerate(group):
            if item_id not in live:
                problems.append({"path": f"$.checks[{c}][{i}]",
                                 "message": "not a live line of this order"})
            elif item_id in seen:
                problems.append({"path": f"$.checks[{c}][{i}]", "message": "listed twice"})
            seen.add(item_id)
    missing = [item_id for item_id in live if item_id not in seen]
    if missing:
        problems.append({"path": "$.checks", "message": "lines on no check",
                         "item_ids": missing})
    if problems:
        raise Invalid("every live line of the order goes on exactly one check", problems)
    return [{"number": n, "seat": None, "lines": [_line(live[i], live[i]["line_total_minor"], None)
                                                  for i in group]}
            for n, group in enumerate(body.checks, 1)]


def _by_seats(lines: list[asyncpg.Record]) -> list[dict[str, Any]]:
    seats = sorted({item["seat"] for item in lines if item["seat"] is not None})
    if not seats:
        raise Invalid("no line of this order has a seat; split by items or evenly",
                      [{"path": "$.by", "message": "no seats"}])
    checks = [{"number": n, "seat": seat, "lines": []} for n, seat in enumerate(seats, 1)]
    for item in lines:
        if item["seat"] is not None:
            checks[seats.index(item["seat"])]["lines"].append(
                _line(item, item["line_total_minor"], None))
            continue
        share = f"1/{len(seats)}" if len(seats) > 1 else None
        for check, amount in zip(checks, shares(item["line_total_minor"], len(seats))):
            check["lines"].append(_line(item, amount, share))
    return checks


def _evenly(amount: int, count: int, first: int = 1, of: str = "the order") -> list[dict[str, Any]]:
    return [{"number": n, "seat": None, "lines": [{
        "item_id": None, "name": f"1/{count} of {of}", "qty": 1, "amount_minor": part,
        "share": f"1/{count}"}]} for n, part in enumerate(shares(amount, count), first)]


async def checks_json(conn: asyncpg.Connection, rid: int, order_id: int) -> msgspec.Raw:
    text = await conn.fetchval(GET_CHECKS, rid, order_id)
    if text is None:
        raise NotFound("no such order")
    return msgspec.Raw(text.encode())


async def list_checks(pool: asyncpg.Pool, rid: int, order_id: int) -> msgspec.Raw:
    async with pool.acquire() as conn:
        return await checks_json(conn, rid, order_id)


async def drop_unpaid(conn: asyncpg.Connection, rid: int, order_ids: list[int]) -> bool:
    """Lines are about to move: an unpaid split of these orders no longer matches and goes.
    True (and nothing dropped) when one of them has a paid check."""
    if await conn.fetchval(ANY_PAID, rid, order_ids):
        return True
    await conn.execute(DROP_SPLIT, rid, order_ids)
    return False


async def split(pool: asyncpg.Pool, rid: int, order_id: int, body: SplitIn,
                expected: int | None) -> tuple[msgspec.Raw, int]:
    """Split an open order into checks, replacing a split of which nothing is paid yet."""
    async with events.write(pool) as tx:
        order = await tx.conn.fetchrow(LOCK_ORDER, rid, order_id)
        orders.check_open(order and order["status"], order and order["version"], expected)
        lines = await tx.conn.fetch(LIVE_LINES, rid, order_id)
        if not lines:
            raise Invalid("the order has no live lines to split", [{"path": "$", "message": "empty"}])
        total = sum(item["line_total_minor"] for item in lines)
        if order["paid_checks"]:  # the rest, evenly, beside the paid checks (which stay)
            made = _the_rest(await tx.conn.fetchrow(orders.PAID_CHECKS, rid, order_id), total, body)
        elif isinstance(body, ByItems):
            made = _by_items(lines, body)
        elif isinstance(body, BySeats):
            made = _by_seats(lines)
        elif body.count < 2:
            raise Invalid("a split makes two checks or more", [{"path": "$.count",
                                                                "message": "at least 2"}])
        else:
            made = _evenly(total, body.count)
        for check in made:
            check["subtotal_minor"] = sum(line["amount_minor"] for line in check["lines"])
        await tx.conn.execute(orders.DROP_OPEN_CHECKS, rid, order_id)
        await tx.conn.execute(INSERT_CHECKS, rid, order_id, body.__struct_config__.tag, made)
        raw = await checks_json(tx.conn, rid, order_id)
        tx.emit(rid, "orders", "order.split", {"order_id": order_id, "checks": raw})
    return raw, tx.last_seq[rid]


def _the_rest(paid: asyncpg.Record, total: int, body: SplitIn) -> list[dict[str, Any]]:
    """Checks for what is still due once some checks are paid (lines added or voided since):
    evenly only, since the paid checks already cover some of the lines."""
    if not isinstance(body, Evenly):
        raise Conflict("a check of this order is paid: split the rest evenly, or close the order "
                       "with one payment of the rest", code="checks_paid")
    rest = total - paid["minor"]
    if rest <= 0:
        raise Conflict("the paid checks cover the order; close it",
                       [{"total_minor": total, "paid_minor": paid["minor"]}])
    numbers = [check["number"] for check in paid["checks"]]
    return _evenly(rest, body.count, max(numbers) + 1, "the rest")


async def pay(pool: asyncpg.Pool, rid: int, order_id: int, check_id: int, body: CheckPaymentIn,
              expected: int | None) -> tuple[msgspec.Raw, int]:
    """Pay one check; paying the last open one closes the order with every check's payment."""
    async with events.write(pool) as tx:
        order = await tx.conn.fetchrow(LOCK_ORDER, rid, order_id)
        orders.check_open(order and order["status"], order and order["version"], None)
        check = await tx.conn.fetchrow(LOCK_CHECK, rid, order_id, check_id)
        if check is None:
            raise NotFound("no such check on this order")
        if expected is not None and check["version"] != expected:
            raise Stale(f"the check changed (now version {check['version']}); reload and retry",
                        [{"version": check["version"]}])
        if check["status"] == "paid":
            raise Conflict("this check is already paid")
        state = await tx.conn.fetchrow(SPLIT_STATE, rid, order_id)
        if state["split_minor"] != state["total_minor"]:
            raise Conflict("the order changed since it was split: split it again",
                           [{"total_minor": state["total_minor"],
                             "split_minor": state["split_minor"]}])
        subtotal = check["subtotal_minor"]
        amount = subtotal if body.amount_minor is None else body.amount_minor
        if amount < subtotal:
            raise Invalid(f"the payment ({amount}) is less than the check ({subtotal})",
                          [{"path": "$.amount_minor", "subtotal_minor": subtotal}])
        payment = {**msgspec.structs.asdict(body), "amount_minor": amount, "total_minor": subtotal}
        await tx.conn.execute(PAY_CHECK, rid, order_id, check_id, payment)
        if state["open"] == 1:
            closed = await _close(tx, rid, order_id, state["total_minor"])
        raw = await checks_json(tx.conn, rid, order_id)
        tx.emit(rid, "orders", "check.paid", {"order_id": order_id, "check_id": check_id,
                                              "checks": raw})
        if state["open"] == 1:
            tx.emit(rid, "orders", "order.closed", {"order": closed})
    return raw, tx.last_seq[rid]


async def _close(tx: events.Write, rid: int, order_id: int, total: int) -> msgspec.Raw:
    """The order closes as orders.close does, its payment the checks' payments together."""
    unfired = await tx.conn.fetchval(orders.UNFIRED, rid, order_id)
    if unfired:
        raise Conflict("fire or void the held items before the last check closes the order",
                       [{"item_ids": unfired}])
    paid = await tx.conn.fetchrow(PAYMENTS, rid, order_id)
    text = await tx.conn.fetchval(orders.CLOSE_ORDER, rid, order_id, {
        "method": "split", "checks": paid["checks"], "amount_minor": paid["amount_minor"],
        "tip_minor": paid["tip_minor"], "total_minor": total})
    return msgspec.Raw(text.encode())
