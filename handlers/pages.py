"""Server-rendered screens: sign-in, kitchen display, host stand, manager (live through the socket),
and the reports of a span of days."""
from __future__ import annotations

import hmac
import re
import secrets
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import msgspec
from aiohttp import hdrs, web

from handlers.auth import sign_in
from handlers.reports import CSV_COLUMNS, _csv
from server.auth import (
    HOSTS,
    KITCHEN,
    MANAGERS,
    SERVERS,
    SESSION_COOKIE,
    TICKET_READERS,
    public,
)
from server.errors import ApiError, forbidden, not_found
from server.http import query_date, seq_headers
from server.identity import identify
from server.keys import POOL
from server.security import cookie_secure
from store import (
    dashboard,
    devices,
    floor,
    kitchen,
    menu,
    reports,
    reservations,
    restaurants,
    waitlist,
)
from store.credentials import Principal

routes = web.RouteTableDef()
CSRF_COOKIE = "serveline_csrf"
WHOLE_LIST = 200  # a screen shows everything open, not a page of it
REPORT_DAYS = 14  # the reports screen's span when none is asked for: the last two weeks
MOST_REPORT_DAYS = 92  # a column a day stays readable up to a quarter


def _csrf(request: web.Request) -> str:
    """The double-submit token: the form carries what the cookie holds."""
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)


def _with_csrf(response: web.StreamResponse, token: str, secure: bool) -> web.StreamResponse:
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/", secure=secure)
    return response


async def _screen_principal(request: web.Request, slug: str,
                            roles: frozenset[str]) -> tuple[Principal, int, str]:
    """The signed-in staff member for a screen of this restaurant, or a redirect to sign in."""
    token = request.cookies.get(SESSION_COOKIE)
    try:
        principal = await identify(request.app, token) if token else None
    except ApiError:
        principal = None
    rid = await restaurants.id_of(request.app[POOL], slug)
    role = principal.roles.get(rid) if principal and rid else None
    if principal is None:
        # `&` quoted, so every parameter of the screen's query comes back after signing in.
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='/?=')}")
    if role is None:
        raise not_found("no such restaurant, or it is not yours")
    if role not in roles:
        raise forbidden(f"a {role} may not open this screen")
    return principal, rid, role


@routes.get("/login")
@public
async def login_page(request: web.Request) -> web.StreamResponse:
    """The sign-in form for screens and browsers."""
    token = _csrf(request)
    response = aiohttp_jinja2.render_template("login.html", request, {
        "csrf": token, "next": request.query.get("next", ""), "error": None})
    return _with_csrf(response, token, cookie_secure(request))


@routes.post("/login")
@public
async def login_form(request: web.Request) -> web.StreamResponse:
    """Check the form's CSRF token, then sign in through the JSON API's own path."""
    try:
        form = await request.post()
    except ValueError:  # a form body that is not UTF-8
        raise ApiError(400, "bad_request", "the form is not UTF-8") from None
    token = request.cookies.get(CSRF_COOKIE, "").encode(errors="surrogateescape")
    given = str(form.get("csrf", "")).encode(errors="surrogateescape")  # bytes: any text compares
    if not token or not hmac.compare_digest(token, given):
        raise ApiError(403, "forbidden", "the form expired; reload the sign-in page")
    next_path = str(form.get("next", ""))
    try:
        answer = await sign_in(request, str(form.get("email", ""))[:254],
                               str(form.get("password", ""))[:256])
    except ApiError as error:
        return aiohttp_jinja2.render_template("login.html", request, {
            "csrf": token, "next": next_path, "error": error.message.capitalize() + "."},
            status=error.status)
    body = msgspec.json.decode(answer.body)
    target = next_path if next_path.startswith("/r/") else (
        f"/r/{body['restaurants'][0]['slug']}/kitchen" if body["restaurants"] else "/login")
    response = web.HTTPSeeOther(target)
    response.cookies.update(answer.cookies)
    raise response


@routes.get("/r/{slug}/kitchen")
@public
@aiohttp_jinja2.template("kitchen.html")
async def kitchen_display(request: web.Request) -> dict[str, Any]:
    """Open tickets of a station in fire order, kept live through the socket."""
    station = request.query.get("station") or None
    if station is not None and not (station.isidentifier() and station.islower()):
        raise web.HTTPNotFound()
    principal, rid, role = await _screen_principal(request, request.match_info["slug"],
                                                   TICKET_READERS)
    restaurant = await restaurants.get(request.app[POOL], rid)
    if station == "expo":
        ready, seq = await kitchen.at_the_pass(request.app[POOL], rid, WHOLE_LIST, 0)
        return aiohttp_jinja2.render_template("expo.html", request, {
            "restaurant": restaurant, "seq": seq, "epoch": restaurant.epoch, "user": principal.name,
            "orders": msgspec.json.decode(ready.items), "can_serve": role in SERVERS})
    page, seq = await kitchen.list_open(request.app[POOL], rid, WHOLE_LIST, 0, station)
    return {"restaurant": restaurant, "station": station, "seq": seq, "epoch": restaurant.epoch,
            "tickets": msgspec.json.decode(page.items), "user": principal.name,
            "can_bump": role in KITCHEN, "settings": restaurant.settings}


@routes.get("/r/{slug}/floor")
@public
@aiohttp_jinja2.template("floor.html")
async def host_stand(request: web.Request) -> dict[str, Any]:
    """The floor map coloured by status, the waitlist with notify and seat, and today's reservations.

    The lists are read after the seq, so the events replayed from it may repeat what they show;
    the screen applies those in place, as it does live ones.
    """
    principal, rid, _ = await _screen_principal(request, request.match_info["slug"], HOSTS)
    pool = request.app[POOL]
    tables, seq = await floor.list_tables(pool, rid, WHOLE_LIST, 0, None, None)
    parties, _ = await waitlist.list_parties(pool, rid, WHOLE_LIST, 0, "open")
    restaurant = await restaurants.get(pool, rid)
    now = datetime.now(ZoneInfo(restaurant.timezone))
    booked, _ = await reservations.list_reservations(pool, rid, WHOLE_LIST, None, now.date(), None)
    return {"restaurant": restaurant, "seq": seq, "epoch": restaurant.epoch, "user": principal.name,
            "tables": msgspec.json.decode(tables.items), "parties": msgspec.json.decode(parties.items),
            "reservations": msgspec.json.decode(booked.items, type=list[reservations.Reservation]),
            "now": now}


@routes.get("/r/{slug}/manager")
@public
@aiohttp_jinja2.template("manager.html")
async def manager_screen(request: web.Request) -> dict[str, Any]:
    """Today's numbers and hour-by-hour charts, alerts, the devices and the menu's 86 toggles."""
    principal, rid, _ = await _screen_principal(request, request.match_info["slug"], MANAGERS)
    pool = request.app[POOL]
    numbers, seq = await dashboard.today(pool, rid)
    day, _ = await dashboard.hourly(pool, rid, None)
    tree, _ = await menu.get_menu(pool, rid)
    screens, _ = await devices.list_devices(pool, rid, WHOLE_LIST, 0)
    restaurant = await restaurants.get(pool, rid)
    hourly = msgspec.json.decode(day)
    # The charts span the service hours and every hour with something in it (manager.js
    # reloads the page when an hour outside them fills).
    start, end = int(restaurant.settings.service_start[:2]), int(restaurant.settings.service_end[:2])
    busy = [h["hour"] for h in hourly["hours"] if h["covers"] or h["tickets"]]
    first, last = min([start, *busy]), max([end if end > start else 23, *busy])
    carte = msgspec.json.decode(tree)
    return {"restaurant": restaurant, "seq": seq, "epoch": restaurant.epoch, "user": principal.name,
            "numbers": msgspec.json.decode(numbers), "menu": carte,
            "stations": sorted({item["station"] for c in carte["categories"] for item in c["items"]}),
            "devices": msgspec.json.decode(screens.items), "hourly": hourly,
            "chart_hours": hourly["hours"][first:last + 1], "settings": restaurant.settings}


def _report_span(request: web.Request, today: date) -> tuple[date, date]:
    """`from` and `to` of the query; either left out, a span of REPORT_DAYS ending today (or
    starting at `from`). 400 for a malformed date, a span backwards or over MOST_REPORT_DAYS."""
    first, last = query_date(request, "from"), query_date(request, "to")
    if last is None:
        last = first + timedelta(days=REPORT_DAYS - 1) if first else today
    if first is None:
        first = last - timedelta(days=REPORT_DAYS - 1)
    if last < first or (last - first).days >= MOST_REPORT_DAYS:
        raise ApiError(400, "invalid_query",
                       f"to must be on or after from, and the span at most {MOST_REPORT_DAYS} days",
                       [{"path": "query.to", "message": "out of range"}])
    return first, last


def _across_days(rows: list[Any], key: str, count: str, means: tuple[str, ...] = (),
                 sums: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows of the same `key` over the days: `count` and `sums` added up, each of `means` (a
    day's average or percentile) averaged weighted by that day's `count`."""
    merged: dict[Any, dict[str, Any]] = {}
    for row in rows:
        into = merged.setdefault(getattr(row, key), {
            **msgspec.structs.asdict(row), count: 0, **{name: 0 for name in (*means, *sums)}})
        into[count] += getattr(row, count)
        for name in sums:
            into[name] += getattr(row, name)
        for name in means:
            into[name] += getattr(row, name) * getattr(row, count)
    for into in merged.values():
        for name in means:
            into[name] = into[name] / into[count] if into[count] else 0.0
    return list(merged.values())


def _weighted(days: list[reports.Day], name: str, count: str) -> float:
    """A daily average or percentile over the days, each day weighted by its `count`."""
    n = sum(getattr(d, count) for d in days)
    return sum(getattr(d, name) * getattr(d, count) for d in days) / n if n else 0.0


def _span_totals(days: list[reports.Day]) -> dict[str, Any]:
    """The span's figures from its days: counts added up, averages weighted by what they
    counted (exact), ticket percentiles as ticket-weighted means of the daily ones (not exact)."""
    total: dict[str, Any] = {name: sum(getattr(d, name) for d in days) for name in (
        "orders", "covers", "gross_minor", "void_minor", "turns", "tickets", "late_tickets",
        "waitlist_seated", "waited_past_quote", "reservations", "no_shows")}
    orders, booked = total["orders"], total["reservations"]
    return total | {
        "average_check_minor": int(total["gross_minor"] / orders + 0.5) if orders else 0,
        "no_show_rate": total["no_shows"] / booked if booked else 0.0,
        "average_turn_minutes": _weighted(days, "average_turn_minutes", "turns"),
        "ticket_p50_seconds": _weighted(days, "ticket_p50_seconds", "tickets"),
        "ticket_p90_seconds": _weighted(days, "ticket_p90_seconds", "tickets"),
        "quoted_minutes": _weighted(days, "quoted_minutes", "waitlist_seated"),
        "waited_minutes": _weighted(days, "waited_minutes", "waitlist_seated"),
        "by_category": sorted(_across_days([c for d in days for c in d.by_category], "category",
                                           "gross_minor"),
                              key=lambda c: (-c["gross_minor"], c["category"])),
        "by_station": sorted(_across_days([s for d in days for s in d.by_station], "station",
                                          "tickets", ("p50_seconds", "p90_seconds"), ("late",)),
                             key=lambda s: s["station"]),
        "by_party_size": sorted(_across_days([p for d in days for p in d.by_party_size],
                                             "party_size", "stays", ("average_minutes",)),
                                key=lambda p: p["party_size"]),
        "by_table": sorted(_across_days([t for d in days for t in d.by_table], "table_id",
                                        "turns", ("average_minutes",)),
                           key=lambda t: (_label_order(t["label"]), t["table_id"]))}


def _label_order(label: str) -> list[Any]:
    """Table labels in the order a host counts them: D2 before D10."""
    return [int(part) if part.isdecimal() else part for part in re.split(r"(\d+)", label)]


def _chart_top(value: float, least: int = 4) -> int:
    """A round top for a chart's scale, at least `value`, whose half is round too: 4, 6, 8,
    10, 20, 40, 60, 80, 100, 200 …"""
    scale = 1
    while True:
        for top in (2 * scale, 4 * scale, 6 * scale, 8 * scale, 10 * scale):
            if top >= max(value, least):
                return top
        scale *= 10


async def _report(request: web.Request) -> tuple[Principal, restaurants.Restaurant, date,
                                                  date, date, reports.Daily, int]:
    """The signed-in manager, the restaurant, today there, the span asked for and its report."""
    principal, rid, _ = await _screen_principal(request, request.match_info["slug"], MANAGERS)
    pool = request.app[POOL]
    restaurant = await restaurants.get(pool, rid)
    today = datetime.now(ZoneInfo(restaurant.timezone)).date()
    first, last = _report_span(request, today)
    report, seq = await reports.daily(pool, rid, first, last)
    return principal, restaurant, today, first, last, report, seq


@routes.get("/r/{slug}/reports")
@public
@aiohttp_jinja2.template("reports.html")
async def reports_screen(request: web.Request) -> dict[str, Any]:
    """A span of the restaurant's days (the last two weeks unless asked): its totals, a chart
    column a day, and sales by category, ticket times by station and turns over the span."""
    principal, restaurant, today, first, last, report, seq = await _report(request)
    span = f"from={first.isoformat()}&to={last.isoformat()}"
    return {"restaurant": restaurant, "seq": seq, "epoch": restaurant.epoch, "user": principal.name,
            "report": report, "days": report.days, "total": _span_totals(report.days),
            "first": first, "last": last, "today": today, "settings": restaurant.settings,
            "csv_url": f"/r/{restaurant.slug}/reports.csv?{span}", "chart_top": _chart_top}


@routes.get("/r/{slug}/reports.csv")
@public
async def reports_csv(request: web.Request) -> web.Response:
    """The reports screen's span as the API's CSV (one row a day), for a plain download link:
    a link cannot send `Accept: text/csv` to the API."""
    _, _, _, first, last, report, seq = await _report(request)
    name = f"daily-{first.isoformat()}-{last.isoformat()}.csv"
    headers = {**seq_headers(seq), hdrs.CONTENT_DISPOSITION: f'attachment; filename="{name}"'}
    return web.Response(body=_csv(report.days, CSV_COLUMNS), content_type="text/csv",
                        charset="utf-8", headers=headers)
