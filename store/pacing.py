"""Reservation pacing: how many covers and parties may start in one slot and in one service
period, and the stricter per-slot limit while the kitchen is behind.

Slots are `pacing_slot_minutes` of the restaurant's local clock (19:00, 19:15 …); a booking
counts in the slot and the period its start falls in. Live bookings count (booked, confirmed,
seated). Bookings of one restaurant that pace take turns on an advisory lock, so two requests
for the last covers of a slot cannot both pass.
"""
from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from store.errors import Conflict
from store.restaurants import KitchenBehind, ServicePeriod, Settings

PACING_LOCKS = 0x5041_4345  # the advisory lock class of pacing ("PACE")
LOCK = f"SELECT pg_advisory_xact_lock({PACING_LOCKS}, ($1 % 2147483647)::int)"

# Open tickets past the amber threshold, only where a kitchen_behind limit is set: one count
# over the tickets_open_all index.
KITCHEN = """
SELECT (r.settings->'kitchen_behind'->>'open_late_tickets')::int AS threshold,
       coalesce((r.settings->'kitchen_behind'->>'within_minutes')::int, $3) AS within,
       CASE WHEN r.settings->'kitchen_behind'->>'open_late_tickets' IS NULL THEN 0 ELSE (
           SELECT count(*) FROM tickets t
           WHERE t.restaurant_id = r.id AND t.status <> 'bumped'
             AND t.fired_at < now() - make_interval(
                 mins => coalesce((r.settings->>'ticket_amber_minutes')::int, $2)))
       END AS late,
       now() AS now
FROM restaurants r WHERE r.id = $1"""

# Covers and parties starting in [$2, $3) and in [$4, $5), leaving out reservation $6.
COUNTS = """
SELECT coalesce(sum(size) FILTER (WHERE starts_at >= $2 AND starts_at < $3), 0)::int AS slot_covers,
       count(*) FILTER (WHERE starts_at >= $2 AND starts_at < $3)::int AS slot_parties,
       coalesce(sum(size) FILTER (WHERE starts_at >= $4 AND starts_at < $5), 0)::int AS period_covers,
       count(*) FILTER (WHERE starts_at >= $4 AND starts_at < $5)::int AS period_parties
FROM reservations
WHERE restaurant_id = $1 AND status IN ('booked', 'confirmed', 'seated') AND id <> $6
  AND starts_at >= least($2, $4) AND starts_at < greatest($3, $5)"""

# Live bookings starting in [$2, $3): what a day's availability paces against.
BOOKED = """
SELECT starts_at, size FROM reservations
WHERE restaurant_id = $1 AND status IN ('booked', 'confirmed', 'seated')
  AND starts_at >= $2 AND starts_at < $3"""

LimitName = Literal["slot_covers", "slot_parties", "period_covers", "period_parties"]
OverrideReason = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]


class PacingOverrideIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Book past a pacing limit; the reason is recorded with who and when."""
    reason: OverrideReason


class PacingOverride(msgspec.Struct, frozen=True):
    reason: str
    by: str  # the staff member's (or device's, or key's) name
    by_user_id: int | None
    at: datetime


class KitchenState(msgspec.Struct, frozen=True):
    """Whether the stricter kitchen-behind limit is in force, and for slots starting before when."""
    behind: bool
    late_tickets: int  # open tickets past ticket_amber_minutes (0 when no kitchen_behind is set)
    threshold: int | None  # kitchen_behind.open_late_tickets: behind when late_tickets exceeds it
    stricter_until: datetime | None  # slots starting before this take the stricter limit


class Breach(msgspec.Struct, frozen=True):
    """The first limit a booking would pass: what 409 pacing_limit names."""
    limit: LimitName
    max: int
    booked: int  # covers (or parties) already starting there
    adds: int  # what this booking adds: its covers, or 1 party
    slot_starts_at: datetime
    slot_ends_at: datetime
    period: str | None
    kitchen_behind: bool  # the stricter limit is the one passed

    def message(self, zone: str) -> str:
        what = "covers" if self.limit.endswith("covers") else "parties"
        local = self.slot_starts_at.astimezone(ZoneInfo(zone)).strftime("%H:%M")
        where = f"the {self.period} period" if self.limit.startswith("period") else f"the {local} slot"
        why = " while the kitchen is behind" if self.kitchen_behind else ""
        return (f"{where} is full{why}: {self.booked} of {self.max} {what} booked, "
                f"this booking adds {self.adds}")


class PacingLimit(Conflict):
    """409 pacing_limit (a Conflict; the override is the way past)."""
    code = "pacing_limit"


class Counts(msgspec.Struct, frozen=True):
    slot_covers: int = 0
    slot_parties: int = 0
    period_covers: int = 0
    period_parties: int = 0


def paces(settings: Settings) -> bool:
    """Whether any pacing limit is set (else nothing is counted or locked)."""
    return (settings.pacing_covers_per_slot is not None or settings.pacing_parties_per_slot is not None
            or settings.kitchen_behind is not None or bool(settings.service_periods))


def _clock(clock: str) -> time:
    return time.fromisoformat(clock)


def slot_of(settings: Settings, zone: str, starts_at: datetime) -> tuple[datetime, datetime]:
    """The pacing slot of the local clock that `starts_at` falls in, as UTC instants."""
    step = settings.pacing_slot_minutes  # divides an hour, so the slot starts on the local clock
    local = starts_at.astimezone(ZoneInfo(zone))
    start = (starts_at - timedelta(minutes=local.minute % step, seconds=local.second,
                                   microseconds=local.microsecond)).astimezone(UTC)
    return start, start + timedelta(minutes=step)


def period_of(settings: Settings, zone: str,
              starts_at: datetime) -> tuple[ServicePeriod, datetime, datetime] | None:
    """The service period `starts_at` falls in, with that occurrence's start and end."""
    tz = ZoneInfo(zone)
    local = starts_at.astimezone(tz)
    for period in settings.service_periods:
        start, end = _clock(period.start), _clock(period.end)
        for day in (local.date(), local.date() - timedelta(days=1)):
            opens = datetime.combine(day, start, tz)
            closes = datetime.combine(day + timedelta(days=1) if end <= start else day, end, tz)
            if opens <= starts_at < closes:
                return period, opens, closes
    return None


def first_breach(settings: Settings, kitchen: KitchenState | None, slot: tuple[datetime, datetime],
                 period: tuple[ServicePeriod, datetime, datetime] | None, counts: Counts,
                 size: int) -> Breach | None:
    """The first limit that `size` more covers (one more party) would pass, or None."""
    covers, parties = settings.pacing_covers_per_slot, settings.pacing_parties_per_slot
    if period is not None:
        covers = period[0].covers_per_slot if period[0].covers_per_slot is not None else covers
        parties = period[0].parties_per_slot if period[0].parties_per_slot is not None else parties
    strict_covers = strict_parties = False
    behind = settings.kitchen_behind
    if (behind is not None and kitchen is not None and kitchen.behind
            and kitchen.stricter_until is not None and slot[0] < kitchen.stricter_until):
        if behind.covers_per_slot is not None and (covers is None or behind.covers_per_slot < covers):
            covers, strict_covers = behind.covers_per_slot, True
        if behind.parties_per_slot is not None and (parties is None or behind.parties_per_slot < parties):
            parties, strict_parties = behind.parties_per_slot, True
    checks: list[tuple[LimitName, int | None, int, int, bool]] = [
        ("slot_covers", covers, counts.slot_covers, size, strict_covers),
        ("slot_parties", parties, counts.slot_parties, 1, strict_parties)]
    if period is not None:
        checks += [("period_covers", period[0].max_covers, counts.period_covers, size, False),
                   ("period_parties", period[0].max_parties, counts.period_parties, 1, False)]
    for name, most, booked, adds, strict in checks:
        if most is not None and booked + adds > most:
            return Breach(limit=name, max=most, booked=booked, adds=adds, slot_starts_at=slot[0],
                          slot_ends_at=slot[1], period=period[0].name if period else None,
                          kitchen_behind=strict)
    return None


async def kitchen_state(conn: asyncpg.Connection | asyncpg.Pool, rid: int) -> KitchenState:
    """One cheap count: whether the kitchen is behind now (see KitchenBehind)."""
    amber = Settings().ticket_amber_minutes
    within = KitchenBehind(open_late_tickets=0, parties_per_slot=0).within_minutes
    row = await conn.fetchrow(KITCHEN, rid, amber, within)  # the defaults, for settings without them
    if row is None or row["threshold"] is None:
        return KitchenState(behind=False, late_tickets=0, threshold=None, stricter_until=None)
    behind = row["late"] > row["threshold"]
    return KitchenState(behind=behind, late_tickets=row["late"], threshold=row["threshold"],
                        stricter_until=row["now"] + timedelta(minutes=row["within"]) if behind else None)


async def admit(conn: asyncpg.Connection, rid: int, settings: Settings, zone: str,
                starts_at: datetime, size: int, reservation_id: int | None) -> Breach | None:
    """Inside a booking's transaction: take the restaurant's pacing turn (held to commit), then
    the first limit this booking would pass, or None."""
    if not paces(settings):
        return None
    await conn.execute(LOCK, rid)
    slot = slot_of(settings, zone, starts_at)
    period = period_of(settings, zone, starts_at)
    span = (period[1], period[2]) if period else slot
    row = await conn.fetchrow(COUNTS, rid, slot[0], slot[1], span[0], span[1], reservation_id or 0)
    kitchen = None
    behind = settings.kitchen_behind
    if behind is not None and slot[0] < datetime.now(UTC) + timedelta(minutes=behind.within_minutes):
        kitchen = await kitchen_state(conn, rid)
    return first_breach(settings, kitchen, slot, period, Counts(**dict(row)), size)


class PacedSlot(msgspec.Struct, frozen=True):
    """A slot with a table free that pacing keeps from being offered (a host may override)."""
    starts_at: datetime
    limit: LimitName
    max: int
    booked: int
    period: str | None
    kitchen_behind: bool


async def paced_out(conn: asyncpg.Connection | asyncpg.Pool, rid: int, settings: Settings, zone: str,
                    kitchen: KitchenState, starts: list[datetime],
                    size: int) -> dict[datetime, PacedSlot]:
    """Of a day's open slot starts, those a booking of `size` would be refused at, and why."""
    if not paces(settings) or not starts:
        return {}
    spans = [slot_of(settings, zone, s) for s in starts]
    periods = [period_of(settings, zone, s) for s in starts]
    low = min([s[0] for s in spans] + [p[1] for p in periods if p])
    high = max([s[1] for s in spans] + [p[2] for p in periods if p])
    booked = await conn.fetch(BOOKED, rid, low, high)
    refused: dict[datetime, PacedSlot] = {}
    for start, slot, period in zip(starts, spans, periods):
        in_slot = [r["size"] for r in booked if slot[0] <= r["starts_at"] < slot[1]]
        in_period = [r["size"] for r in booked if period and period[1] <= r["starts_at"] < period[2]]
        counts = Counts(sum(in_slot), len(in_slot), sum(in_period), len(in_period))
        breach = first_breach(settings, kitchen, slot, period, counts, size)
        if breach is not None:
            refused[start] = PacedSlot(starts_at=start, limit=breach.limit, max=breach.max,
                                       booked=breach.booked, period=breach.period,
                                       kitchen_behind=breach.kitchen_behind)
    return refused
