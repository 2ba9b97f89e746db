"""Request id, errors to JSON (or a page for a screen), and authentication + tenancy + access: once, for every route."""
from __future__ import annotations

import itertools
import logging
import re
import secrets
from collections.abc import Awaitable

import aiohttp_jinja2
import asyncpg
import msgspec
from aiohttp import web

from server import logs
from server.auth import Access, Handler, access_of, bearer_token, same_origin
from server.errors import HTTP_CODES, ApiError, error_response, forbidden, unauthorized
from server.identity import identify, restaurant_role
from server.keys import PRINCIPAL, QUERY_LOG, REQUEST_ID, RESTAURANT_ID, ROLE
from store.credentials import Principal
from store.errors import (
    BadCursor,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Stale,
    StoreError,
)

log = logging.getLogger("serveline.http")

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# A store error's status follows its kind (its class), whatever its more precise code.
STORE_STATUS = ((NotFound, 404), (Conflict, 409), (Forbidden, 403), (Invalid, 422), (Stale, 412),
                (BadCursor, 400))
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Connection-level failures, so try again shortly: the database is down or restarting, short of
# connections, disk or memory (SQLSTATE class 53), or a pooled connection it had just ended was
# used (asyncpg: InternalClientError "another operation is in progress").
UNAVAILABLE = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
               asyncpg.InternalClientError, asyncpg.CannotConnectNowError,
               asyncpg.InsufficientResourcesError)


class RequestIds:
    """Request ids unique across processes and restarts: a random prefix per process and a
    counter (a tenth of uuid4's cost, on every request)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._next = itertools.count(1).__next__

    def __call__(self) -> str:
        return f"{self._prefix}{self._next():016x}"  # 32 hex digits, as a uuid's


new_request_id = RequestIds()


@web.middleware
async def request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give each request an id (the caller's X-Request-Id if sane), echo it back, and count the
    SQL statements it runs under that id."""
    given = request.headers.get("X-Request-Id", "")
    rid = given if given and _CLIENT_ID.match(given) else new_request_id()
    request[REQUEST_ID] = rid
    named = logs.begin_request(rid)  # every record logged meanwhile carries the id
    request.app[QUERY_LOG].begin(rid)
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects and the like pass through, tagged
        exc.headers["X-Request-Id"] = rid
        raise
    finally:
        logs.end_request(named)
    if not response.prepared:
        response.headers["X-Request-Id"] = rid
    return response


def _http_error(exc: web.HTTPException) -> web.Response:
    code = HTTP_CODES.get(exc.status, "bad_request" if exc.status < 500 else "internal")
    details: list[dict] = []
    headers = {}
    message = exc.reason
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = sorted(exc.allowed_methods)
        details = [{"allowed": allowed}]
        headers["Allow"] = ", ".join(allowed)
        message = f"{exc.method} is not allowed here; use {', '.join(allowed)}"
    elif isinstance(exc, web.HTTPNotFound):
        message = "no such route"
    elif isinstance(exc, web.HTTPRequestEntityTooLarge):
        message = "the request body is larger than this server accepts"
    return error_response(exc.status, code, message, details, headers)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as the one JSON error shape, nothing else reaches a client; a person
    at a screen gets it as a page."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _http_error(exc)
    except Exception as exc:  # noqa: BLE001 — the one place where any failure becomes an answer
        response = _failure(request, exc)
    if response.status < 400 or response.content_type != "application/json" or not _wants_page(request):
        return response
    return _error_page(request, response)


def _failure(request: web.Request, exc: Exception) -> web.Response:
    """The answer to what a handler raised."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
    if isinstance(exc, StoreError):
        status = next((status for kind, status in STORE_STATUS if isinstance(exc, kind)), 400)
        return error_response(status, exc.code, exc.message, exc.details)
    if isinstance(exc, asyncpg.NumericValueOutOfRangeError):
        # Inputs are bounded one by one; a figure made from them (a line's total, a check's
        # share) can still pass a column's range. The statement failed: nothing was written.
        log.warning("number out of range on %s %s [%s]: %s", request.method, request.path,
                    request.get(REQUEST_ID), exc)
        return error_response(422, "invalid", "an amount this request makes is too large "
                              "(a line's or a check's total); use smaller quantities or prices")
    if isinstance(exc, asyncpg.TransactionRollbackError):  # a deadlock or serialization failure
        log.warning("%s on %s %s [%s]", type(exc).__name__, request.method, request.path,
                    request.get(REQUEST_ID))
        return error_response(503, "unavailable", "this change crossed another one and was undone; "
                              "send it again", headers={"Retry-After": "1"})
    if isinstance(exc, (asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError)):
        log.warning("statement or lock timeout on %s %s [%s]", request.method, request.path,
                    request.get(REQUEST_ID))
        return error_response(503, "unavailable", "the database took too long; try again",
                              headers={"Retry-After": "2"})
    if isinstance(exc, UNAVAILABLE):
        if isinstance(exc, ConnectionResetError) and (request.transport is None
                                                       or request.transport.is_closing()):
            # The client hung up (e.g. while its body was read): not the database; nobody to answer.
            log.info("client went away during %s %s [%s]", request.method, request.path,
                     request.get(REQUEST_ID))
            return error_response(400, "bad_request", "the client closed the connection")
        log.warning("database unavailable on %s %s [%s]", request.method, request.path,
                    request.get(REQUEST_ID), exc_info=exc)
        return error_response(503, "unavailable", "the database is unavailable; try again shortly",
                              headers={"Retry-After": "5"})
    log.error("unhandled error on %s %s [%s]", request.method, request.path,
              request.get(REQUEST_ID), exc_info=exc)
    return error_response(500, "internal",
                          f"something went wrong on our side (request {request.get(REQUEST_ID)})")


def _wants_page(request: web.Request) -> bool:
    """A browser opening a screen (not the API, not a script's fetch) reads errors as a page."""
    return not request.path.startswith("/api/") and "text/html" in request.headers.get("Accept", "")


def _error_page(request: web.Request, response: web.Response) -> web.Response:
    """The one error shape as a page: same status, same words."""
    error = msgspec.json.decode(response.body)["error"]
    page = aiohttp_jinja2.render_template("error.html", request, {
        "status": response.status, "code": error["code"], "message": error["message"],
        "request_id": request.get(REQUEST_ID)}, status=response.status)
    if "Retry-After" in response.headers:
        page.headers["Retry-After"] = response.headers["Retry-After"]
    return page


def _check_access(request: web.Request, access: Access, principal: Principal) -> None:
    """Tenancy first (another restaurant's id is simply not found), then role or scope."""
    if "rid" in request.match_info:
        restaurant_id, role = restaurant_role(principal, request.match_info["rid"])
        request[RESTAURANT_ID] = restaurant_id
        logs.restaurant_id_var.set(restaurant_id)
        request[ROLE] = role
        roles_held = {role}
    else:
        roles_held = set(principal.roles.values())
    if access.sessions_only and principal.kind != "session":
        raise forbidden("this needs a staff sign-in")
    if principal.kind == "api_key":
        if access.scope is None or access.scope not in principal.scopes:
            raise forbidden(f"this API key lacks the {access.scope or 'staff'} scope for this")
    elif not roles_held & access.roles:
        raise forbidden("your role may not do this")


@web.middleware
def authenticate(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Resolve the credential, then the route's tenancy and access rule."""
    if request.match_info.http_exception is not None:
        return handler(request)  # unknown route / wrong method: let it answer 404/405
    access = access_of(request.match_info.handler)
    if access.public or isinstance(request.match_info.route.resource, web.StaticResource):
        return handler(request)
    return _signed_in(request, handler, access)


async def _signed_in(request: web.Request, handler: Handler, access: Access) -> web.StreamResponse:
    token, via_cookie = bearer_token(request)
    if token is None:
        raise unauthorized("sign in first: send a bearer token or the session cookie")
    principal = await identify(request.app, token)
    if via_cookie and request.method in UNSAFE and not same_origin(request):
        raise forbidden("cross-site request refused")
    request[PRINCIPAL] = principal
    _check_access(request, access, principal)
    return await handler(request)
