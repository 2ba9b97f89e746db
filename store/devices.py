"""Devices: iPads and screens registered by a manager, each with its own long-lived token."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import msgspec

from store import events
from store.credentials import DEVICE_PREFIX, new_token, token_hash
from store.errors import NotFound, Stale
from store.pages import Page, fetch_page, paged

DeviceRole = Literal["manager", "host", "server", "kitchen"]


class DeviceIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    kind: Literal["ipad", "screen", "other"]
    role: DeviceRole


class DevicePatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    expected: bool | None = None  # must be up during service hours; alerts when dark or behind


class Device(msgspec.Struct, frozen=True):
    id: int
    name: str
    kind: str
    role: str
    expected: bool
    alert: Literal["dark", "lagging"] | None
    online: bool  # seen by a server within the last ONLINE_SECONDS
    lag: int  # events the restaurant has that this device has not acknowledged
    created_at: datetime
    last_seen_at: datetime | None
    last_ack_seq: int
    revoked_at: datetime | None
    version: int


class RegisteredDevice(msgspec.Struct, frozen=True):
    device: Device
    token: str  # shown once


ONLINE_SECONDS = 30

DEVICE_JSON = f"""json_build_object(
    'id', d.id, 'name', d.name, 'kind', d.kind, 'role', d.role, 'expected', d.expected,
    'alert', d.alert,
    'online', coalesce(d.revoked_at IS NULL
                       AND d.last_seen_at > now() - interval '{ONLINE_SECONDS} seconds', false),
    'lag', greatest(r.seq - d.last_ack_seq, 0), 'created_at', d.created_at,
    'last_seen_at', d.last_seen_at, 'last_ack_seq', d.last_ack_seq, 'revoked_at', d.revoked_at,
    'version', d.version)"""

DEVICE_FROM = "devices d JOIN restaurants r ON r.id = d.restaurant_id"

LIST = paged(f"""
SELECT {DEVICE_JSON} AS j, json_build_array(d.id) AS cursor, row_number() OVER (ORDER BY d.id) AS n
FROM {DEVICE_FROM} WHERE d.restaurant_id = $1 AND d.id > $3
ORDER BY d.id LIMIT $2 + 1""")

GET = f"SELECT {DEVICE_JSON}::text FROM {DEVICE_FROM} WHERE d.restaurant_id = $1 AND d.id = $2"

INSERT = """
INSERT INTO devices (restaurant_id, name, kind, role, token_hash, created_by, expected)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id"""

REVOKE = """
UPDATE devices SET revoked_at = coalesce(revoked_at, now()), version = version + 1
WHERE restaurant_id = $1 AND id = $2
RETURNING id"""

PATCH = """
UPDATE devices SET name = coalesce($3, name), expected = coalesce($4, expected),
    alert = CASE WHEN coalesce($4, expected) THEN alert END, version = version + 1
WHERE restaurant_id = $1 AND id = $2 AND ($5::int IS NULL OR version = $5)
RETURNING id"""

VERSION = "SELECT version FROM devices WHERE restaurant_id = $1 AND id = $2"


async def device_json(conn: asyncpg.Connection, rid: int, device_id: int) -> msgspec.Raw:
    return msgspec.Raw((await conn.fetchval(GET, rid, device_id)).encode())


async def list_devices(pool: asyncpg.Pool, restaurant_id: int, limit: int,
                       after: int) -> tuple[Page, int]:
    return await fetch_page(pool, LIST, restaurant_id, limit, after)


async def create(tx: events.Write, restaurant_id: int, body: DeviceIn,
                 created_by: int | None, expected: bool = False) -> tuple[int, str]:
    """Insert a device inside the caller's write and say so on the manager channel: (id, token)."""
    token = new_token(DEVICE_PREFIX)
    device_id = await tx.conn.fetchval(INSERT, restaurant_id, body.name, body.kind, body.role,
                                       token_hash(token), created_by, expected)
    tx.emit(restaurant_id, "manager", "device.registered",
            {"device_id": device_id, "name": body.name, "kind": body.kind, "role": body.role})
    return device_id, token


async def register(pool: asyncpg.Pool, restaurant_id: int, body: DeviceIn,
                   created_by: int | None) -> tuple[RegisteredDevice, int]:
    async with events.write(pool) as tx:
        device_id, token = await create(tx, restaurant_id, body, created_by)
        raw = await device_json(tx.conn, restaurant_id, device_id)
    return RegisteredDevice(device=msgspec.json.decode(raw, type=Device), token=token), \
        tx.last_seq[restaurant_id]


async def revoke(pool: asyncpg.Pool, restaurant_id: int, device_id: int) -> tuple[msgspec.Raw, int]:
    async with events.write(pool) as tx:
        if await tx.conn.fetchval(REVOKE, restaurant_id, device_id) is None:
            raise NotFound("no such device")
        raw = await device_json(tx.conn, restaurant_id, device_id)
        tx.emit(restaurant_id, "manager", "device.revoked", {"device_id": device_id})
    return raw, tx.last_seq[restaurant_id]


async def patch(pool: asyncpg.Pool, restaurant_id: int, device_id: int, body: DevicePatch,
                expected_version: int | None) -> tuple[msgspec.Raw, int]:
    async with events.write(pool) as tx:
        if await tx.conn.fetchval(PATCH, restaurant_id, device_id, body.name, body.expected,
                                  expected_version) is None:
            version = await tx.conn.fetchval(VERSION, restaurant_id, device_id)
            if version is None:
                raise NotFound("no such device")
            raise Stale(f"the device changed (now version {version}); reload and retry",
                        [{"version": version}])
        raw = await device_json(tx.conn, restaurant_id, device_id)
        tx.emit(restaurant_id, "manager", "device.updated", {"device": raw})
    return raw, tx.last_seq[restaurant_id]


# Receipts and presence of every connected device, in one statement per flush.
RECORD_PRESENCE = """
UPDATE devices d SET last_seen_at = now(), last_ack_seq = greatest(d.last_ack_seq, v.seq)
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS v(restaurant_id, id, seq)
WHERE d.restaurant_id = v.restaurant_id AND d.id = v.id"""


async def record_presence(pool: asyncpg.Pool, seen: list[tuple[int, int]], acked: list[int]) -> None:
    """Each (restaurant id, device id) in `seen` is here now and has acknowledged its seq."""
    await pool.execute(RECORD_PRESENCE, [rid for rid, _ in seen], [d for _, d in seen], acked)


# Expected devices whose alert should change: dark (not seen lately), lagging
# (too many events unacknowledged), or back to normal.
PRESENCE = f"""
SELECT d.id, d.restaurant_id, d.name, d.alert, d.last_seen_at, greatest(r.seq - d.last_ack_seq, 0) AS lag,
       CASE WHEN d.last_seen_at IS NULL OR d.last_seen_at < now() - interval '{ONLINE_SECONDS} seconds'
                 THEN 'dark'
            WHEN r.seq - d.last_ack_seq > $2 THEN 'lagging' END AS state
FROM devices d JOIN restaurants r ON r.id = d.restaurant_id
WHERE d.restaurant_id = $1 AND d.expected AND d.revoked_at IS NULL"""

EXPECTED_RESTAURANTS = """
SELECT r.id, r.settings, r.timezone FROM restaurants r
WHERE EXISTS (SELECT 1 FROM devices d
              WHERE d.restaurant_id = r.id AND d.expected AND d.revoked_at IS NULL)"""

SET_ALERT = """
UPDATE devices SET alert = $3 WHERE restaurant_id = $1 AND id = $2 AND alert IS DISTINCT FROM $3
RETURNING id"""


async def check_presence(pool: asyncpg.Pool, restaurant_id: int, lag_alert: int) -> list[str]:
    """Raise or clear alerts of the restaurant's expected devices; the events it emitted."""
    emitted = []
    for row in await pool.fetch(PRESENCE, restaurant_id, lag_alert):
        if row["state"] == row["alert"]:
            continue
        async with events.write(pool) as tx:  # another instance may have done it: one wins
            if await tx.conn.fetchval(SET_ALERT, restaurant_id, row["id"], row["state"]) is None:
                continue
            name = f"device.{row['state'] or 'back'}"
            tx.emit(restaurant_id, "manager", name, {
                "device_id": row["id"], "name": row["name"], "lag": row["lag"],
                "last_seen_at": row["last_seen_at"].isoformat() if row["last_seen_at"] else None})
            emitted.append(name)
    return emitted
