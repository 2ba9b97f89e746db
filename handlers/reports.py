"""Reports: the restaurant's days in numbers, as JSON or as CSV for a spreadsheet."""
from __future__ import annotations

import csv
import io
from datetime import date

from aiohttp import hdrs, web

from server.auth import MANAGERS, requires
from server.errors import ApiError
from server.http import json_response, query_date, seq_headers
from server.keys import POOL, RESTAURANT_ID
from server.openapi import Query, documented
from store import reports

routes = web.RouteTableDef()
CSV_COLUMNS = ("date", "orders", "covers", "gross_minor", "void_minor", "average_check_minor")


def _span(request: web.Request) -> tuple[date, date]:
    first = query_date(request, "from", required=True)
    last = query_date(request, "to", required=True)
    assert first is not None and last is not None
    if last < first or (last - first).days >= reports.MOST_DAYS:
        raise ApiError(400, "invalid_query",
                       f"to must be on or after from, and at most {reports.MOST_DAYS} days later",
                       [{"path": "query.to", "message": "out of range"}])
    return first, last


def _wants_csv(request: web.Request) -> bool:
    return "text/csv" in request.headers.get(hdrs.ACCEPT, "")


def _csv(report: reports.Daily) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for day in report.days:
        writer.writerow([getattr(day, column) for column in CSV_COLUMNS])
    return out.getvalue().encode()


@routes.get("/api/v1/restaurants/{rid}/reports/daily")
@requires(MANAGERS, scope="read")
@documented(returns=reports.Daily,
            query=(Query("from", date, description="the first local day (YYYY-MM-DD)"),
                   Query("to", date, description="the last local day, at most 366 days on")))
async def daily(request: web.Request) -> web.Response:
    """Orders, covers, sales, voids and average check for each of the restaurant's days; CSV
    (one row a day) with `Accept: text/csv`."""
    first, last = _span(request)
    report, seq = await reports.daily(request.app[POOL], request[RESTAURANT_ID], first, last)
    if _wants_csv(request):
        name = f"daily-{first.isoformat()}-{last.isoformat()}.csv"
        return web.Response(body=_csv(report), content_type="text/csv", charset="utf-8",
                            headers={**seq_headers(seq),
                                     hdrs.CONTENT_DISPOSITION: f'attachment; filename="{name}"'})
    return json_response(report, headers=seq_headers(seq))
