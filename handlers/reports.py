"""Reports: the restaurant's days in numbers, as JSON or as CSV for a spreadsheet."""
from __future__ import annotations

import csv
import io
from datetime import date

from aiohttp import hdrs, web

from server.auth import MANAGERS, requires
from server.cache import min_seq
from server.errors import ApiError
from server.http import json_response, query_date, seq_headers
from server.keys import CONFIG, READS, RESTAURANT_ID
from server.openapi import Query, documented
from store import reports

routes = web.RouteTableDef()
CSV_COLUMNS = ("date", "orders", "covers", "gross_minor", "void_minor", "average_check_minor",
               "turns", "average_turn_minutes", "tickets", "ticket_p50_seconds",
               "ticket_p90_seconds", "late_tickets", "waitlist_seated", "quoted_minutes",
               "waited_minutes", "waited_past_quote", "reservations", "no_shows", "no_show_rate")
HOUR_COLUMNS = ("starts_at", "local_time", "orders", "covers")


def _span(request: web.Request) -> tuple[date, date]:
    first = query_date(request, "from", required=True)
    last = query_date(request, "to", required=True)
    assert first is not None and last is not None
    if last < first or (last - first).days >= reports.MOST_DAYS:
        raise ApiError(400, "invalid_query",
                       f"to must be on or after from, and the span at most {reports.MOST_DAYS} days "
                       "(both ends counted)",
                       [{"path": "query.to", "message": "out of range"}])
    return first, last


def _csv(rows: list, columns: tuple[str, ...]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        values = (getattr(row, column) for column in columns)
        writer.writerow([v.isoformat() if hasattr(v, "isoformat") else v for v in values])
    return out.getvalue().encode()


def _answer(request: web.Request, report: reports.Daily | reports.Hourly, seq: int,
            rows: list, columns: tuple[str, ...], name: str) -> web.Response:
    """The report as JSON, or its rows as a CSV attachment when the client asks for CSV."""
    if "text/csv" not in request.headers.get(hdrs.ACCEPT, ""):
        return json_response(report, headers=seq_headers(seq))
    return web.Response(body=_csv(rows, columns), content_type="text/csv", charset="utf-8",
                        headers={**seq_headers(seq),
                                 hdrs.CONTENT_DISPOSITION: f'attachment; filename="{name}"'})


@routes.get("/api/v1/restaurants/{rid}/reports/daily")
@requires(MANAGERS, scope="read")
@documented(returns=reports.Daily,
            query=(Query("from", date, description="the first local day (YYYY-MM-DD)"),
                   Query("to", date, description="the last local day; the span is at most 366 days")))
async def daily(request: web.Request) -> web.Response:
    """Each of the restaurant's days: orders, covers, sales (by category) and voids, average
    check, table turns (per table and per party size), ticket times per station and late
    tickets, waitlist quoted vs actual wait, reservations and no-shows; CSV (one row a day,
    the day-level figures) with `Accept: text/csv`. Read from the daily rollups."""
    first, last = _span(request)
    rid, kept_days = request[RESTAURANT_ID], request.app[CONFIG].order_retention_days
    report, seq = await request.app[READS].run(
        lambda pool: reports.daily(pool, rid, first, last, kept_days), min_seq(request))
    return _answer(request, report, seq, report.days, CSV_COLUMNS,
                   f"daily-{first.isoformat()}-{last.isoformat()}.csv")


@routes.get("/api/v1/restaurants/{rid}/reports/hourly")
@requires(MANAGERS, scope="read")
@documented(returns=reports.Hourly,
            query=(Query("date", date, description="the restaurant's local day (YYYY-MM-DD)"),))
async def hourly(request: web.Request) -> web.Response:
    """Orders taken and covers seated in each hour of the restaurant's day; CSV with
    `Accept: text/csv`."""
    day = query_date(request, "date", required=True)
    assert day is not None
    rid = request[RESTAURANT_ID]
    report, seq = await request.app[READS].run(lambda pool: reports.hourly(pool, rid, day),
                                               min_seq(request))
    return _answer(request, report, seq, report.hours, HOUR_COLUMNS,
                   f"hourly-{day.isoformat()}.csv")
