"""Who a credential is, and their role in the restaurant a path names: shared by HTTP and sockets.

Resolved principals are kept in process for a minute, so a busy device's requests do not each
look their token up in PostgreSQL. Every change that could revoke or alter one (a sign-out, a
revoked device or key, a staff change) is an event on the `manager` channel; the event stream
(the hub's followers, and the writing request itself) empties the cache at once, on every
instance. A session's end is checked on every use.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime

from aiohttp import web

from server.errors import not_found, unauthorized
from server.keys import CREDENTIALS, POOL
from store import credentials
from store.credentials import Principal

KEEP_SECONDS = 60.0  # also how often an active token's last_seen_at is brought up to date
MOST = 20_000  # principals kept at once; past that the cache starts over


class Credentials:
    """Tokens resolved lately (by their hash), forgotten on any change to who may do what."""

    def __init__(self) -> None:
        self._known: dict[bytes, tuple[Principal, float]] = {}

    def get(self, digest: bytes) -> Principal | None:
        found = self._known.get(digest)
        if found is None or time.monotonic() - found[1] > KEEP_SECONDS:
            return None
        return found[0]

    def put(self, digest: bytes, principal: Principal) -> None:
        if len(self._known) >= MOST:
            self._known.clear()
        self._known[digest] = (principal, time.monotonic())

    def changed(self, _restaurant_id: int, _seq: int, families: frozenset[str] | None) -> None:
        """A hub follower: sign-ins, sign-outs, devices, keys and staff are `manager` events."""
        if families is None or "manager" in families:
            self._known.clear()

    def forget_all(self) -> None:
        self._known.clear()


async def identify(app: web.Application, token: str) -> Principal:
    """The principal behind a token; 401 when unknown, revoked or expired."""
    if not token.isascii():  # ours are; bytes \xff in a header arrive as surrogates
        raise unauthorized("this token is unknown or has been revoked")
    digest = credentials.token_hash(token)
    known = app[CREDENTIALS]
    principal = known.get(digest)
    if principal is None:
        principal = await credentials.resolve(app[POOL], token)
        if principal is None:
            raise unauthorized("this token is unknown or has been revoked")
        known.put(digest, principal)
    if principal.expired or (principal.expires_at is not None
                             and principal.expires_at <= datetime.now(UTC)):
        raise unauthorized("this session has expired; sign in again")
    return principal


def restaurant_role(principal: Principal, raw_rid: str) -> tuple[int, str]:
    """(restaurant id, role) for a path's `{rid}`; another restaurant's is simply not found."""
    restaurant_id = int(raw_rid) if raw_rid.isascii() and raw_rid.isdigit() and len(raw_rid) <= 18 else None
    role = principal.roles.get(restaurant_id) if restaurant_id is not None else None
    if restaurant_id is None or role is None:
        raise not_found("no such restaurant")
    return restaurant_id, role
