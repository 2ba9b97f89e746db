"""Restaurants: the tenant row, its settings, and its event position."""
from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg
import msgspec


class Restaurant(msgspec.Struct, frozen=True):
    id: int
    slug: str
    name: str
    timezone: str
    currency: str
    epoch: UUID
    seq: int
    created_at: datetime


GET = """
SELECT id, slug, name, timezone, currency, epoch, seq, created_at
FROM restaurants WHERE id = $1
"""


async def get(pool: asyncpg.Pool, restaurant_id: int) -> Restaurant | None:
    row = await pool.fetchrow(GET, restaurant_id)
    return None if row is None else Restaurant(**row)
