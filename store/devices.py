"""Devices: iPads and screens registered by a manager, each with its own long-lived token."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import msgspec

from store import events
from store.credentials import DEVICE_PREFIX, new_token, token_hash
from store.errors import NotFound
from store.pages import Page, fetch_page, paged

DeviceRole = Literal["manager", "host", "server", "kitchen"]


class DeviceIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    kind: Literal["ipad", "screen", "other"]
    role: DeviceRole


class Device(msgspec.Struct, frozen=True):
    id: int
    name: str
    kind: str
    role: str
    created_at: datetime
    last_seen_at: datetime | None
    last_ack_seq: int
    revoked_at: datetime | None


class RegisteredDevice(msgspec.Struct, frozen=True):
    device: Device
    token: str  # shown once


COLUMNS = "id, name, kind, role, created_at, last_seen_at, last_ack_seq, revoked_at"

LIST = paged("""
SELECT json_build_object('id', d.id, 'name', d.name, 'kind', d.kind, 'role', d.role,
                         'created_at', d.created_at, 'last_seen_at', d.last_seen_at,
                         'last_ack_seq', d.last_ack_seq, 'revoked_at', d.revoked_at) AS j,
       json_build_array(d.id) AS cursor, row_number() OVER (ORDER BY d.id) AS n
FROM devices d WHERE d.restaurant_id = $1 AND d.id > $3
ORDER BY d.id LIMIT $2 + 1""")

INSERT = f"""
INSERT INTO devices (restaurant_id, name, kind, role, token_hash, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {COLUMNS}
"""

REVOKE = f"""
UPDATE devices SET revoked_at = coalesce(revoked_at, now())
WHERE restaurant_id = $1 AND id = $2
RETURNING {COLUMNS}
"""


async def list_devices(pool: asyncpg.Pool, restaurant_id: int, limit: int,
                       after: int) -> tuple[Page, int]:
    return await fetch_page(pool, LIST, restaurant_id, limit, after)


async def register(pool: asyncpg.Pool, restaurant_id: int, body: DeviceIn,
                   created_by: int | None) -> tuple[RegisteredDevice, int]:
    token = new_token(DEVICE_PREFIX)
    async with events.write(pool) as tx:
        row = await tx.conn.fetchrow(INSERT, restaurant_id, body.name, body.kind, body.role,
                                     token_hash(token), created_by)
        tx.emit(restaurant_id, "manager", "device.registered",
                {"device_id": row["id"], "name": body.name, "kind": body.kind, "role": body.role})
    return RegisteredDevice(device=Device(**row), token=token), tx.last_seq[restaurant_id]


async def revoke(pool: asyncpg.Pool, restaurant_id: int, device_id: int) -> tuple[Device, int]:
    async with events.write(pool) as tx:
        row = await tx.conn.fetchrow(REVOKE, restaurant_id, device_id)
        if row is None:
            raise NotFound("no such device")
        tx.emit(restaurant_id, "manager", "device.revoked", {"device_id": device_id})
    return Device(**row), tx.last_seq[restaurant_id]


# Receipts and presence of every connected device, in one statement per flush.
RECORD_PRESENCE = """
UPDATE devices d SET last_seen_at = now(), last_ack_seq = greatest(d.last_ack_seq, v.seq)
FROM unnest($1::bigint[], $2::bigint[]) AS v(id, seq)
WHERE d.id = v.id"""


async def record_presence(pool: asyncpg.Pool, device_ids: list[int], acked: list[int]) -> None:
    await pool.execute(RECORD_PRESENCE, device_ids, acked)
