"""Pairing a screen: `/pair` shows a code, a manager claims it, the screen stays signed in as a device."""
from __future__ import annotations

from datetime import datetime, timedelta

import aiohttp_jinja2
import msgspec
from aiohttp import web

from server.auth import MANAGERS, SESSION_COOKIE, public, requires
from server.errors import ApiError
from server.http import decode, json_response, written
from server.keys import POOL, PRINCIPAL, RESTAURANT_ID
from server.openapi import documented
from server.security import cookie_secure
from store import pairing, restaurants

routes = web.RouteTableDef()
PAIRING_COOKIE = "serveline_pairing"
WAITING_PER_ADDRESS = 20  # unclaimed codes one address may hold: a kitchen's screens, not a flood
DEVICE_COOKIE_AGE = timedelta(days=400)  # the longest a browser keeps a cookie


class Collected(msgspec.Struct, frozen=True):
    state: str  # "waiting" | "paired"
    next: str | None = None


@routes.get("/pair")
@public
async def pair_page(request: web.Request) -> web.StreamResponse:
    """A big code for a manager to type in; the page waits until it is claimed."""
    pool = request.app[POOL]
    secret = request.cookies.get(PAIRING_COOKIE)
    shown = await pairing.waiting(pool, secret) if secret else None
    if shown is not None:
        return _waiting_page(request, shown.code, shown.expires_at)
    address = request.remote or "unknown"
    if await pairing.waiting_from(pool, address) >= WAITING_PER_ADDRESS:
        raise ApiError(429, "rate_limited", "too many screens here are waiting to be paired; "
                       "pair them or wait ten minutes", headers={"Retry-After": "600"})
    code, secret, expires_at = await pairing.start(pool, address)
    response = _waiting_page(request, code, expires_at)
    response.set_cookie(PAIRING_COOKIE, secret, httponly=True, samesite="Strict", path="/pair",
                        max_age=int(pairing.LIFETIME.total_seconds()),
                        secure=cookie_secure(request))
    return response


def _waiting_page(request: web.Request, code: str, expires_at: datetime) -> web.Response:
    return aiohttp_jinja2.render_template("pair.html", request, {
        "code": pairing.display(code), "expires_at": expires_at.isoformat()})


@routes.post("/pair/collect")
@public
async def collect(request: web.Request) -> web.Response:
    """The waiting page asks: claimed yet? Once it is, the browser becomes the device."""
    secret = request.cookies.get(PAIRING_COOKIE)
    state, token, path = await pairing.collect(request.app[POOL], secret) if secret else \
        ("gone", None, None)
    if state == "gone":
        raise ApiError(410, "gone", "this pairing code has expired; show a new one")
    response = json_response(Collected(state=state, next=path), 200 if token else 202)
    if token:
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax", path="/",
                            max_age=int(DEVICE_COOKIE_AGE.total_seconds()),
                            secure=cookie_secure(request))
        response.del_cookie(PAIRING_COOKIE, path="/pair")
    return response


@routes.post("/api/v1/restaurants/{rid}/devices/pair")
@requires(MANAGERS)
@documented(body=pairing.PairIn, returns=pairing.Paired, status=201)
async def claim(request: web.Request) -> web.Response:
    """Make the screen showing this code a device of the restaurant, opening the chosen screen."""
    body = await decode(request, pairing.PairIn)
    pool = request.app[POOL]
    restaurant = await restaurants.get(pool, request[RESTAURANT_ID])
    device, path, seq = await pairing.claim(pool, restaurant.id, restaurant.slug, body,
                                            request[PRINCIPAL].user_id)
    return written({"device": device, "screen": path}, seq, 201)
