"""Headers every answer carries, and CORS: closed unless `cors_origins` names an origin, and then
only for the API (`/api/v1/…`), for bearer tokens, never for cookies (docs/security.md)."""
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from multidict import CIMultiDict

from server.auth import Handler
from server.errors import forbidden
from server.keys import CONFIG

API_PREFIX = "/api/v1/"
# Screens load their own scripts and styles only. Style *attributes* stay allowed (the floor's
# timeline and the ops meters position boxes with them); <style> elements do not, where the
# browser knows style-src-elem (older ones fall back to style-src and allow both).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "style-src-elem 'self'; connect-src 'self'{sockets}; img-src 'self'; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
PAGE_HEADERS = {"X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"}
# A Host that may be named in a CSP source as it is (older Safari does not let 'self' cover
# the page's own ws:/wss: socket); anything else gets 'self' alone.
_PLAIN_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$")
_ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?$|^https?://\[[0-9a-f:.]+\](:[0-9]{1,5})?$")
CORS_REQUEST_HEADERS = ("Authorization, Content-Type, Idempotency-Key, If-Match, If-None-Match, "
                        "X-Serveline-Min-Seq, X-Request-Id")
CORS_EXPOSED_HEADERS = "X-Serveline-Seq, ETag, Retry-After, X-Request-Id"
CORS_MAX_AGE = "600"


def cookie_secure(request: web.Request) -> bool:
    """Cookies are `Secure` when the operator says the site is served over HTTPS (`cookie_secure`,
    for a TLS proxy in front) or when this request itself came over TLS."""
    return request.app[CONFIG].cookie_secure or request.secure


def allowed_origins(setting: str) -> frozenset[str]:
    """`cors_origins` as a set of exact origins (`https://pos.example.com`, no path, no `*`)."""
    origins = set()
    for given in (part.strip() for part in setting.split(",")):
        if not given:
            continue
        origin = given.lower()
        port = urlsplit(origin).netloc.rpartition("]")[2].partition(":")[2]
        if not _ORIGIN.match(origin) or (port and not 0 < int(port) < 65536):
            raise ValueError(f"serveline: bad setting cors_origins (SERVELINE_CORS_ORIGINS): "
                             f"{given!r} is not an origin like https://pos.example.com")
        origins.add(origin)
    return frozenset(origins)


def _vary_on_origin(headers: CIMultiDict[str]) -> None:
    vary = headers.get(hdrs.VARY)
    if vary is None:
        headers[hdrs.VARY] = "Origin"
    elif "origin" not in vary.lower():
        headers[hdrs.VARY] = f"{vary}, Origin"


Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def cors_preflight(origins: frozenset[str]) -> Middleware:
    """A middleware answering CORS preflights (OPTIONS with Access-Control-Request-Method)
    before authentication: 204 for an allowed origin on an API route, 403 otherwise."""

    @web.middleware
    def preflight(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        if request.method != hdrs.METH_OPTIONS or \
                hdrs.ACCESS_CONTROL_REQUEST_METHOD not in request.headers:
            return handler(request)
        refusal = request.match_info.http_exception
        if not isinstance(refusal, web.HTTPMethodNotAllowed):
            return handler(request)  # no such route: the usual 404
        return _answer(request, sorted(refusal.allowed_methods - {hdrs.METH_HEAD}))

    async def _answer(request: web.Request, methods: list[str]) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN, "")
        if origin not in origins or not request.path.startswith(API_PREFIX):
            raise forbidden("cross-origin requests are not allowed from this origin")
        response = web.Response(status=204, headers={
            hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: ", ".join(methods),
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: CORS_REQUEST_HEADERS,
            hdrs.ACCESS_CONTROL_MAX_AGE: CORS_MAX_AGE})
        _vary_on_origin(response.headers)
        return response

    return preflight


def security_headers(origins: frozenset[str]) -> Callable[[web.Request, web.StreamResponse],
                                                           Awaitable[None]]:
    """An on_response_prepare hook: it sees every answer (redirects, static files, error pages,
    the socket's upgrade), where a middleware would miss what aiohttp answers by itself."""

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        headers["X-Content-Type-Options"] = "nosniff"
        if response.content_type == "text/html":
            host = request.host
            sockets = f" ws://{host} wss://{host}" if _PLAIN_HOST.match(host) else ""
            headers["Content-Security-Policy"] = CSP.format(sockets=sockets)
            headers.update(PAGE_HEADERS)
        if origins and request.path.startswith(API_PREFIX):
            _vary_on_origin(headers)
            origin = request.headers.get(hdrs.ORIGIN)
            if origin in origins:
                headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
                headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = CORS_EXPOSED_HEADERS

    return add_headers
