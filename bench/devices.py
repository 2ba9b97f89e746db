"""A restaurant device in the busy hour: its requests timed by route, its socket's seqs kept.

`Device` makes one iPad's or screen's requests with its own device token and
records each one's time (client side, by route template), status and what went
wrong in the process's `Tally`. `Screen` is that device's socket: signed in on
the upgrade, subscribed to its channels, resumed with `since` if the server
closes it, keeping every seq it received so they can be checked against the
events table at the end.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import aiohttp
import msgspec

REQUEST_TIMEOUT_SECONDS = 10.0  # slower than this is an error, not a latency
CONNECT_TIMEOUT_SECONDS = 30.0
RECONNECTS = 5  # a socket the server closes is resumed with `since` this many times at most
ACK_SECONDS = 5.0
ERROR_SAMPLES = 20

BASE = "/api/v1/restaurants/{rid}"
ENCODE = msgspec.json.encode
DECODE = msgspec.json.decode


class MenuItem(msgspec.Struct, frozen=True):
    id: int
    station: str
    modifiers: list[int]


class DiningTable(msgspec.Struct, frozen=True):
    id: int
    seats: int


class Restaurant(msgspec.Struct, frozen=True):
    """One restaurant's door and device tokens, as the parent set them up."""
    rid: int
    url: str  # the server, http://127.0.0.1:port
    ipads: list[str]  # the servers' iPads
    kitchen: dict[str, str]  # station -> its screen
    expo: str
    host: str
    manager: str
    menu: list[MenuItem]
    tables: list[DiningTable]


class Frame(msgspec.Struct):
    """The fields a device reads of a server message; `data` is decoded only when needed."""
    type: str
    seq: int = -1
    epoch: str = ""
    name: str = ""
    data: msgspec.Raw = msgspec.Raw(b"{}")
    code: str = ""  # of an error message
    message: str = ""


decode_frame = msgspec.json.Decoder(Frame).decode


# What this process saw -------------------------------------------------------

class Tally:
    """Every request's time by route, what went wrong, and each ticket's two stamps."""

    def __init__(self) -> None:
        self.timings: defaultdict[str, list[float]] = defaultdict(list)  # route -> ms
        self.sent: defaultdict[str, list[float]] = defaultdict(list)  # route -> monotonic starts
        self.statuses: Counter[str] = Counter()  # "route status"
        self.requests = 0
        self.errors: Counter[str] = Counter()  # what counts against the run, by kind
        self.conflicts: Counter[str] = Counter()  # 409 and 412 from legitimate races, by route
        self.samples: list[str] = []  # the first few error answers, for the report
        self.fired: dict[int, tuple[str, float]] = {}  # ticket id -> (route, POST start)
        self.arrived: dict[int, float] = {}  # ticket id -> on its station's screen

    def answered(self, route: str, status: int, started: float, body: bytes) -> None:
        self.requests += 1
        self.timings[route].append((time.monotonic() - started) * 1000)
        self.sent[route].append(started)
        self.statuses[f"{route} {status}"] += 1
        if status in (409, 412):
            self.conflicts[route] += 1
        elif status >= 300:
            self.error(f"{route} {status}", body.decode(errors="replace")[:300])

    def error(self, kind: str, detail: str = "") -> None:
        self.errors[kind] += 1
        if len(self.samples) < ERROR_SAMPLES:
            self.samples.append(f"{kind}: {detail}"[:400])


class Device:
    """One registered iPad or screen: its token on every request it makes."""

    def __init__(self, http: aiohttp.ClientSession, tally: Tally, place: Restaurant,
                 token: str) -> None:
        self.http, self.tally, self.rid = http, tally, place.rid
        self.base = place.url
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def call(self, method: str, template: str, body: Any = None, *, keyed: bool = False,
                   version: int | None = None, query: str = "",
                   **ids: int) -> tuple[float, int, Any]:
        """(monotonic start, status or 0 when unanswered, decoded body of a success).
        `keyed` sends a fresh Idempotency-Key, `version` an If-Match."""
        route = f"{method} {template}"
        headers = dict(self.headers)
        if keyed:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        if version is not None:
            headers["If-Match"] = f'"{version}"'
        url = self.base + template.format(rid=self.rid, **ids) + query
        started = time.monotonic()
        try:
            async with self.http.request(method, url, headers=headers,
                                         data=None if body is None else ENCODE(body)) as reply:
                payload = await reply.read()
                status = reply.status
        except TimeoutError:
            self.tally.error(f"{route} timeout", f"no answer in {REQUEST_TIMEOUT_SECONDS:g} s")
            return started, 0, None
        except aiohttp.ClientError as error:
            self.tally.error(f"{route} {type(error).__name__}", str(error))
            return started, 0, None
        self.tally.answered(route, status, started, payload)
        return started, status, DECODE(payload) if status < 300 and payload else None


class Screen:
    """One device's socket: subscribed to its channels, every seq kept, resumed after a close."""

    def __init__(self, device: Device, name: str, channels: list[str],
                 on_event: Callable[[Frame], None] | None = None) -> None:
        self.device, self.name, self.channels, self.on_event = device, name, channels, on_event
        self.url = device.base.replace("http", "ws", 1) + BASE.format(rid=device.rid) + "/ws"
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.epoch = ""
        self.first_seq = -1  # the restaurant's seq when the first subscription took effect
        self.last_seq = -1
        self.seqs: list[int] = []
        self.closes: list[str] = []  # close codes of the server's closes
        self.resets = 0
        self.target: int | None = None  # drain: the last seq its channels have
        self.reached = asyncio.Event()
        self.closing = False
        self.acked_at = 0.0
        self.acking: asyncio.Task[None] | None = None

    async def _next(self) -> Frame:
        msg = await self.ws.receive(timeout=CONNECT_TIMEOUT_SECONDS)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"{self.name}: {msg.type.name} (close code {self.ws.close_code})")
        return decode_frame(msg.data)

    async def open(self) -> None:
        """Connect, sign in with the device token, subscribe (resuming after `last_seq`)."""
        self.ws = await self.device.http.ws_connect(
            self.url, headers={"Authorization": f"Bearer {self.device.token}"},
            timeout=aiohttp.ClientWSTimeout(ws_close=5.0))
        welcome = await self._next()
        if welcome.type != "welcome":
            raise ConnectionError(f"{self.name}: expected welcome, got {welcome.type}")
        subscribe: dict[str, Any] = {"type": "subscribe", "channels": self.channels}
        if self.first_seq >= 0:
            subscribe.update(epoch=self.epoch, since=self.last_seq)
        await self.ws.send_str(ENCODE(subscribe).decode())
        subscribed = await self._next()
        if subscribed.type != "subscribed":
            raise ConnectionError(f"{self.name}: expected subscribed, got {subscribed.type}")
        if self.first_seq < 0:
            self.first_seq = self.last_seq = subscribed.seq
            self.epoch = subscribed.epoch

    async def listen(self) -> None:
        """Read until told to close; a close by the server is counted and resumed."""
        for attempt in range(RECONNECTS + 1):
            async for msg in self.ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self._received(decode_frame(msg.data))
            if self.closing:
                return
            self.closes.append(str(self.ws.close_code))
            self.device.tally.error(f"socket closed {self.ws.close_code}", self.name)
            if attempt == RECONNECTS:
                self.device.tally.error("socket given up", f"{self.name}: closed {self.closes}")
                return
            try:
                await asyncio.wait_for(self.open(), CONNECT_TIMEOUT_SECONDS)
            except (aiohttp.ClientError, OSError, TimeoutError, ConnectionError) as error:
                self.device.tally.error("socket reconnect failed", f"{self.name}: {error}")
                return

    def _received(self, frame: Frame) -> None:
        if frame.type == "reset":
            self.resets += 1
            self.device.tally.error("socket reset", self.name)
            self.last_seq = frame.seq
            return
        if frame.type == "error":
            self.device.tally.error(f"socket error {frame.code}", f"{self.name}: {frame.message}")
        if frame.type != "event":
            return
        self.seqs.append(frame.seq)
        self.last_seq = max(self.last_seq, frame.seq)
        if self.on_event is not None:
            self.on_event(frame)
        if self.target is not None and self.last_seq >= self.target:
            self.reached.set()
        now = time.monotonic()
        if now - self.acked_at > ACK_SECONDS and not self.ws.closed:
            self.acked_at = now
            self.acking = asyncio.ensure_future(self._ack(self.last_seq))  # held until done

    async def _ack(self, seq: int) -> None:
        """A receipt, as devices send them; a socket closing meanwhile is no matter."""
        with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
            await self.ws.send_str(f'{{"type":"ack","seq":{seq}}}')

    async def drain(self, last_by_channel: dict[str, int], timeout: float) -> dict[str, Any]:
        """Wait until the socket holds the last event of its channels; then its report."""
        self.target = max((last_by_channel.get(c, -1) for c in self.channels), default=-1)
        if self.last_seq >= self.target:
            self.reached.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.reached.wait(), timeout)
        return {"name": self.name, "rid": self.device.rid, "channels": self.channels,
                "first_seq": self.first_seq, "target": self.target, "seqs": self.seqs,
                "closes": self.closes, "resets": self.resets}

    async def close(self) -> None:
        self.closing = True
        if self.ws is not None:
            await self.ws.close()
