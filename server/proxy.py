"""Behind a reverse proxy (`behind_proxy`): the client's address and scheme as the proxy saw them.

One trusted proxy hop is assumed: the client address is the right-most `X-Forwarded-For` entry,
the one our proxy appended (nginx's `$proxy_add_x_forwarded_for`); entries left of it are whatever
the client sent. The scheme is `X-Forwarded-Proto`, so cookies are `Secure` when the client came
over HTTPS. Without the setting neither header is read: any client can send them.
docs/deployment.md has the proxy's side.
"""
from __future__ import annotations

import ipaddress

from aiohttp import hdrs, web

from server.auth import Handler
from server.keys import FORWARDED_FOR

SCHEMES = frozenset({"http", "https"})


def forwarded_address(request: web.BaseRequest) -> str | None:
    """The address our proxy appended to X-Forwarded-For, if it is an IP address."""
    given = request.headers.getall(hdrs.X_FORWARDED_FOR, ())
    if not given:
        return None
    last = given[-1].rpartition(",")[2].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return None


def forwarded_scheme(request: web.BaseRequest) -> str | None:
    """`http` or `https` from X-Forwarded-Proto (its last value), else None."""
    given = request.headers.getall(hdrs.X_FORWARDED_PROTO, ())
    scheme = given[-1].rpartition(",")[2].strip().lower() if given else ""
    return scheme if scheme in SCHEMES else None


@web.middleware
async def from_proxy(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost, with `behind_proxy` only: the rest of the app sees the client's address
    (rate limits, sign-in throttling, sessions, /metrics) and scheme (cookies)."""
    address, scheme = forwarded_address(request), forwarded_scheme(request)
    if address is None and scheme is None:
        return await handler(request)  # straight to this port: a probe, a scraper
    changes: dict[str, str] = {}
    if address is not None:
        changes["remote"] = address
    if scheme is not None:
        changes["scheme"] = scheme
    forwarded = request.clone(**changes)
    if address is not None:
        forwarded[FORWARDED_FOR] = address
    try:
        return await handler(forwarded)
    finally:
        # aiohttp's access log is handed the original request: give it what the app learned
        # (request id, restaurant, the client's address).
        request.update(forwarded)
