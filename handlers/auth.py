"""Sign in and out, and who am I."""
from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta
from typing import Annotated

import msgspec
from aiohttp import web

from server.auth import SESSION_COOKIE, public, requires
from server.errors import ApiError, unauthorized
from server.http import decode, json_response
from server.keys import CONFIG, LOGIN_THROTTLE, PASSWORDS, POOL, PRINCIPAL
from server.openapi import documented
from server.security import cookie_secure
from store import credentials

routes = web.RouteTableDef()


class LoginIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class UserOut(msgspec.Struct, frozen=True):
    id: int
    email: str
    name: str


class RestaurantRole(msgspec.Struct, frozen=True):
    id: int
    slug: str
    name: str
    role: str


class LoginOut(msgspec.Struct, frozen=True):
    token: str
    expires_at: datetime
    user: UserOut
    restaurants: list[RestaurantRole]


class MeOut(msgspec.Struct, frozen=True):
    kind: str
    id: int
    name: str
    user_id: int | None
    scopes: list[str]
    restaurants: list[RestaurantRole]


async def sign_in(request: web.Request, email: str, password: str) -> web.Response:
    """Check a password (throttled) and open a session: the JSON answer with the session cookie.

    Shared by the API and the sign-in form of the screens.
    """
    email = email.strip().lower()
    address = request.remote or "unknown"
    throttle, passwords = request.app[LOGIN_THROTTLE], request.app[PASSWORDS]
    wait = await throttle.refused_for(email, address)
    if wait is not None:
        raise ApiError(429, "rate_limited", "too many failed sign-ins; try again later",
                       headers={"Retry-After": str(math.ceil(wait))})
    await asyncio.sleep(await throttle.delay_for(email))
    # No stored email holds NUL (PostgreSQL text cannot): such an email is simply unknown.
    user = await credentials.user_by_email(request.app[POOL], email) if "\x00" not in email else None
    if not await passwords.verify(user["password_hash"] if user else None, password):
        await throttle.failed(email, address)
        raise unauthorized("wrong email or password")
    await throttle.succeeded(email)
    new_hash = (await passwords.hash(password)
                if passwords.needs_rehash(user["password_hash"]) else None)
    config = request.app[CONFIG]
    ttl = timedelta(hours=config.session_hours)
    token, session = await credentials.start_session(
        request.app[POOL], user, ttl=ttl, address=request.remote,
        user_agent=request.headers.get("User-Agent"), new_hash=new_hash)
    response = json_response(LoginOut(
        token=token, expires_at=session["expires_at"],
        user=UserOut(id=user["id"], email=user["email"], name=user["name"]),
        restaurants=msgspec.convert(session["restaurants"], list[RestaurantRole])))
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax", path="/",
                        secure=cookie_secure(request), max_age=int(ttl.total_seconds()))
    return response


@routes.post("/api/v1/auth/login")
@public
@documented(body=LoginIn, returns=LoginOut)
async def login(request: web.Request) -> web.Response:
    body = await decode(request, LoginIn)
    return await sign_in(request, body.email, body.password)


@routes.post("/api/v1/auth/logout")
@requires(sessions_only=True)
@documented(status=204)
async def logout(request: web.Request) -> web.Response:
    await credentials.end_session(request.app[POOL], request[PRINCIPAL].id)
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@routes.get("/api/v1/auth/me")
@requires(scope="read")
@documented(returns=MeOut)
async def me(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    restaurants = await credentials.restaurants_of(request.app[POOL], principal.roles)
    return json_response(MeOut(kind=principal.kind, id=principal.id, name=principal.name,
                               user_id=principal.user_id, scopes=sorted(principal.scopes),
                               restaurants=msgspec.convert(restaurants, list[RestaurantRole])))
