"""One client's socket: a bounded outgoing buffer in bytes, drained by one writer task.

`send()` never waits: it queues bytes, or, when the buffer would overflow,
closes the peer with the resume code (it loses nothing: it resumes with
`since`) so that one slow iPad never slows anyone else. Nothing but the writer
task writes to the socket.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from aiohttp import WSMsgType, web

from server.realtime.const import CLOSE_RESUME, family

log = logging.getLogger("serveline.ws")
CLOSE_GRACE_SECONDS = 1.0


class Connection:
    __slots__ = ("ws", "transport", "restaurant_id", "role", "device_id", "channels", "position",
                 "pending", "acked", "_queue", "_queued", "_limit", "_wakeup", "_closing",
                 "_writer", "_closer", "_drained", "closed_slow")

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None,
                 restaurant_id: int, role: str, device_id: int | None, limit_bytes: int) -> None:
        self.ws = ws
        self.transport = transport
        self.restaurant_id = restaurant_id
        self.role = role
        self.device_id = device_id
        self.channels: frozenset[str] = frozenset()
        self.position = 0  # highest seq handed to this client
        self.pending: list[tuple[int, bytes]] | None = None  # live events held while replaying
        self.acked = 0
        self.closed_slow = False
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._limit = limit_bytes
        self._wakeup = asyncio.Event()
        self._closing: tuple[int, bytes] | None = None
        self._writer = asyncio.create_task(self._write())
        self._closer: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()

    def wants(self, channel: str) -> bool:
        return channel in self.channels or (family(channel) == "kitchen" and "kitchen" in self.channels)

    def send(self, data: bytes) -> None:
        """Queue bytes for the writer; overflow closes the peer with the resume code."""
        if self._closing is not None:
            return
        if self._queued + len(data) > self._limit:
            self._overflow()
            return
        self._queue.append(data)
        self._queued += len(data)
        self._wakeup.set()

    def deliver(self, seq: int, channel: str, data: bytes) -> None:
        """A live event from the room: held while a replay runs, sent once otherwise."""
        if not self.wants(channel):
            return
        if self.pending is not None:
            self.pending.append((seq, data))
        elif seq > self.position:
            self.position = seq
            self.send(data)

    def go_live(self) -> None:
        """End a replay: send what arrived meanwhile, skipping what the replay already sent."""
        held, self.pending = self.pending or [], None
        for seq, data in held:
            if seq > self.position:
                self.position = seq
                self.send(data)

    @property
    def backlogged(self) -> bool:
        return self._queued > self._limit // 2

    async def drain(self) -> None:
        """Wait until the buffer is at most half full (a long replay paces itself by this)."""
        while self._queued > self._limit // 2 and self._closing is None:
            self._drained.clear()
            await self._drained.wait()

    def _overflow(self) -> None:
        """Drop the backlog and close now: the writer may be stuck on a peer that reads nothing."""
        self.closed_slow = True
        self._queue.clear()
        self._queued = 0
        self._closing = (CLOSE_RESUME, b"fell behind: resume from your last seq")
        self._writer.cancel()
        self._drained.set()
        self._closer = asyncio.create_task(self._close())

    def close_soon(self, code: int, reason: bytes) -> None:
        """Close after what is queued (nothing is queued after an overflow)."""
        if self._closing is None:
            self._closing = (code, reason)
            self._wakeup.set()

    async def _write(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    data = self._queue.popleft()
                    self._queued -= len(data)
                    await self.ws.send_frame(data, WSMsgType.TEXT)
                    if self._queued <= self._limit // 2:
                        self._drained.set()
                if self._closing is not None:
                    break
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            return
        await self._close()

    async def _close(self) -> None:
        code, reason = self._closing or (CLOSE_RESUME, b"")
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=reason), CLOSE_GRACE_SECONDS)
        except (TimeoutError, asyncio.CancelledError, ConnectionError, RuntimeError):
            pass
        finally:
            # A peer that reads nothing never lets the close frame (or anything) through:
            # closing the transport politely would wait on it forever.
            if self.closed_slow and self.transport is not None:
                self.transport.abort()

    async def kick(self, grace: float) -> None:
        """Shutdown: give the writer `grace` seconds to say goodbye, then cut the peer off."""
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._writer), grace)
        if not self._writer.done():
            self._writer.cancel()
            if self.transport is not None:
                self.transport.abort()

    async def stop(self) -> None:
        """The handler is done with this socket: end the writer (and a pending close)."""
        self._closing = self._closing or (CLOSE_RESUME, b"")
        self._wakeup.set()
        for task in (self._writer, self._closer):
            if task is None:
                continue
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), CLOSE_GRACE_SECONDS * 2)
            task.cancel()
