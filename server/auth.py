"""Who may call what: route access rules, password hashing, and the failed-login throttle."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import argon2
from aiohttp import web
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

if TYPE_CHECKING:
    from server.ratelimit import Counters

ROLES = ("owner", "manager", "host", "server", "kitchen")
MANAGERS = frozenset({"owner", "manager"})
ANY_ROLE = frozenset(ROLES)
# Who does what on the floor and in the kitchen (docs/api.md has the table).
FRONT_OF_HOUSE = MANAGERS | {"host", "server"}  # read the floor, waitlist, reservations
HOSTS = MANAGERS | {"host"}  # manage waitlist and reservations, seat parties
SERVERS = MANAGERS | {"server"}  # take and manage orders
KITCHEN = MANAGERS | {"kitchen"}  # work tickets, 86 items
TICKET_READERS = KITCHEN | {"server"}  # servers watch tickets for the pass
SESSION_COOKIE = "serveline_session"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A middleware is any callable (request, handler) -> awaitable response. Those written as plain
# functions hand a request they have nothing to do with straight on (`return handler(request)`):
# no coroutine of their own per request, and no suspended frame held for a socket's lifetime.


@dataclass(frozen=True, slots=True)
class Access:
    """A route's rule. `roles`: staff roles allowed (in the path's restaurant, or in any
    restaurant for routes without one). `scope`: the API-key scope that also admits
    integrations; None keeps API keys out. `public`: no credential needed."""

    roles: frozenset[str] = ANY_ROLE
    scope: str | None = None
    public: bool = False
    sessions_only: bool = False


SIGNED_IN = Access()
_ATTR = "__serveline_access__"


def _mark(access: Access) -> Callable[[Handler], Handler]:
    def decorate(handler: Handler) -> Handler:
        setattr(handler, _ATTR, access)
        return handler
    return decorate


def requires(roles: Iterable[str] = ANY_ROLE, *, scope: str | None = None,
             sessions_only: bool = False) -> Callable[[Handler], Handler]:
    return _mark(Access(roles=frozenset(roles), scope=scope, sessions_only=sessions_only))


public = _mark(Access(public=True))


def access_of(handler: object) -> Access:
    return getattr(handler, _ATTR, SIGNED_IN)


def bearer_token(request: web.Request) -> tuple[str | None, bool]:
    """The credential of a request and whether it came from the session cookie."""
    header = request.headers.get("Authorization")
    if header:
        scheme, _, token = header.partition(" ")
        return (token.strip() or None, False) if scheme.lower() == "bearer" else (None, False)
    cookie = request.cookies.get(SESSION_COOKIE)
    return (cookie or None, True) if cookie else (None, False)


def same_origin(request: web.Request) -> bool:
    """Whether a cookie-carrying request may be the site's own: its Origin names this host, or
    it has none (not a browser's cross-site request: browsers send Origin on every cross-site
    POST, PUT, PATCH, DELETE and WebSocket handshake). `Origin: null` is another site."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.host


class Passwords:
    """argon2id hashing, run off the event loop (each hash costs tens of milliseconds)."""

    def __init__(self, time_cost: int, memory_kib: int) -> None:
        self._hasher = argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory_kib,
                                             type=argon2.Type.ID)
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(None, self._hasher.hash, password)

    def hash_now(self, password: str) -> str:
        return self._hasher.hash(password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Check a password; with no user, check a dummy so timing does not tell."""
        if password_hash is None:
            if self._dummy is None:
                self._dummy = await self.hash("serveline-no-such-user")
            password_hash = self._dummy
        try:
            return await asyncio.get_running_loop().run_in_executor(
                None, self._hasher.verify, password_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


class LoginThrottle:
    """Failed logins per email and per client address: slowed after a few, then refused (429).
    Counted by `limiter` (the app's, in Redis when configured: shared by every instance)."""

    def __init__(self, per_email: str, per_address: str, failures_before_delay: int,
                 limiter: Counters | None = None) -> None:
        self._limiter = limiter or MovingWindowRateLimiter(MemoryStorage())
        self._per_email = parse(per_email)
        self._per_address = parse(per_address)
        self._free = failures_before_delay

    async def refused_for(self, email: str, address: str) -> float | None:
        """Seconds until this email/address may try again, or None if it may now."""
        waits = []
        for limit, key in ((self._per_email, email), (self._per_address, address)):
            if not await self._limiter.test(limit, "login", key):
                stats = await self._limiter.get_window_stats(limit, "login", key)
                waits.append(max(1.0, stats.reset_time - time.time()))
        return max(waits) if waits else None

    async def delay_for(self, email: str) -> float:
        """How long to hold a login answer for this email: 0 at first, doubling past the free tries."""
        stats = await self._limiter.get_window_stats(self._per_email, "login", email)
        failures = self._per_email.amount - stats.remaining
        if failures < self._free:
            return 0.0
        return min(0.25 * 2 ** (failures - self._free), 4.0)

    async def failed(self, email: str, address: str) -> None:
        await self._limiter.hit(self._per_email, "login", email)
        await self._limiter.hit(self._per_address, "login", address)

    async def succeeded(self, email: str) -> None:
        await self._limiter.clear(self._per_email, "login", email)
