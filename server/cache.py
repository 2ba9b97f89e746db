"""Hot reads kept as encoded response bytes (and gzipped once), made stale by the events that change them.

Each entry remembers the restaurant seq its read reflected. The process's event stream (the
hub's LISTEN connection, which every instance has) tells the cache, per restaurant, the last seq
at which each kind of data changed; an entry older than that is a miss, wherever it is stored. So
no write handler knows the cache exists, and a shared Redis needs no delete on every write: each
instance judges entries by what its own stream has told it. Deleting is housekeeping only.
"""
from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import msgspec
from aiocache import Cache
from aiocache.serializers import BaseSerializer, NullSerializer
from aiohttp import hdrs, web
from yarl import URL

from server.auth import Handler
from server.http import GZIP_INLINE_BYTES, GZIP_MIN_BYTES, SEQ_HEADER, wants_gzip
from server.keys import HUB
from store import events
from store.pool import DATABASE_ERRORS

log = logging.getLogger("serveline.cache")

MIN_SEQ_HEADER = "X-Serveline-Min-Seq"
PREFIX = "serveline"
NEAR_MOST = 10_000  # entries kept in this process in front of the backend

Compute = Callable[[], Awaitable[tuple[bytes, int]]]  # (JSON body, the seq it reflects)


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of cached answer: the event families that change it and how long it may live."""

    name: str
    families: frozenset[str]
    ttl: float  # a floor under invalidation, not what keeps the data right


ALL_FAMILIES = frozenset({"manager", "floor", "menu", "orders", "kitchen"})
MENU = Kind("menu", frozenset({"menu"}), 600)
SETTINGS = Kind("settings", frozenset({"manager"}), 600)
DASHBOARD = Kind("dashboard", ALL_FAMILIES, 30)
AVAILABILITY = Kind("availability", frozenset({"floor", "manager"}), 60)
KINDS = {kind.name: kind for kind in (MENU, SETTINGS, DASHBOARD, AVAILABILITY)}
# How far back a sync reads the event log: no entry is older than the longest ttl, and a
# write's events are dated at its transaction's start (a transaction lasts under a minute).
SYNC_WINDOW = max(kind.ttl for kind in KINDS.values()) + 60.0


class Entry(msgspec.Struct, array_like=True, frozen=True):
    seq: int
    etag: str
    body: bytes
    gzipped: bytes | None


class _EntrySerializer(BaseSerializer):
    """Entries as msgpack bytes, the same in memory and in Redis."""

    DEFAULT_ENCODING = None

    def __init__(self) -> None:
        super().__init__()
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(Entry)

    def dumps(self, value: Entry) -> bytes:
        return self._encoder.encode(value)

    def loads(self, value: bytes | None) -> Entry | None:
        return None if value is None else self._decoder.decode(value)


def _backend(url: str | None, timeout: float) -> tuple[Cache, str]:
    if not url:
        # No timeout: memory cannot hang, and aiocache would wrap every call in asyncio.wait_for
        # (a task of its own per get: about 30 us of a cached read's CPU).
        # The entry object itself is kept: no encoding or decoding on a hit.
        return Cache(Cache.MEMORY, serializer=NullSerializer(), timeout=None), "memory"
    parsed = URL(url)
    if parsed.scheme not in ("redis", "rediss"):
        raise SystemExit(f"serveline: CACHE_URL must be redis://…, not {parsed.scheme}://")
    cache = Cache(Cache.REDIS, serializer=_EntrySerializer(), timeout=timeout,
                  endpoint=parsed.host or "127.0.0.1", port=parsed.port or 6379,
                  db=int(parsed.path.strip("/") or 0), password=parsed.password,
                  ssl=parsed.scheme == "rediss")
    return cache, "redis"


class ResponseCache:
    def __init__(self, url: str | None, *, timeout: float = 1.0) -> None:
        self.backend, self.backend_name = _backend(url, timeout)
        self.prefix = PREFIX  # and the database's identity, once started
        self.changed_at: dict[tuple[int, str], int] = {}  # (restaurant, kind) -> seq of last change
        self.synced = False  # False until the last changes are read: until then, all misses
        self.hits: Counter[tuple[int, str]] = Counter()  # per (restaurant, kind)
        self.misses: Counter[tuple[int, str]] = Counter()
        self.errors = 0
        self._pool: asyncpg.Pool | None = None
        self._syncing: asyncio.Task | None = None
        # Entries this process stored or fetched lately, in front of the backend: a hit costs a
        # dict lookup, not aiocache's layers (or a Redis round trip). Checked against the event
        # stream like any entry; kept at most their kind's ttl.
        self._near: dict[str, tuple[Entry, float]] = {}

    async def start(self, pool: asyncpg.Pool) -> None:
        """Key by this database (a shared Redis may serve several), then learn what changed lately."""
        self._pool = pool
        self.prefix = f"{PREFIX}:{await events.database_identity(pool)}"
        self.lost_track()

    async def until_synced(self) -> None:
        if self._syncing is not None:
            await asyncio.shield(self._syncing)

    def deaf(self) -> None:
        """The event stream is down: trust no entry until it is back and caught up."""
        self.synced = False

    def lost_track(self) -> None:
        """At start, and after a gap in the event stream (LISTEN reconnected): trust no entry
        until the last change of each kind is read back from the event log."""
        self.synced = False
        if self._pool is not None and (self._syncing is None or self._syncing.done()):
            self._syncing = asyncio.create_task(self._sync())

    async def _sync(self) -> None:
        while True:
            try:
                latest = await events.last_changes(self._pool, SYNC_WINDOW)
                break
            except DATABASE_ERRORS:
                await asyncio.sleep(1.0)  # the database is still away: keep reading through
        for restaurant_id, family, seq in latest:
            self.changed(restaurant_id, seq, frozenset({family}))
        self.synced = True

    # What the event stream says ----------------------------------------------

    def changed(self, restaurant_id: int, seq: int, families: frozenset[str] | None) -> None:
        """Events up to `seq` touched these families (None: unknown, so all of them)."""
        for kind in KINDS.values():
            if families is None or kind.families & families:
                key = (restaurant_id, kind.name)
                if seq > self.changed_at.get(key, 0):
                    self.changed_at[key] = seq

    def last_change(self, restaurant_id: int, kind: Kind) -> int:
        """The seq an entry of this kind must reflect to be kept (a replica's read may be older)."""
        return self.changed_at.get((restaurant_id, kind.name), 0)

    def _fresh(self, restaurant_id: int, kind: Kind, entry: Entry, min_seq: int = 0) -> bool:
        return (self.synced and entry.seq >= min_seq
                and entry.seq >= self.changed_at.get((restaurant_id, kind.name), 0))

    # Answers ----------------------------------------------------------------

    async def answer(self, request: web.Request, restaurant_id: int, kind: Kind, key: str,
                     compute: Compute) -> web.Response:
        """The cached answer if fresh, else computed, stored and answered; 304 on a matching ETag."""
        full_key = f"{self.namespace(restaurant_id, kind)}:{key}"
        least = min_seq(request)
        near = self._near.get(full_key)
        entry = near[0] if near is not None and near[1] > time.monotonic() else None
        if entry is None or not self._fresh(restaurant_id, kind, entry, least):
            entry = await self._get(full_key)  # another instance may have stored a newer one
            if entry is not None:
                self._keep_near(full_key, entry, kind)
        if entry is not None and self._fresh(restaurant_id, kind, entry, least):
            self.hits[restaurant_id, kind.name] += 1
        else:
            self.misses[restaurant_id, kind.name] += 1
            entry = await self._store(restaurant_id, kind, full_key, await compute())
        return respond(request, entry)

    async def warm(self, restaurant_id: int, kind: Kind, key: str, compute: Compute) -> None:
        full_key = f"{self.namespace(restaurant_id, kind)}:{key}"
        await self._store(restaurant_id, kind, full_key, await compute())

    async def _store(self, restaurant_id: int, kind: Kind, full_key: str,
                     computed: tuple[bytes, int]) -> Entry:
        body, seq = computed
        entry = Entry(seq=seq, etag=_etag(body), body=body, gzipped=await _gzip(body))
        # Only what is fresh goes in: an answer read before a change we already know of is
        # served to this one caller (it asked before the change reached it) but not kept.
        if self._fresh(restaurant_id, kind, entry):
            self._keep_near(full_key, entry, kind)
            try:
                await self.backend.set(full_key, entry, ttl=kind.ttl)
            except (TimeoutError, OSError) as error:
                self._failed("set", error)
        return entry

    def _keep_near(self, full_key: str, entry: Entry, kind: Kind) -> None:
        if len(self._near) >= NEAR_MOST:
            self._near.clear()  # many keys (availability asks vary): start over, cheaply
        self._near[full_key] = (entry, time.monotonic() + kind.ttl)

    async def _get(self, full_key: str) -> Entry | None:
        try:
            return await self.backend.get(full_key)
        except (TimeoutError, OSError) as error:  # Redis away: read through
            self._failed("get", error)
            return None

    def _failed(self, what: str, error: BaseException) -> None:
        self.errors += 1
        if self.errors in (1, 10, 100) or self.errors % 1000 == 0:
            log.warning("cache %s failed (%s); reading through to PostgreSQL", what, error)

    # Operators -------------------------------------------------------------

    def namespace(self, restaurant_id: int, kind: Kind) -> str:
        return f"{self.prefix}:r{restaurant_id}:{kind.name}"

    async def clear(self, restaurant_id: int, kind: Kind | None = None) -> None:
        for each in [kind] if kind else KINDS.values():
            name = self.namespace(restaurant_id, each) + ":"
            for full_key in [k for k in self._near if k.startswith(name)]:
                del self._near[full_key]
            await self.backend.clear(namespace=self.namespace(restaurant_id, each))

    async def keys_in(self, restaurant_id: int, kind: Kind) -> int:
        name = self.namespace(restaurant_id, kind)
        if self.backend_name == "redis":
            return len(await self.backend.raw("keys", f"{name}:*"))
        return sum(1 for key in await self.backend.raw("keys") if key.startswith(name + ":"))

    async def close(self) -> None:
        if self._syncing is not None:
            self._syncing.cancel()
        await self.backend.close()


@web.middleware
def own_writes(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """A write's own process acts on what it changed at once, not when the notification comes
    back: a client's next read here sees its write, and a sign-out here is final at once."""
    if request.method in ("GET", "HEAD"):
        return handler(request)
    return _following_writes(request, handler)


async def _following_writes(request: web.Request, handler: Handler) -> web.StreamResponse:
    heard: list[tuple[int, int, frozenset[str]]] = []
    token = events.following.set(heard)
    try:
        return await handler(request)
    finally:
        events.following.reset(token)
        for restaurant_id, seq, families in heard:
            for follower in request.app[HUB].on_commit:  # this cache, known credentials …
                follower(restaurant_id, seq, families)


def min_seq(request: web.Request) -> int:
    """The seq the client's answer must reflect at least (`X-Serveline-Min-Seq`; 0 without)."""
    raw = request.headers.get(MIN_SEQ_HEADER, "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else 0


def _etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


async def _gzip(body: bytes) -> bytes | None:
    if len(body) < GZIP_MIN_BYTES:
        return None
    if len(body) <= GZIP_INLINE_BYTES:
        return gzip.compress(body, compresslevel=6, mtime=0)
    squeeze = functools.partial(gzip.compress, body, compresslevel=6, mtime=0)
    return await asyncio.get_running_loop().run_in_executor(None, squeeze)


def _matches(if_none_match: str, etag: str) -> bool:
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in tags or "*" in tags


def respond(request: web.Request, entry: Entry) -> web.Response:
    headers = {SEQ_HEADER: str(entry.seq), hdrs.ETAG: entry.etag, hdrs.VARY: "Accept-Encoding",
               hdrs.CACHE_CONTROL: "private, no-cache"}
    if _matches(request.headers.get(hdrs.IF_NONE_MATCH, ""), entry.etag):
        return web.Response(status=304, headers=headers)
    if entry.gzipped is not None and wants_gzip(request):
        headers[hdrs.CONTENT_ENCODING] = "gzip"
        return web.Response(body=entry.gzipped, content_type="application/json", headers=headers)
    return web.Response(body=entry.body, content_type="application/json", headers=headers)
