"""Devices: iPads and screens registered by a manager, each with its own long-lived token."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import msgspec

from store import events
from store.credentials import DEVICE_PREFIX, new_token, token_hash
from store.errors import NotFound

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

LIST = f"SELECT {COLUMNS} FROM devices WHERE restaurant_id = $1 ORDER BY revoked_at NULLS FIRST, name, id"

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


async def list_devices(pool: asyncpg.Pool, restaurant_id: int) -> list[Device]:
    return [Device(**row) for row in await pool.fetch(LIST, restaurant_id)]


async def register(pool: asyncpg.Pool, restaurant_id: int, body: DeviceIn,
                   created_by: int | None) -> RegisteredDevice:
    token = new_token(DEVICE_PREFIX)
    async with events.write(pool) as tx:
        row = await tx.conn.fetchrow(INSERT, restaurant_id, body.name, body.kind, body.role,
                                     token_hash(token), created_by)
        tx.emit(restaurant_id, "manager", "device.registered",
                {"device_id": row["id"], "name": body.name, "kind": body.kind, "role": body.role})
    return RegisteredDevice(device=Device(**row), token=token)


async def revoke(pool: asyncpg.Pool, restaurant_id: int, device_id: int) -> Device:
    async with events.write(pool) as tx:
        row = await tx.conn.fetchrow(REVOKE, restaurant_id, device_id)
        if row is None:
            raise NotFound("no such device")
        tx.emit(restaurant_id, "manager", "device.revoked", {"device_id": device_id})
    return Device(**row)
