"""How long a party will wait: the floor as it is now, the bookings due, and this restaurant's past.

Each table that fits frees after what is left of its party's stay: the median turn (seat to
free) of this restaurant's parties of that size over the last four weeks (60 minutes with fewer
than ten such turns) minus the time its party has sat. A table paying has only the median
paying-to-free time left, a table whose last course has gone to the kitchen at most a quarter of
a turn, a table being cleared a few minutes; a kitchen slower than usual stretches the rest. A
table booked to start before the party would have finished is not offered until that booking
ends. The k-th party in line (parties of similar size waiting, bookings without a table due
within the hour) gets the k-th table to free, and every table turns again for those beyond.
"""
from __future__ import annotations

from typing import Literal

import asyncpg
import msgspec

from store.errors import Invalid

DEFAULT_TURN_MINUTES = 60
DEFAULT_PAYING_MINUTES = 5  # paying to free, until this restaurant has history
CLEARING_MINUTES = 5  # a dirty table's party has gone; bussing it takes a few minutes
LEAST_LEFT_MINUTES = 5  # a party past its usual turn still takes a little while
LAST_COURSE_SHARE = 0.25  # of a turn, at most, left once the last course is fired
LEARN_DAYS = 28
LEARN_LEAST = 10  # turns (or tickets) before this restaurant's own history is trusted
KITCHEN_MOST = 2.0  # a slow kitchen stretches a stay by at most this factor
DUE_WINDOW_MINUTES = 60  # bookings without a table due this soon count as parties ahead
LONGEST_STAY_HOURS = 12  # a booking that started longer ago than this is over (keeps reads short)


class TableEstimate(msgspec.Struct, frozen=True):
    table_id: int
    label: str
    status: str
    seated_minutes: int | None  # how long its party has sat (None: nobody there)
    frees_in: int  # minutes until this party could sit there
    reason: str  # in the host's words: "paying", "last course fired", "booked 19:30–21:00" …


class Estimate(msgspec.Struct, frozen=True):
    size: int
    minutes: int
    parties_ahead: int  # waiting parties of similar size
    reservations_due: int  # bookings without a table, of similar size, due within the hour
    fitting_tables: int
    free_tables: int
    turn_minutes: int  # this party's expected stay: what each later round adds
    basis: Literal["recent_turns", "default"]
    turns_learned: int  # finished turns of this size band behind turn_minutes
    paying_minutes: int  # expected paying to free
    kitchen_factor: float  # ≥ 1: how much slower than usual the open tickets are
    tables: list[TableEstimate]  # every fitting table, soonest first


# Everything an estimate needs, in one read. Size bands pair sizes (1–2, 3–4, 5–6 …).
ESTIMATE = f"""
WITH fitting AS (
    SELECT t.id, t.label, t.status, tt.seated_at, tt.paying_at,
           coalesce(tt.party_size, t.seats) AS party_size
    FROM dining_tables t
    LEFT JOIN table_turns tt ON tt.restaurant_id = t.restaurant_id AND tt.id = t.turn_id
    WHERE t.restaurant_id = $1 AND t.seats >= $2 AND t.status <> 'blocked'
), history AS (
    SELECT (coalesce(tt.party_size, 2) + 1) / 2 AS band,
           extract(epoch FROM tt.freed_at - tt.seated_at) / 60 AS turn,
           extract(epoch FROM tt.freed_at - tt.paying_at) / 60 AS paying
    FROM table_turns tt
    WHERE tt.restaurant_id = $1 AND tt.freed_at IS NOT NULL
      AND tt.seated_at > now() - interval '{LEARN_DAYS} days'
), bands AS (
    SELECT band, count(*) AS turns, percentile_cont(0.5) WITHIN GROUP (ORDER BY turn) AS minutes
    FROM history GROUP BY band
), open_tickets AS (
    SELECT count(*) AS open,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM now() - k.fired_at))
               / 60 AS open_minutes
    FROM tickets k WHERE k.restaurant_id = $1 AND k.status <> 'bumped'
), bumped_tickets AS (
    SELECT count(*) AS bumped,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM k.bumped_at - k.fired_at))
               / 60 AS usual_minutes
    FROM tickets k WHERE k.restaurant_id = $1 AND k.status = 'bumped'
      AND k.bumped_at > now() - interval '{LEARN_DAYS} days'
)
SELECT
    coalesce((SELECT json_agg(json_build_array(band, turns, minutes)) FROM bands), '[]') AS bands,
    (SELECT json_build_array(count(paying), percentile_cont(0.5) WITHIN GROUP (ORDER BY paying))
     FROM history WHERE paying IS NOT NULL) AS paying,
    (SELECT json_build_array(open, open_minutes, bumped, usual_minutes)
     FROM open_tickets, bumped_tickets) AS kitchen,
    (SELECT count(*) FROM waitlist_parties w WHERE w.restaurant_id = $1
       AND w.status IN ('waiting', 'notified') AND w.size BETWEEN $2 - 2 AND $2 + 2) AS ahead,
    (SELECT count(*) FROM reservations r WHERE r.restaurant_id = $1 AND r.table_id IS NULL
       AND r.status IN ('booked', 'confirmed') AND r.size BETWEEN $2 - 2 AND $2 + 2
       AND r.starts_at < now() + interval '{DUE_WINDOW_MINUTES} minutes'
       AND r.starts_at > now() - interval '{LONGEST_STAY_HOURS} hours' AND r.ends_at > now()) AS due,
    coalesce((SELECT json_agg(json_build_object(
        'id', f.id, 'label', f.label, 'status', f.status, 'party_size', f.party_size,
        'seated', extract(epoch FROM now() - f.seated_at) / 60,
        'paying', extract(epoch FROM now() - f.paying_at) / 60,
        'last_course', EXISTS (
            SELECT 1 FROM orders o WHERE o.restaurant_id = $1 AND o.table_id = f.id
              AND o.status = 'open' AND o.fired_course >= 2
              AND o.fired_course >= (SELECT max(i.course) FROM order_items i
                                     WHERE i.restaurant_id = $1 AND i.order_id = o.id
                                       AND i.status <> 'void')),
        'booked', (SELECT coalesce(json_agg(json_build_array(
                          extract(epoch FROM r.starts_at - now()) / 60,
                          extract(epoch FROM r.ends_at - now()) / 60) ORDER BY r.starts_at), '[]')
                   FROM reservations r WHERE r.restaurant_id = $1 AND r.table_id = f.id
                     AND r.status IN ('booked', 'confirmed') AND r.ends_at > now()
                     AND r.starts_at > now() - interval '{LONGEST_STAY_HOURS} hours'
                     AND r.starts_at < now() + interval '1 day')) ORDER BY f.id)
     FROM fitting f), '[]') AS tables"""


class _Table(msgspec.Struct, frozen=True):
    id: int
    label: str
    status: str
    party_size: int
    seated: float | None
    paying: float | None
    last_course: bool
    booked: list[tuple[float, float]]  # minutes from now to each booking's start and end


class _Model(msgspec.Struct, frozen=True):
    """The learned parts: turn length by size band, paying time, and the kitchen's pace."""
    bands: dict[int, tuple[int, float]]  # band → (turns, median minutes)
    paying_minutes: float
    kitchen_factor: float

    def turn(self, size: int) -> tuple[float, int]:
        """Expected stay of a party of `size` and the turns it was learned from (0: default)."""
        turns, minutes = self.bands.get((size + 1) // 2, (0, 0.0))
        return (minutes, turns) if turns >= LEARN_LEAST else (float(DEFAULT_TURN_MINUTES), 0)


def _model(row: asyncpg.Record) -> _Model:
    bands = {int(band): (int(turns), float(minutes))
             for band, turns, minutes in row["bands"]}
    paid_turns, paid = row["paying"]
    open_tickets, open_minutes, bumped, usual = row["kitchen"]
    factor = 1.0
    if open_tickets and bumped >= LEARN_LEAST and usual and open_minutes:
        factor = min(max(open_minutes / usual, 1.0), KITCHEN_MOST)
    paying = float(paid) if paid_turns >= LEARN_LEAST and paid is not None else DEFAULT_PAYING_MINUTES
    return _Model(bands=bands, paying_minutes=paying, kitchen_factor=round(factor, 2))


def _left(table: _Table, model: _Model) -> tuple[float, str]:
    """Minutes until this table's party is gone, and why."""
    if table.status == "free":
        return 0.0, "free"
    if table.status == "dirty":
        return CLEARING_MINUTES, "being cleared"
    if table.status == "paying":
        return max(model.paying_minutes - (table.paying or 0.0), 1.0), "paying"
    turn, _ = model.turn(table.party_size)
    left = max(turn - (table.seated or 0.0), LEAST_LEFT_MINUTES)
    if table.last_course:
        return min(left, max(turn * LAST_COURSE_SHARE, 1.0)), "last course fired"
    if model.kitchen_factor > 1:
        return left * model.kitchen_factor, f"{table.status.replace('_', ' ')}, kitchen slow"
    return left, table.status.replace("_", " ")


def _offered(frees_in: float, stay: float, booked: list[tuple[float, float]],
             reason: str) -> tuple[float, str]:
    """When the table can take this party: not before a booking that would start mid-stay ends."""
    for starts, ends in booked:
        if starts < frees_in + stay and ends > frees_in:
            frees_in = ends
            reason = f"held for a booking in {round(starts)} min" if starts > 0 else "held for a booking now"
    return frees_in, reason


async def estimate(pool: asyncpg.Pool, rid: int, size: int) -> Estimate:
    """Minutes until a party of `size` is likely seated, with the parts that made the answer."""
    row = await pool.fetchrow(ESTIMATE, rid, size)
    fitting = msgspec.convert(row["tables"], list[_Table])
    if not fitting:
        raise Invalid(f"no table seats a party of {size}",
                      [{"path": "query.size", "message": "larger than every table"}])
    model = _model(row)
    stay, learned = model.turn(size)
    soonest: list[tuple[float, TableEstimate]] = []
    for table in fitting:
        left, reason = _left(table, model)
        frees_in, reason = _offered(left, stay, table.booked, reason)
        seated = None if table.seated is None or table.status == "free" else int(table.seated)
        soonest.append((frees_in, TableEstimate(
            table_id=table.id, label=table.label, status=table.status, seated_minutes=seated,
            frees_in=round(frees_in), reason=reason)))
    soonest.sort(key=lambda pair: (pair[0], pair[1].table_id))
    tables = [t for _, t in soonest]
    position = row["ahead"] + row["due"]  # 0-based place of the new party in line
    rounds, slot = divmod(position, len(tables))
    return Estimate(
        size=size, minutes=round(soonest[slot][0] + rounds * stay),
        parties_ahead=row["ahead"], reservations_due=row["due"], fitting_tables=len(tables),
        free_tables=sum(1 for t in fitting if t.status == "free"), turn_minutes=round(stay),
        basis="recent_turns" if learned else "default", turns_learned=learned,
        paying_minutes=round(model.paying_minutes), kitchen_factor=model.kitchen_factor,
        tables=tables)
