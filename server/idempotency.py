"""Idempotency-Key on POST: a retry gets the first answer; concurrent duplicates make one effect.

The key is claimed, the write runs, and its response is stored, all in one
transaction that the write joins (store.events.ambient). A duplicate arriving
meanwhile blocks on the key's row until the first commits, then replays its
answer; if the first failed, nothing was stored and the duplicate runs anew.

A hot write that is one statement (creating an order) keeps its answer in that
statement instead (`answers_in_store`): the key's unique row makes a concurrent
duplicate fail as a whole and replay the first answer.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable

from aiohttp import web

from server.auth import Handler
from server.errors import ApiError
from server.keys import POOL, RESTAURANT_ID
from store import events, idempotency
from store.order_entry import Key

HEADER = "Idempotency-Key"
_IN_STORE = "serveline_idempotent_in_store"
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
KEPT_HEADERS = ("Content-Type", "X-Serveline-Seq", "Location", "ETag")


def _fingerprint(request: web.Request, body: bytes) -> bytes:
    return hashlib.sha256(request.method.encode() + b" " + request.path_qs.encode() + b"\n" + body).digest()


def replay(stored: idempotency.Stored, fingerprint: bytes) -> web.Response:
    """The first answer given under a key, to a retry of the same request."""
    if stored.fingerprint != fingerprint:
        raise ApiError(422, "idempotency_key_reused",
                       "this Idempotency-Key was used for a different request")
    response = web.Response(status=stored.status, body=stored.body, headers=stored.headers)
    response.headers["Idempotent-Replayed"] = "true"
    return response


def answers_in_store(handler: Handler) -> Handler:
    """Mark a handler whose store call keeps its answer under the key itself (see `key_of`)."""
    setattr(handler, _IN_STORE, True)
    return handler


async def key_of(request: web.Request) -> Key | None:
    """The request's Idempotency-Key (400 if malformed) with the request's fingerprint."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not _VALID_KEY.match(key):
        raise ApiError(400, "invalid_idempotency_key",
                       "Idempotency-Key must be 1 to 200 printable ASCII characters")
    return Key(key=key, fingerprint=_fingerprint(request, await request.read()))


@web.middleware
def idempotent_posts(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    if (request.method != "POST" or HEADER not in request.headers or RESTAURANT_ID not in request
            or getattr(request.match_info.handler, _IN_STORE, False)):
        return handler(request)
    return _first_answer_kept(request, handler)


async def _first_answer_kept(request: web.Request, handler: Handler) -> web.StreamResponse:
    key = await key_of(request)
    assert key is not None
    rid = request[RESTAURANT_ID]
    async with request.app[POOL].acquire() as conn, conn.transaction():
        stored = await idempotency.claim(conn, rid, key.key, key.fingerprint)
        if stored is not None:
            return replay(stored, key.fingerprint)
        token = events.ambient.set(conn)
        try:
            response = await handler(request)
        finally:
            events.ambient.reset(token)
        if isinstance(response, web.Response) and response.status < 300:
            headers = {h: response.headers[h] for h in KEPT_HEADERS if h in response.headers}
            await idempotency.record(conn, rid, key.key, response.status, headers, response.body)
        else:  # only successes are kept: anything else may be retried for real
            await idempotency.release(conn, rid, key.key)
    return response
