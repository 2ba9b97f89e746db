"""Server-rendered screens: sign-in, kitchen display, host stand, manager (live through the socket)."""
from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import msgspec
from aiohttp import web

from handlers.auth import sign_in
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
from server.identity import identify
from server.keys import CONFIG, POOL
from store import (
    dashboard,
    devices,
    floor,
    kitchen,
    menu,
    reservations,
    restaurants,
    waitlist,
)
from store.credentials import Principal

routes = web.RouteTableDef()
CSRF_COOKIE = "serveline_csrf"
WHOLE_LIST = 200  # a screen shows everything open, not a page of it


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
        raise web.HTTPSeeOther(f"/login?next={request.path_qs}")
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
    return _with_csrf(response, token, request.app[CONFIG].cookie_secure)


@routes.post("/login")
@public
async def login_form(request: web.Request) -> web.StreamResponse:
    """Check the form's CSRF token, then sign in through the JSON API's own path."""
    form = await request.post()
    token = request.cookies.get(CSRF_COOKIE, "")
    if not token or not hmac.compare_digest(token, str(form.get("csrf", ""))):
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
