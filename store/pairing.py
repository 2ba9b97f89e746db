"""Pairing a screen: a browser shows a short code, a manager claims it, the browser collects a device.

The browser holds a random secret (in a cookie); only its hash is stored. The manager's claim
creates the device with a token nobody sees; collecting replaces that token with a fresh one,
hands it to the browser, and forgets the pairing, all in one transaction.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Annotated, Literal

import asyncpg
import msgspec

from store import devices, events
from store.credentials import DEVICE_PREFIX, new_token, token_hash
from store.errors import Conflict, Invalid, NotFound

CODE_ALPHABET = "ACDEFHJKMNPRTUVWXY34679"  # no 0/O, 1/I/L, 2/Z, 5/S, 8/B: read across a room
CODE_LENGTH = 6
LIFETIME = timedelta(minutes=10)

Screen = Literal["kitchen", "expo", "floor", "manager"]
SCREEN_ROLE: dict[str, devices.DeviceRole] = {
    "kitchen": "kitchen", "expo": "server", "floor": "host", "manager": "manager"}


class PairIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=20)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    screen: Screen
    station: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,30}$")] | None = None
    expected: bool = False  # must be up during service (alerts when dark)


class Paired(msgspec.Struct, frozen=True):
    device: devices.Device
    screen: str  # the path the paired browser opens


class Waiting(msgspec.Struct, frozen=True):
    code: str
    expires_at: datetime


def normalize(code: str) -> str:
    """What staff type: any case, with or without the dash or spaces."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def display(code: str) -> str:
    return f"{code[:3]}-{code[3:]}"


START = """
WITH gone AS (DELETE FROM pairings WHERE expires_at < now() - interval '1 hour')
INSERT INTO pairings (code, secret_hash, address, expires_at)
VALUES ($1, $2, $3, now() + $4::interval)
ON CONFLICT (code) DO NOTHING
RETURNING expires_at"""

WAITING = """
SELECT code, expires_at FROM pairings
WHERE secret_hash = $1 AND expires_at > now() AND device_id IS NULL"""

OPEN_FROM_ADDRESS = """
SELECT count(*) FROM pairings WHERE address = $1 AND expires_at > now() AND device_id IS NULL"""

FOR_CLAIM = """
SELECT id, device_id, expires_at > now() AS live FROM pairings WHERE code = $1 FOR UPDATE"""

CLAIM = """
UPDATE pairings SET restaurant_id = $2, device_id = $3, screen = $4, expires_at = now() + $5::interval
WHERE id = $1"""

STATIONS = "SELECT EXISTS (SELECT 1 FROM menu_items WHERE restaurant_id = $1 AND station = $2)"

FOR_COLLECT = """
SELECT id, restaurant_id, device_id, screen, expires_at > now() AS live FROM pairings
WHERE secret_hash = $1 FOR UPDATE"""

HAND_OVER = """
UPDATE devices SET token_hash = $3 WHERE restaurant_id = $1 AND id = $2 AND revoked_at IS NULL
RETURNING id"""

FORGET = "DELETE FROM pairings WHERE id = $1"


async def waiting_from(pool: asyncpg.Pool, address: str) -> int:
    """How many screens at this address are showing a code nobody has claimed yet."""
    return await pool.fetchval(OPEN_FROM_ADDRESS, address)


async def start(pool: asyncpg.Pool, address: str) -> tuple[str, str, datetime]:
    """A new code for a browser: (code, the browser's secret, expiry)."""
    secret = secrets.token_urlsafe(32)
    for _ in range(10):  # a clash among the few live codes is rare; draw again
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        expires_at = await pool.fetchval(START, code, token_hash(secret), address, LIFETIME)
        if expires_at is not None:
            return code, secret, expires_at
    raise Conflict("no pairing code is free right now; try again")


async def waiting(pool: asyncpg.Pool, secret: str) -> Waiting | None:
    """The browser's live, unclaimed pairing (to show its code again after a reload)."""
    row = await pool.fetchrow(WAITING, token_hash(secret))
    return Waiting(code=row["code"], expires_at=row["expires_at"]) if row else None


def screen_path(slug: str, body: PairIn) -> str:
    if body.screen == "kitchen" and body.station:
        return f"/r/{slug}/kitchen?station={body.station}"
    if body.screen == "expo":
        return f"/r/{slug}/kitchen?station=expo"
    return f"/r/{slug}/{body.screen}"


async def claim(pool: asyncpg.Pool, restaurant_id: int, slug: str, body: PairIn,
                created_by: int | None) -> tuple[msgspec.Raw, str, int]:
    """Make the waiting browser with this code a device of the restaurant: (device, path, seq)."""
    if body.station is not None and body.screen != "kitchen":
        raise Invalid("only a kitchen screen has a station", [{"field": "station"}])
    code = normalize(body.code)
    path = screen_path(slug, body)
    async with events.write(pool) as tx:
        if body.station is not None and not await tx.conn.fetchval(STATIONS, restaurant_id,
                                                                   body.station):
            raise Invalid(f"no menu item is cooked at a station named {body.station!r}",
                          [{"field": "station"}])
        row = await tx.conn.fetchrow(FOR_CLAIM, code)
        if row is None or not row["live"]:
            raise NotFound(f"no screen is showing the code {body.code!r}; codes last ten minutes, "
                           "so open /pair on the screen again")
        if row["device_id"] is not None:
            raise Conflict("this code has already paired a screen")
        device = devices.DeviceIn(name=body.name, kind="screen", role=SCREEN_ROLE[body.screen])
        device_id, _ = await devices.create(tx, restaurant_id, device, created_by, body.expected)
        await tx.conn.execute(CLAIM, row["id"], restaurant_id, device_id, path, LIFETIME)
        raw = await devices.device_json(tx.conn, restaurant_id, device_id)
    return raw, path, tx.last_seq[restaurant_id]


async def collect(pool: asyncpg.Pool, secret: str) -> tuple[str, str | None, str | None]:
    """("waiting" | "paired" | "gone", the device token once paired, the path to open)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(FOR_COLLECT, token_hash(secret))
        if row is None or not row["live"]:
            return "gone", None, None
        if row["device_id"] is None:
            return "waiting", None, None
        token = new_token(DEVICE_PREFIX)
        handed = await conn.fetchval(HAND_OVER, row["restaurant_id"], row["device_id"],
                                     token_hash(token))
        await conn.execute(FORGET, row["id"])
        if handed is None:  # revoked (or its restaurant gone) between claim and collect
            return "gone", None, None
        return "paired", token, row["screen"]
