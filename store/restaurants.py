"""Restaurants: the tenant row, its settings, and its event position."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import asyncpg
import msgspec
from msgspec import UNSET, UnsetType

from store import events
from store.errors import Invalid, NotFound, Stale
from store.patches import sent

ClockTime = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Minutes = Annotated[int, msgspec.Meta(ge=1, le=720)]


class DurationRule(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Parties up to `max_size` book `minutes` by default."""
    max_size: Annotated[int, msgspec.Meta(ge=1, le=100)]
    minutes: Minutes


# Reservation pacing (store/pacing.py) ---------------------------------------------------------
Covers = Annotated[int, msgspec.Meta(ge=0, le=10_000)]  # 0: no bookings at all
Parties = Annotated[int, msgspec.Meta(ge=0, le=1_000)]


class ServicePeriod(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A named part of the day (local times; past midnight when `end` is not after `start`) with
    limits on the bookings starting in it, and optionally its own per-slot limits."""
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    start: ClockTime
    end: ClockTime
    max_covers: Covers | None = None
    max_parties: Parties | None = None
    covers_per_slot: Covers | None = None  # instead of the restaurant's pacing_covers_per_slot
    parties_per_slot: Parties | None = None

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("a service period must not start when it ends")


class KitchenBehind(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Stricter per-slot limits while more than `open_late_tickets` open tickets are past
    ticket_amber_minutes, for slots starting within `within_minutes` from now."""
    open_late_tickets: Annotated[int, msgspec.Meta(ge=0, le=1_000)]
    covers_per_slot: Covers | None = None
    parties_per_slot: Parties | None = None
    within_minutes: Annotated[int, msgspec.Meta(ge=15, le=1440)] = 180

    def __post_init__(self) -> None:
        if self.covers_per_slot is None and self.parties_per_slot is None:
            raise ValueError("kitchen_behind needs covers_per_slot or parties_per_slot")


def _minute_of(clock: str) -> int:
    return int(clock[:2]) * 60 + int(clock[3:])


def check_service_periods(settings: Settings) -> None:
    """Period names are unique and periods do not overlap (422 naming the second one)."""
    spans: list[tuple[int, int, str]] = []
    for n, period in enumerate(settings.service_periods):
        start, end = _minute_of(period.start), _minute_of(period.end)
        end += 1440 if end <= start else 0
        path = f"$.settings.service_periods[{n}]"
        for other_start, other_end, name in spans:
            if name == period.name:
                raise Invalid("service period names must be unique",
                              [{"path": path + ".name", "message": f"{name} twice"}])
            if any(start + shift < other_end and other_start < end + shift for shift in (-1440, 0, 1440)):
                raise Invalid(f"service period {period.name} overlaps {name}",
                              [{"path": path, "message": f"overlaps {name}"}])
        spans.append((start, end, period.name))
# ---------------------------------------------------------------------------------------------


# Kitchen screen (static/js/kitchen.js) --------------------------------------------------------
StationName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,30}$")]
TicketMinutes = Annotated[int, msgspec.Meta(ge=1, le=240)]


class StationThresholds(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A station's own ticket colours: amber, then red, this many minutes after firing."""
    amber_minutes: TicketMinutes
    red_minutes: TicketMinutes

    def __post_init__(self) -> None:
        if self.amber_minutes >= self.red_minutes:
            raise ValueError("amber_minutes must be less than red_minutes")
# ---------------------------------------------------------------------------------------------


class Settings(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    reservation_durations: Annotated[list[DurationRule], msgspec.Meta(min_length=1, max_length=20)] = (
        msgspec.field(default_factory=lambda: [DurationRule(2, 90), DurationRule(4, 105),
                                               DurationRule(8, 120), DurationRule(100, 150)]))
    service_start: ClockTime = "17:00"  # local time of the first bookable slot
    service_end: ClockTime = "23:00"  # local time by which bookings end (past midnight if earlier)
    slot_minutes: Annotated[int, msgspec.Meta(ge=5, le=120)] = 15
    ticket_amber_minutes: Annotated[int, msgspec.Meta(ge=1, le=240)] = 8
    ticket_red_minutes: Annotated[int, msgspec.Meta(ge=1, le=240)] = 15
    device_lag_alert: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 50  # events unacknowledged
    # Request limits of the restaurant's devices, API keys and sign-ins; what each plan allows
    # is the operator's setting (rate_limit_*; busy = rate_limit_busy_factor × standard).
    plan: Literal["standard", "busy"] = "standard"
    # Kitchen screen: tickets bumped this long ago can still be recalled; per-station colours
    # (stations not named use ticket_amber_minutes / ticket_red_minutes).
    recall_minutes: Annotated[int, msgspec.Meta(ge=1, le=120)] = 10
    station_thresholds: Annotated[dict[StationName, StationThresholds], msgspec.Meta(max_length=50)] = (
        msgspec.field(default_factory=dict))
    # Reservation pacing (store/pacing.py): limits per slot of the local clock, per service
    # period, and stricter per-slot limits while the kitchen is behind; null means no limit.
    pacing_slot_minutes: Literal[5, 10, 15, 20, 30, 60] = 15
    pacing_covers_per_slot: Covers | None = None
    pacing_parties_per_slot: Parties | None = None
    service_periods: Annotated[list[ServicePeriod], msgspec.Meta(max_length=12)] = (
        msgspec.field(default_factory=list))
    kitchen_behind: KitchenBehind | None = None
    # "Your table is ready" (server/notify.py): the notifier, and its words with {name},
    # {restaurant} and {size} filled in. "webhook": a `guest.notify` event to the webhooks.
    guest_notifier: Literal["webhook", "sms:log"] = "webhook"
    guest_ready_message: Annotated[str, msgspec.Meta(min_length=1, max_length=300)] = (
        "{name}, your table at {restaurant} is ready.")

    def duration_for(self, size: int) -> int:
        for rule in sorted(self.reservation_durations, key=lambda r: r.max_size):
            if size <= rule.max_size:
                return rule.minutes
        return max(r.minutes for r in self.reservation_durations)


class Restaurant(msgspec.Struct, frozen=True):
    id: int
    slug: str
    name: str
    timezone: str
    currency: str
    epoch: UUID
    seq: int
    settings: Settings
    version: int
    created_at: datetime


class RestaurantPatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | UnsetType = UNSET
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | UnsetType = UNSET
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] | UnsetType = UNSET
    settings: Settings | UnsetType = UNSET


GET = """
SELECT id, slug, name, timezone, currency, epoch, seq, settings, version, created_at
FROM restaurants WHERE id = $1
"""

KNOWN_ZONE = "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)"

PATCH = """
UPDATE restaurants SET name = coalesce($2, name), timezone = coalesce($3, timezone),
    currency = coalesce($4, currency), settings = coalesce($5, settings), version = version + 1
WHERE id = $1 AND ($6::int IS NULL OR version = $6)
RETURNING id"""

SETTINGS = "SELECT settings, timezone, seq FROM restaurants WHERE id = $1"

ALL_IDS = "SELECT id FROM restaurants ORDER BY id"

PLANS = """
SELECT id, coalesce(settings->>'plan', 'standard') AS plan FROM restaurants
WHERE $1::bigint[] IS NULL OR id = ANY($1::bigint[])"""


class SettingsOut(msgspec.Struct, frozen=True):
    """What every device of the restaurant reads at start: name, zone, currency, settings."""
    name: str
    timezone: str
    currency: str
    settings: Settings
    version: int


def _restaurant(row: asyncpg.Record) -> Restaurant:
    return msgspec.convert({**row, "settings": row["settings"]}, Restaurant)


async def get(pool: asyncpg.Pool, restaurant_id: int) -> Restaurant | None:
    row = await pool.fetchrow(GET, restaurant_id)
    return None if row is None else _restaurant(row)


async def settings_of(conn: asyncpg.Connection | asyncpg.Pool, restaurant_id: int) -> tuple[Settings, str]:
    """The restaurant's settings (defaults filled in) and time zone."""
    settings, zone, _ = await settings_at(conn, restaurant_id)
    return settings, zone


async def settings_at(conn: asyncpg.Connection | asyncpg.Pool,
                      restaurant_id: int) -> tuple[Settings, str, int]:
    """Settings, time zone, and the seq they were read at (what follows reads is at least as new)."""
    row = await conn.fetchrow(SETTINGS, restaurant_id)
    return msgspec.convert(row["settings"], Settings), row["timezone"], row["seq"]


async def all_ids(pool: asyncpg.Pool) -> list[int]:
    return [row["id"] for row in await pool.fetch(ALL_IDS)]


async def plans(pool: asyncpg.Pool, ids: list[int] | None = None) -> dict[int, str]:
    """The plan in each restaurant's settings (of those ids, or of every restaurant)."""
    return {row["id"]: row["plan"] for row in await pool.fetch(PLANS, ids)}


async def patch(pool: asyncpg.Pool, restaurant_id: int, body: RestaurantPatch,
                expected: int | None) -> tuple[Restaurant, int]:
    async with events.write(pool) as tx:
        if body.timezone is not UNSET and not await tx.conn.fetchval(KNOWN_ZONE, body.timezone):
            raise Invalid("unknown time zone", [{"path": "$.timezone",
                                                 "message": "use an IANA name like Europe/Paris"}])
        if body.settings is not UNSET:
            check_service_periods(body.settings)
        settings = None if body.settings is UNSET else msgspec.to_builtins(body.settings)
        if await tx.conn.fetchval(PATCH, restaurant_id, sent(body.name), sent(body.timezone),
                                  sent(body.currency), settings, expected) is None:
            raise Stale("the restaurant's settings changed; reload and retry")
        row = await tx.conn.fetchrow(GET, restaurant_id)
        if row is None:
            raise NotFound("no such restaurant")
        restaurant = _restaurant(row)
        tx.emit(restaurant_id, "manager", "restaurant.updated",
                {"restaurant": msgspec.to_builtins(restaurant)})
    return restaurant, tx.last_seq[restaurant_id]


BY_SLUG = "SELECT id FROM restaurants WHERE slug = $1"
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")  # the table's CHECK


async def id_of(pool: asyncpg.Pool, slug: str) -> int | None:
    if not SLUG.match(slug):  # not one (e.g. a NUL or a surrogate, which PostgreSQL refuses)
        return None
    return await pool.fetchval(BY_SLUG, slug)
