"""Outgoing webhooks: endpoints a manager registers, and the deliveries of matching events.

An endpoint follows the restaurant's event log from the seq it was registered at
(`enqueued_seq`): `enqueue` copies each later event that matches its names or patterns
into a delivery, byte for byte as the feed and the socket send it, and moves the mark on,
in one statement. The worker (server/webhooks.py) then sends each endpoint's deliveries
oldest seq first under a lease, so no two processes deliver one endpoint at once.
"""
from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import msgspec
from msgspec import UNSET, UnsetType

from store import events
from store.errors import Invalid, NotFound, Stale
from store.pages import Page, encode_cursor, fetch_page, paged
from store.patches import sent

SECRET_PREFIX = "whsec_"
STATUSES = ("pending", "delivered", "failed")
FAMILIES = frozenset(name.partition(".")[0] for name in events.NAMES)  # `order` of `order.*`

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
Patterns = Annotated[list[Annotated[str, msgspec.Meta(min_length=1, max_length=100)]],
                     msgspec.Meta(min_length=1, max_length=100)]
Description = Annotated[str, msgspec.Meta(max_length=500)]


class WebhookIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    url: Url
    events: Patterns  # event names (`order.created`), `order.*`, or `*`
    description: Description = ""


class WebhookPatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    url: Url | UnsetType = UNSET
    events: Patterns | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    active: bool | UnsetType = UNSET  # paused: events meanwhile are skipped, pending ones wait


class Webhook(msgspec.Struct, frozen=True):
    id: int
    url: str
    description: str
    events: list[str]
    active: bool
    pending: int  # deliveries not yet delivered or given up
    created_at: datetime
    version: int


class WebhookWithSecret(msgspec.Struct, frozen=True):
    webhook: Webhook
    secret: str  # whsec_…: shown only when created or rotated


class Delivery(msgspec.Struct, frozen=True):
    id: int
    message_id: str  # the `webhook-id` header: the same on every attempt
    seq: int
    name: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status: int | None  # the receiver's HTTP status; None when it never answered
    last_error: str | None
    first_attempt_at: datetime | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None  # only while pending
    delivered_at: datetime | None
    created_at: datetime


def new_secret() -> str:
    """Standard Webhooks' form: the prefix, then 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def message_id(restaurant_id: int, delivery_id: int) -> str:
    return f"msg_{restaurant_id}_{delivery_id}"  # MESSAGE_ID below says the same in SQL


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` names no event (None when it does): a name, `family.*`, or `*`."""
    if pattern == "*" or pattern in events.NAMES:
        return None
    family, dot, rest = pattern.partition(".")
    if dot and rest == "*" and family in FAMILIES:
        return None
    return f"no event is called {pattern!r} (names are like order.created; order.* or * match several)"


def check_patterns(patterns: list[str]) -> list[str]:
    """The patterns without repeats, in order; 422 naming the first unknown one."""
    for n, pattern in enumerate(patterns):
        problem = pattern_problem(pattern)
        if problem is not None:
            raise Invalid(problem, [{"path": f"$.events[{n}]", "message": problem}])
    return list(dict.fromkeys(patterns))


MESSAGE_ID = "'msg_' || d.restaurant_id || '_' || d.id"

WEBHOOK_JSON = """json_build_object(
    'id', w.id, 'url', w.url, 'description', w.description, 'events', w.events,
    'active', w.active,
    'pending', (SELECT count(*) FROM webhook_deliveries d WHERE d.restaurant_id = w.restaurant_id
                AND d.endpoint_id = w.id AND d.status = 'pending'),
    'created_at', w.created_at, 'version', w.version)"""

DELIVERY_JSON = f"""json_build_object(
    'id', d.id, 'message_id', {MESSAGE_ID}, 'seq', d.seq, 'name', d.name, 'status', d.status,
    'attempts', d.attempts, 'last_status', d.last_status, 'last_error', d.last_error,
    'first_attempt_at', d.first_attempt_at, 'last_attempt_at', d.last_attempt_at,
    'next_attempt_at', CASE WHEN d.status = 'pending' THEN d.next_attempt_at END,
    'delivered_at', d.delivered_at, 'created_at', d.created_at)"""

LIST = paged(f"""
SELECT {WEBHOOK_JSON} AS j, json_build_array(w.id) AS cursor, row_number() OVER (ORDER BY w.id) AS n
FROM webhook_endpoints w WHERE w.restaurant_id = $1 AND w.id > $3
ORDER BY w.id LIMIT $2 + 1""")

GET = f"SELECT {WEBHOOK_JSON}::text FROM webhook_endpoints w WHERE w.restaurant_id = $1 AND w.id = $2"

# Registered at the restaurant's seq: only events after it are sent.
INSERT = """
INSERT INTO webhook_endpoints (restaurant_id, url, description, events, secret, enqueued_seq)
SELECT $1, $2, $3, $4, $5, r.seq FROM restaurants r WHERE r.id = $1
RETURNING id"""

PATCH = """
UPDATE webhook_endpoints SET url = coalesce($3, url), events = coalesce($4, events),
    description = coalesce($5, description), active = coalesce($6, active), version = version + 1
WHERE restaurant_id = $1 AND id = $2 AND ($7::int IS NULL OR version = $7)
RETURNING id"""

VERSION = "SELECT version FROM webhook_endpoints WHERE restaurant_id = $1 AND id = $2"

ROTATE = """
UPDATE webhook_endpoints SET secret = $3, version = version + 1
WHERE restaurant_id = $1 AND id = $2
RETURNING id"""

DELETE = "DELETE FROM webhook_endpoints WHERE restaurant_id = $1 AND id = $2 RETURNING id"

# Newest first; no row at all when the endpoint is not the restaurant's.
DELIVERIES = f"""
SELECT page.* FROM ({paged(f'''
SELECT {DELIVERY_JSON} AS j, json_build_array(d.id) AS cursor,
       row_number() OVER (ORDER BY d.id DESC) AS n
FROM webhook_deliveries d
WHERE d.restaurant_id = $1 AND d.endpoint_id = $3 AND ($4::bigint = 0 OR d.id < $4)
  AND ($5::text IS NULL OR d.status = $5)
ORDER BY d.id DESC LIMIT $2 + 1''')}) page
WHERE EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.restaurant_id = $1 AND w.id = $3)"""

# Sent again from scratch: due now, a fresh give-up clock; the last answer stays until the next.
REPLAY = f"""
UPDATE webhook_deliveries d SET status = 'pending', attempts = 0, first_attempt_at = NULL,
    next_attempt_at = now(), delivered_at = NULL
WHERE d.restaurant_id = $1 AND d.endpoint_id = $2 AND d.id = $3
RETURNING {DELIVERY_JSON}::text"""


async def _webhook(conn: asyncpg.Connection, rid: int, webhook_id: int) -> Webhook:
    return msgspec.json.decode(await conn.fetchval(GET, rid, webhook_id), type=Webhook)


def _announced(webhook: Webhook) -> dict:
    """What the manager channel hears of an endpoint (never its secret)."""
    return {"webhook_id": webhook.id, "url": webhook.url, "events": webhook.events,
            "active": webhook.active}


async def list_webhooks(pool: asyncpg.Pool, rid: int, limit: int, after: int) -> tuple[Page, int]:
    return await fetch_page(pool, LIST, rid, limit, after)


async def get(pool: asyncpg.Pool, rid: int, webhook_id: int) -> msgspec.Raw:
    raw = await pool.fetchval(GET, rid, webhook_id)
    if raw is None:
        raise NotFound("no such webhook")
    return msgspec.Raw(raw.encode())


async def create(pool: asyncpg.Pool, rid: int, body: WebhookIn) -> tuple[WebhookWithSecret, int]:
    patterns = check_patterns(body.events)
    secret = new_secret()
    async with events.write(pool) as tx:
        webhook_id = await tx.conn.fetchval(INSERT, rid, body.url, body.description, patterns, secret)
        webhook = await _webhook(tx.conn, rid, webhook_id)
        tx.emit(rid, "manager", "webhook.created", _announced(webhook))
    return WebhookWithSecret(webhook=webhook, secret=secret), tx.last_seq[rid]


async def patch(pool: asyncpg.Pool, rid: int, webhook_id: int, body: WebhookPatch,
                expected: int | None) -> tuple[Webhook, int]:
    patterns = None if body.events is UNSET else check_patterns(body.events)
    async with events.write(pool) as tx:
        if await tx.conn.fetchval(PATCH, rid, webhook_id, sent(body.url), patterns,
                                  sent(body.description), sent(body.active), expected) is None:
            version = await tx.conn.fetchval(VERSION, rid, webhook_id)
            if version is None:
                raise NotFound("no such webhook")
            raise Stale(f"the webhook changed (now version {version}); reload and retry",
                        [{"version": version}])
        webhook = await _webhook(tx.conn, rid, webhook_id)
        tx.emit(rid, "manager", "webhook.updated", _announced(webhook))
    return webhook, tx.last_seq[rid]


async def rotate_secret(pool: asyncpg.Pool, rid: int, webhook_id: int) -> tuple[WebhookWithSecret, int]:
    """A new secret, at once: deliveries from now on are signed with it."""
    secret = new_secret()
    async with events.write(pool) as tx:
        if await tx.conn.fetchval(ROTATE, rid, webhook_id, secret) is None:
            raise NotFound("no such webhook")
        webhook = await _webhook(tx.conn, rid, webhook_id)
        tx.emit(rid, "manager", "webhook.secret_rotated", {"webhook_id": webhook_id})
    return WebhookWithSecret(webhook=webhook, secret=secret), tx.last_seq[rid]


async def delete(pool: asyncpg.Pool, rid: int, webhook_id: int) -> int:
    """Remove an endpoint and its deliveries, sent or not."""
    async with events.write(pool) as tx:
        if await tx.conn.fetchval(DELETE, rid, webhook_id) is None:
            raise NotFound("no such webhook")
        tx.emit(rid, "manager", "webhook.deleted", {"webhook_id": webhook_id})
    return tx.last_seq[rid]


async def list_deliveries(pool: asyncpg.Pool, rid: int, webhook_id: int, limit: int, before: int,
                          status: str | None) -> tuple[Page, int]:
    row = await pool.fetchrow(DELIVERIES, rid, limit, webhook_id, before, status)
    if row is None:
        raise NotFound("no such webhook")
    next_cursor = encode_cursor(row["last"]) if row["more"] else None
    return Page(items=msgspec.Raw(row["items"].encode()), next=next_cursor), row["seq"]


async def replay(pool: asyncpg.Pool, rid: int, webhook_id: int, delivery_id: int) -> Delivery:
    """Send a delivery again (same message id), before the endpoint's later ones."""
    raw = await pool.fetchval(REPLAY, rid, webhook_id, delivery_id)
    if raw is None:
        raise NotFound("no such delivery")
    return msgspec.json.decode(raw, type=Delivery)
