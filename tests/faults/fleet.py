"""The clients of a fault test: screens that resume, iPads that retry, and the checks afterwards.

`Feed` is a screen's socket as static/js/live.js keeps one: subscribed to its
channels, applying each event once (an event whose seq it already has is
ignored), and after any drop reconnecting with the same back-off and jitter
(500 ms doubling to 15 s, times 0.5–1; the server's `after_ms` when it gave one),
then resuming with `since` and `epoch`. `Writer` is an iPad placing orders, each
with its own Idempotency-Key, retrying a POST that got no answer or a 503 with the
same key until it gets one. The checks hold what they received against the
database: the events table and the orders.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import time
import uuid
from collections import Counter
from typing import Any

import aiohttp
import asyncpg
import msgspec

PASSWORD = "faults-demo-password"  # processes.SERVER_ENV's demo password
CHANNELS = ["orders", "kitchen"]  # a kitchen screen's channels: every order and every ticket
MAX_BACKOFF_SECONDS = 15.0  # live.js
FIRST_BACKOFF_SECONDS = 0.5
HANDSHAKE_SECONDS = 15.0  # connect, welcome and subscribed; longer is a failed attempt
REQUEST_SECONDS = 15.0  # an HTTP request without an answer by then is retried
PLACE_SECONDS = 90.0  # a writer gives up on an order (and the test fails) after this
RETRY_CAP_SECONDS = 1.0  # a writer retries a 503 after Retry-After, at most this long

ENCODE = msgspec.json.encode
DECODE = msgspec.json.decode


class Message(msgspec.Struct):
    """The fields a screen reads of a server message."""
    type: str
    seq: int = -1
    epoch: str = ""
    after_ms: int | None = None
    code: str = ""


decode_message = msgspec.json.Decoder(Message).decode


def http_session(**kwargs: Any) -> aiohttp.ClientSession:
    """A session without aiohttp's 100-connection cap (every socket holds one)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), **kwargs)


def subscribed_to(channels: list[str], channel: str) -> bool:
    """Whether an event of `channel` belongs to a subscription (docs/protocol.md)."""
    return channel in channels or (channel.startswith("kitchen:") and "kitchen" in channels)


# The restaurant a test runs against ---------------------------------------------------

class Site(msgspec.Struct, frozen=True):
    url: str
    rid: int
    manager: str  # a manager's session token
    items: list[int]  # available menu item ids

    @property
    def base(self) -> str:
        return f"{self.url}/api/v1/restaurants/{self.rid}"

    @property
    def ws_url(self) -> str:
        return self.base.replace("http", "ws", 1) + "/ws"


async def _json(reply: aiohttp.ClientResponse, expected: int) -> Any:
    if reply.status != expected:
        raise AssertionError(f"{reply.method} {reply.url} answered {reply.status}: "
                             f"{(await reply.text())[:300]}")
    return await reply.json()


async def sign_in(http: aiohttp.ClientSession, url: str) -> Site:
    """The demo restaurant as its manager sees it."""
    async with http.post(url + "/api/v1/auth/login",
                         json={"email": "manager@demo.test", "password": PASSWORD}) as reply:
        login = await _json(reply, 200)
    token = login["token"]
    rid = next(r["id"] for r in login["restaurants"] if r["slug"] == "demo")
    headers = {"Authorization": f"Bearer {token}"}
    async with http.get(f"{url}/api/v1/restaurants/{rid}/menu", headers=headers) as reply:
        menu = await _json(reply, 200)
    items = [i["id"] for c in menu["categories"] for i in c["items"] if i["available"]]
    return Site(url=url, rid=rid, manager=token, items=items)


async def register_devices(http: aiohttp.ClientSession, site: Site, count: int, *, role: str,
                           kind: str, prefix: str, concurrency: int = 8) -> list[str]:
    """`count` devices of `role`, each with its own token (POST /devices as the manager)."""
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {site.manager}"}

    async def register(n: int) -> str:
        async with gate, http.post(site.base + "/devices", headers=headers,
                                   json={"name": f"{prefix} {n}", "kind": kind, "role": role}) as reply:
            return (await _json(reply, 201))["token"]
    return list(await asyncio.gather(*(register(n) for n in range(count))))


# A screen -----------------------------------------------------------------------------

class Feed:
    """One screen's socket, resumed after every drop until `stop()`."""

    def __init__(self, http: aiohttp.ClientSession, ws_url: str, token: str, name: str,
                 channels: list[str] = CHANNELS) -> None:
        self.http, self.ws_url, self.token, self.name = http, ws_url, token, name
        self.channels = channels
        self.epoch: str | None = None
        self.first_seq: int | None = None  # the restaurant's seq at the first subscription
        self.position = -1  # the last seq applied
        self.applied: list[int] = []
        self.ignored = 0  # events received again (at-least-once) and dropped by seq
        self.resets = 0
        self.drops = 0  # subscribed connections lost
        self.failed: Counter[str] = Counter()  # attempts that did not get to "subscribed", by why
        self.closes: Counter[str] = Counter()  # close codes of lost connections
        self.resubscribe_seconds: list[float] = []  # from a drop to subscribed again
        self.subscribed = asyncio.Event()
        self._stopping = False
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._dropped_at: float | None = None
        self._attempts = 0  # reconnects since the last "subscribed" (live.js's back-off)
        self._asked: int | None = None  # the server's after_ms on going away
        self._closing: asyncio.Future[None] | None = None

    async def run(self) -> None:
        while not self._stopping:
            self._asked = None
            try:
                await self._session()
            except aiohttp.WSServerHandshakeError as error:
                self.failed[f"http {error.status}"] += 1
            except (aiohttp.ClientError, OSError, TimeoutError, ConnectionError) as error:
                self.failed[type(error).__name__] += 1
            finally:
                self.subscribed.clear()
                if self._ws is not None:
                    with contextlib.suppress(Exception):
                        await self._ws.close()
                self._ws = None
            if self._stopping:
                return
            delay = (self._asked / 1000 if self._asked is not None else
                     min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** self._attempts)
                     * (0.5 + random.random() / 2))
            self._attempts += 1
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        """One connection: sign in on the upgrade, subscribe (resuming), apply until it ends."""
        async with asyncio.timeout(HANDSHAKE_SECONDS):
            self._ws = ws = await self.http.ws_connect(
                self.ws_url, headers={"Authorization": f"Bearer {self.token}"},
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0))
            welcome = await self._next()
            if welcome.type != "welcome":
                raise ConnectionError(f"expected welcome, got {welcome.type}")
            subscribe: dict[str, Any] = {"type": "subscribe", "channels": self.channels}
            if self.first_seq is not None:
                subscribe.update(epoch=self.epoch, since=self.position)
            await ws.send_str(ENCODE(subscribe).decode())
            subscribed = await self._next()
            if subscribed.type != "subscribed":
                raise ConnectionError(f"expected subscribed, got {subscribed.type} {subscribed.code}")
        self._attempts = 0
        if self.first_seq is None:
            self.first_seq = self.position = subscribed.seq
            self.epoch = subscribed.epoch
        if self._dropped_at is not None:
            self.resubscribe_seconds.append(time.monotonic() - self._dropped_at)
            self._dropped_at = None
        self.subscribed.set()
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self._received(decode_message(msg.data))
        if not self._stopping:
            self.drops += 1
            self._dropped_at = self._dropped_at or time.monotonic()
            self.closes[str(ws.close_code)] += 1

    async def _next(self) -> Message:
        assert self._ws is not None
        msg = await self._ws.receive()
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"{msg.type.name} (close code {self._ws.close_code})")
        return decode_message(msg.data)

    def _received(self, message: Message) -> None:
        if message.type == "event":
            if message.seq <= self.position:
                self.ignored += 1
                return
            self.position = message.seq
            self.applied.append(message.seq)
        elif message.type == "reset":  # never expected here: every resume must be possible
            self.resets += 1
            self.epoch, self.position = message.epoch, message.seq
        elif message.type == "reconnect":
            self._asked = message.after_ms

    def drop(self) -> None:
        """The client closes its connection (an iPad's Wi-Fi blinks); `run` resumes it."""
        if self._ws is not None:
            self._dropped_at = time.monotonic()
            self._closing = asyncio.ensure_future(self._ws.close())  # held until done

    async def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()

    def report(self) -> dict[str, Any]:
        return {"name": self.name, "channels": self.channels, "first_seq": self.first_seq,
                "position": self.position, "applied": self.applied, "ignored": self.ignored,
                "resets": self.resets, "drops": self.drops, "failed": dict(self.failed),
                "closes": dict(self.closes), "resubscribe_seconds": self.resubscribe_seconds}


class Feeds:
    """Many feeds run as tasks in this process."""

    def __init__(self, http: aiohttp.ClientSession, site: Site, tokens: list[str],
                 prefix: str = "screen") -> None:
        self.feeds = [Feed(http, site.ws_url, token, f"{prefix}-{n}") for n, token in enumerate(tokens)]
        self.tasks = [asyncio.create_task(feed.run()) for feed in self.feeds]

    async def all_subscribed(self, timeout: float) -> None:
        await wait_for(lambda: all(f.subscribed.is_set() for f in self.feeds), timeout,
                       lambda: f"{sum(f.subscribed.is_set() for f in self.feeds)}/{len(self.feeds)} "
                               f"subscribed; failures {self.failures()}")

    async def caught_up(self, targets: dict[str, int], timeout: float) -> None:
        def behind() -> list[tuple[str, int]]:
            return [(f.name, f.position) for f in self.feeds
                    if f.position < target_of(targets, f.channels)]
        await wait_for(lambda: not behind(), timeout, lambda: f"behind {targets}: {behind()[:10]}")

    def failures(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for feed in self.feeds:
            total.update(feed.failed)
        return total

    async def stop(self) -> list[dict[str, Any]]:
        await asyncio.gather(*(feed.stop() for feed in self.feeds))
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        return [feed.report() for feed in self.feeds]


# An iPad placing orders -------------------------------------------------------------

class Writer:
    """Places orders one after another, each under its own Idempotency-Key (also its note, so the
    orders table says which key made which order), retrying unanswered POSTs and 503s."""

    def __init__(self, http: aiohttp.ClientSession, site: Site, token: str, name: str) -> None:
        self.http, self.site, self.name = http, site, name
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.run_id = uuid.uuid4().hex[:8]
        self.keys: list[str] = []
        self.ok: dict[str, int] = {}  # key -> order id of its 2xx answer
        self.replayed = 0  # 2xx answers that were the first answer kept under the key
        self.retries = 0
        self.outcomes: Counter[str] = Counter()  # every attempt's status or error
        self.unexpected: list[str] = []  # answers that are neither success nor "try again"
        self.trace: list[tuple[float, float, str]] = []  # (start, seconds, outcome) per attempt
        self.in_flight: str | None = None

    async def place(self, key: str) -> None:
        item = random.choice(self.site.items)
        body = ENCODE({"items": [{"menu_item_id": item, "qty": 1}], "note": key})
        headers = {**self.headers, "Idempotency-Key": key}
        deadline = time.monotonic() + PLACE_SECONDS
        attempt = 0
        self.in_flight = key
        while True:
            started = time.monotonic()
            wait = min(RETRY_CAP_SECONDS, 0.1 * 2 ** attempt) * (0.5 + random.random() / 2)
            try:
                async with self.http.post(
                        self.site.base + "/orders", data=body, headers=headers,
                        timeout=aiohttp.ClientTimeout(total=REQUEST_SECONDS)) as reply:
                    answer = await reply.read()
                    outcome = str(reply.status)
                    if 200 <= reply.status < 300:
                        self.ok[key] = DECODE(answer)["id"]
                        self.replayed += reply.headers.get("Idempotent-Replayed") == "true"
                    elif reply.status in (502, 503, 504):
                        wait = min(RETRY_CAP_SECONDS, float(reply.headers.get("Retry-After", 1)))
                    else:
                        self.unexpected.append(f"{key}: {reply.status} {answer[:200]!r}")
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                outcome = type(error).__name__
            self.outcomes[outcome] += 1
            self.trace.append((started, time.monotonic() - started, outcome))
            if key in self.ok or self.unexpected and self.unexpected[-1].startswith(key + ":"):
                self.in_flight = None
                return
            if time.monotonic() > deadline:
                self.unexpected.append(f"{key}: no answer in {PLACE_SECONDS:g} s ({outcome})")
                self.in_flight = None
                return
            self.retries += 1
            attempt += 1
            await asyncio.sleep(wait)

    async def run(self, stop: asyncio.Event, pace: float) -> None:
        """Orders until `stop`; the one in flight is finished (retried) first."""
        while not stop.is_set():
            key = f"{self.run_id}-{self.name}-{len(self.keys) + 1:05d}"
            self.keys.append(key)
            await self.place(key)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pace)


class Writers:
    def __init__(self, http: aiohttp.ClientSession, site: Site, tokens: list[str],
                 pace: float) -> None:
        self.writers = [Writer(http, site, token, f"w{n}") for n, token in enumerate(tokens)]
        self.stopping = asyncio.Event()
        self.tasks = [asyncio.create_task(w.run(self.stopping, pace)) for w in self.writers]

    def placed(self) -> int:
        return sum(len(w.ok) for w in self.writers)

    async def placing(self, more: int, timeout: float) -> None:
        """Wait until `more` orders beyond now got their 2xx (the load is really running)."""
        goal = self.placed() + more
        await wait_for(lambda: self.placed() >= goal, timeout,
                       lambda: f"{self.placed()}/{goal} orders placed")

    async def stop(self, timeout: float = PLACE_SECONDS + 10) -> None:
        """Finish the orders in flight (retrying them), place no more."""
        self.stopping.set()
        async with asyncio.timeout(timeout):
            await asyncio.gather(*self.tasks)

    async def cancel(self) -> None:
        """For `finally`: stop at once, whatever is in flight."""
        self.stopping.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


# Asking again and again during a fault ---------------------------------------------------

class Probe:
    """One request repeated until stopped: each answer's status (or error), Retry-After and time."""

    def __init__(self, http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> None:
        self.http, self.url, self.headers = http, url, headers
        self.answers: list[tuple[float, float, str, str | None]] = []  # start, s, status, Retry-After

    async def run(self, stop: asyncio.Event, every: float = 0.1) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                async with self.http.get(self.url, headers=self.headers,
                                         timeout=aiohttp.ClientTimeout(total=REQUEST_SECONDS)) as reply:
                    await reply.read()
                    status, retry_after = str(reply.status), reply.headers.get("Retry-After")
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                status, retry_after = type(error).__name__, None
            self.answers.append((started, time.monotonic() - started, status, retry_after))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)

    def between(self, start: float, end: float) -> list[tuple[float, float, str, str | None]]:
        return [a for a in self.answers if start <= a[0] <= end]


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)] if ordered else float("nan")


# Waiting and checking -----------------------------------------------------------------

async def wait_for(done: Any, timeout: float, describe: Any = lambda: "", every: float = 0.05) -> float:
    """Poll `done()` until true; seconds taken. Past `timeout`, fail saying what was missing."""
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not done after {timeout:g} s: {describe()}")
        await asyncio.sleep(every)
    return time.monotonic() - started


def target_of(targets: dict[str, int], channels: list[str]) -> int:
    """The last seq a subscription to `channels` must reach."""
    return max((seq for channel, seq in targets.items() if subscribed_to(channels, channel)),
               default=-1)


LAST_BY_CHANNEL = """
SELECT channel, max(seq) AS seq FROM events WHERE restaurant_id = $1 GROUP BY channel"""
EVENTS_AFTER = """
SELECT seq, channel FROM events WHERE restaurant_id = $1 AND seq > $2 ORDER BY seq"""
ORDERS_BY_NOTE = """
SELECT note, array_agg(id ORDER BY id) AS ids FROM orders
WHERE restaurant_id = $1 AND note = ANY($2::text[]) GROUP BY note"""


async def last_by_channel(dsn: str, rid: int) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {row["channel"]: row["seq"] for row in await conn.fetch(LAST_BY_CHANNEL, rid)}
    finally:
        await conn.close()


async def check_feeds(dsn: str, rid: int, reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Every event committed on a feed's channels after its first subscription, applied exactly
    once and in order; nothing else; no reset."""
    first = min(r["first_seq"] for r in reports)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(EVENTS_AFTER, rid, first)
    finally:
        await conn.close()
    seqs = [row["seq"] for row in rows]
    figures: dict[str, Any] = {
        "events_committed": len(rows),
        "log_gaps": sum(b - a - 1 for a, b in itertools.pairwise(seqs)),  # seqs have no gaps
        "lost": 0, "duplicates": 0, "foreign": 0, "resets": 0, "raw_repeats": 0, "drops": 0,
        "delivered_min": None, "delivered_max": None, "problems": []}
    for report in reports:
        assert report["first_seq"] is not None, f"{report['name']} never subscribed"
        expected = {row["seq"] for row in rows if row["seq"] > report["first_seq"]
                    and subscribed_to(report["channels"], row["channel"])}
        applied = report["applied"]
        held = set(applied)
        lost, foreign = len(expected - held), len(held - expected)
        duplicates = len(applied) - len(held) + sum(b <= a for a, b in itertools.pairwise(applied))
        figures["lost"] += lost
        figures["foreign"] += foreign
        figures["duplicates"] += duplicates
        figures["resets"] += report["resets"]
        figures["raw_repeats"] += report["ignored"]
        figures["drops"] += report["drops"]
        count = len(applied)
        figures["delivered_min"] = min(figures["delivered_min"] or count, count)
        figures["delivered_max"] = max(figures["delivered_max"] or count, count)
        if lost or foreign or duplicates or report["resets"]:
            figures["problems"].append({"feed": report["name"], "lost": sorted(expected - held)[:10],
                                        "foreign": sorted(held - expected)[:10],
                                        "duplicates": duplicates, "resets": report["resets"],
                                        "closes": report["closes"], "failed": report["failed"]})
    figures["problems"] = figures["problems"][:10]
    return figures


async def check_orders(dsn: str, rid: int, writers: list[Writer]) -> dict[str, Any]:
    """Every order whose POST got a 2xx exists, with the id it was answered with; no key made
    two orders; keys that never got an answer made at most one."""
    keys = [key for w in writers for key in w.keys]
    ok = {key: order for w in writers for key, order in w.ok.items()}
    conn = await asyncpg.connect(dsn)
    try:
        found = {row["note"]: row["ids"] for row in await conn.fetch(ORDERS_BY_NOTE, rid, keys)}
    finally:
        await conn.close()
    return {
        "orders_2xx": len(ok),
        "orders_existing": sum(key in found for key in ok),
        "orders_twice": sum(len(ids) - 1 for ids in found.values()),
        "orders_wrong_id": sum(found.get(key, [None])[0] != order for key, order in ok.items()),
        "orders_unanswered": len(keys) - len(ok),
        "replayed": sum(w.replayed for w in writers),
        "retries": sum(w.retries for w in writers),
        "unexpected": [u for w in writers for u in w.unexpected][:10],
    }


def assert_nothing_lost(feeds: dict[str, Any], orders: dict[str, Any] | None = None) -> None:
    assert feeds["lost"] == 0 and feeds["duplicates"] == 0 and feeds["foreign"] == 0, feeds
    assert feeds["resets"] == 0, feeds
    assert feeds["log_gaps"] == 0, feeds
    if orders is not None:
        assert orders["unexpected"] == [], orders
        assert orders["orders_unanswered"] == 0, orders
        assert orders["orders_existing"] == orders["orders_2xx"], orders
        assert orders["orders_twice"] == 0 and orders["orders_wrong_id"] == 0, orders
