"""Idempotency-Key on POST: a retry gets the first answer; concurrent duplicates make one effect.

The key is claimed, the write runs, and its response is stored, all in one
transaction that the write joins (store.events.ambient). A duplicate arriving
meanwhile blocks on the key's row until the first commits, then replays its
answer; if the first failed, nothing was stored and the duplicate runs anew.
"""
from __future__ import annotations

import hashlib
import re

from aiohttp import web

from server.auth import Handler
from server.errors import ApiError
from server.keys import POOL, RESTAURANT_ID
from store import events, idempotency

HEADER = "Idempotency-Key"
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
KEPT_HEADERS = ("Content-Type", "X-Serveline-Seq", "Location", "ETag")


def _fingerprint(request: web.Request, body: bytes) -> bytes:
    return hashlib.sha256(request.method.encode() + b" " + request.path_qs.encode() + b"\n" + body).digest()


def _replay(stored: idempotency.Stored) -> web.Response:
    response = web.Response(status=stored.status, body=stored.body, headers=stored.headers)
    response.headers["Idempotent-Replayed"] = "true"
    return response


@web.middleware
async def idempotent_posts(request: web.Request, handler: Handler) -> web.StreamResponse:
    key = request.headers.get(HEADER)
    if key is None or request.method != "POST" or RESTAURANT_ID not in request:
        return await handler(request)
    if not _VALID_KEY.match(key):
        raise ApiError(400, "invalid_idempotency_key",
                       "Idempotency-Key must be 1 to 200 printable ASCII characters")
    fingerprint = _fingerprint(request, await request.read())
    rid = request[RESTAURANT_ID]
    async with request.app[POOL].acquire() as conn, conn.transaction():
        stored = await idempotency.claim(conn, rid, key, fingerprint)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise ApiError(422, "idempotency_key_reused",
                               "this Idempotency-Key was used for a different request")
            return _replay(stored)
        token = events.ambient.set(conn)
        try:
            response = await handler(request)
        finally:
            events.ambient.reset(token)
        if isinstance(response, web.Response) and response.status < 300:
            headers = {h: response.headers[h] for h in KEPT_HEADERS if h in response.headers}
            await idempotency.record(conn, rid, key, response.status, headers, response.body)
        else:  # only successes are kept: anything else may be retried for real
            await idempotency.release(conn, rid, key)
    return response
