"""Open sockets follow their credential: a revoked device or API key, a session that signed out or
ran out, a staff member removed or given another role — the socket closes, as an HTTP request
would be refused. Sign-outs, revocations and staff changes are `manager` events, so each such
commit re-checks the sockets of its restaurant (one lookup per credential: server/identity.py
forgot them all at that commit)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from aiohttp import web

from server.errors import ApiError
from server.identity import identify, restaurant_role
from server.realtime.connection import Connection
from server.realtime.const import CLOSE_RESUME, CLOSE_UNAUTHORIZED
from store.credentials import Principal

log = logging.getLogger("serveline.ws")
SIGNED_OUT = b"signed out: this credential was revoked or has expired"
ROLE_CHANGED = b"your role changed: connect again"


class Revocations:
    """The signed-in sockets by restaurant, and a hub follower: on a `manager` commit, re-check
    the credentials of that restaurant's sockets."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._sockets: dict[int, set[Connection]] = {}
        self._checks: dict[int, asyncio.Task[None]] = {}
        self._again: set[int] = set()

    def watch(self, conn: Connection, token: str,
              principal: Principal) -> asyncio.TimerHandle | None:
        """Follow a socket from its sign-in; a session's also ends when its time is up (hand the
        handle to `forget` when the socket ends)."""
        conn.credential = token
        self._sockets.setdefault(conn.restaurant_id, set()).add(conn)
        if principal.expires_at is None:
            return None
        left = (principal.expires_at - datetime.now(UTC)).total_seconds()
        return asyncio.get_running_loop().call_later(max(left, 0.0), conn.close_soon,
                                                     CLOSE_UNAUTHORIZED, SIGNED_OUT)

    def forget(self, conn: Connection, session_ends: asyncio.TimerHandle | None) -> None:
        if session_ends is not None:
            session_ends.cancel()
        sockets = self._sockets.get(conn.restaurant_id)
        if sockets is not None:
            sockets.discard(conn)
            if not sockets:
                del self._sockets[conn.restaurant_id]

    def changed(self, restaurant_id: int, _seq: int, families: frozenset[str] | None) -> None:
        if families is not None and "manager" not in families:
            return
        if restaurant_id not in self._sockets:
            return
        if restaurant_id in self._checks:
            self._again.add(restaurant_id)  # a change during a check: check once more after it
            return
        self._checks[restaurant_id] = asyncio.create_task(self._check(restaurant_id))

    async def _check(self, restaurant_id: int) -> None:
        try:
            while True:
                self._again.discard(restaurant_id)
                await self._check_once(restaurant_id)
                if restaurant_id not in self._again:
                    return
        except Exception:  # the database away: the sockets stay; the next change checks again
            log.warning("could not re-check the sockets of restaurant %s", restaurant_id,
                        exc_info=True)
        finally:
            del self._checks[restaurant_id]

    async def _check_once(self, restaurant_id: int) -> None:
        for conn in list(self._sockets.get(restaurant_id, ())):
            try:
                principal = await identify(self._app, conn.credential or "")
                _, role = restaurant_role(principal, str(restaurant_id))
            except ApiError:
                conn.close_soon(CLOSE_UNAUTHORIZED, SIGNED_OUT)
                continue
            if role != conn.role:
                conn.close_soon(CLOSE_RESUME, ROLE_CHANGED)

    async def stop(self) -> None:
        for task in list(self._checks.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
