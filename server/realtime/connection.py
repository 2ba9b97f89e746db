"""One client's socket: a bounded outgoing buffer of ready-made frames, flushed in one write.

A broadcast's frame is built once and the same bytes go on every subscriber's
buffer. `send_frame()` never waits: it queues the bytes and schedules one flush
for the next loop turn, so a burst of events leaves as one write per socket.
Only when a socket's transport pushes back does a drain task start, and it is
the only thing that writes then. A buffer that would overflow closes the peer
with the resume code: it loses nothing (it resumes with `since`) and one slow
iPad never slows anyone else.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from server.realtime.const import CLOSE_RESUME, family
from server.realtime.messages import frame

log = logging.getLogger("serveline.ws")
CLOSE_GRACE_SECONDS = 1.0
WRITE_HIGH_WATER = 64 * 1024  # transport bytes above which we wait for the peer


class Connection:
    __slots__ = (
        "_closer",
        "_closing",
        "_drainer",
        "_flush_scheduled",
        "_limit",
        "_queue",
        "_queued",
        "acked",
        "channels",
        "closed_slow",
        "credential",
        "device_id",
        "pending",
        "position",
        "restaurant_id",
        "role",
        "transport",
        "writer",
        "ws",
    )

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None,
                 writer: AbstractStreamWriter, restaurant_id: int, role: str,
                 device_id: int | None, limit_bytes: int) -> None:
        self.ws = ws
        self.transport = transport
        self.writer = writer
        self.restaurant_id = restaurant_id
        self.role = role
        self.device_id = device_id
        self.credential: str | None = None  # its token: a revocation closes it (revocation.py)
        self.channels: frozenset[str] = frozenset()
        self.position = 0  # highest seq handed to this client
        self.pending: list[tuple[int, bytes]] | None = None  # live events held while replaying
        self.acked = 0
        self.closed_slow = False
        self._queue: list[bytes] = []
        self._queued = 0
        self._limit = limit_bytes
        self._flush_scheduled = False
        self._drainer: asyncio.Task[None] | None = None
        self._closing: tuple[int, bytes] | None = None
        self._closer: asyncio.Task[None] | None = None

    def wants(self, channel: str) -> bool:
        return channel in self.channels or (family(channel) == "kitchen" and "kitchen" in self.channels)

    # Sending ----------------------------------------------------------------

    def send(self, payload: bytes) -> None:
        """A message for this client alone."""
        self.send_frame(frame(payload))

    def send_frame(self, data: bytes) -> None:
        """Queue a ready-made frame, written on the next loop turn; overflow closes the peer with
        the resume code."""
        if self._enqueue(data) and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _enqueue(self, data: bytes) -> bool:
        if self._closing is not None:
            return False
        if self._queued + len(data) + self._in_transport() > self._limit:
            self._overflow()
            return False
        self._queue.append(data)
        self._queued += len(data)
        return True

    def deliver(self, seq: int, channel: str, data: bytes) -> None:
        """A live event's frame from the room: held while a replay runs, queued once otherwise.
        The room calls `flush()` after its batch (one write per socket per batch, and no
        callback scheduled per socket)."""
        if not self.wants(channel):
            return
        if self.pending is not None:
            self.pending.append((seq, data))
        elif seq > self.position:
            self.position = seq
            self._enqueue(data)

    def go_live(self) -> None:
        """End a replay: send what arrived meanwhile, skipping what the replay already sent."""
        held, self.pending = self.pending or [], None
        for seq, data in held:
            if seq > self.position:
                self.position = seq
                self.send_frame(data)

    def _in_transport(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def flush(self) -> None:
        """Write everything queued at once, unless the peer is pushing back."""
        if self._queue and not self._flush_scheduled:
            self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._queue or self._drainer is not None or self.transport is None:
            return
        if self.transport.is_closing():
            self._queue.clear()
            self._queued = 0
            return
        if self._in_transport() > WRITE_HIGH_WATER:
            self._drainer = asyncio.create_task(self._drain_then_flush())
            return
        data = b"".join(self._queue) if len(self._queue) > 1 else self._queue[0]
        self._queue.clear()
        self._queued = 0
        self.transport.write(data)

    async def _drain_then_flush(self) -> None:
        try:
            await self.writer.drain()
        except (ConnectionError, RuntimeError):
            return
        finally:
            self._drainer = None
        self._flush()
        if self._closing is not None and self._closer is None:
            self._closer = asyncio.create_task(self._close())

    @property
    def backlogged(self) -> bool:
        return self._queued + self._in_transport() > self._limit // 2

    async def drain(self) -> None:
        """Wait until the peer has taken most of what is queued (a long replay paces itself so)."""
        while self.backlogged and self._closing is None:
            self._flush()
            drainer = self._drainer
            if drainer is not None:
                await asyncio.shield(drainer)
            else:
                await self.writer.drain()

    # Closing ------------------------------------------------------------------

    def _overflow(self) -> None:
        """Drop the backlog and close now: the peer is not reading."""
        self.closed_slow = True
        self._queue.clear()
        self._queued = 0
        self._closing = (CLOSE_RESUME, b"fell behind: resume from your last seq")
        if self._drainer is not None:
            self._drainer.cancel()
        self._closer = asyncio.create_task(self._close())

    def close_soon(self, code: int, reason: bytes) -> None:
        """Close after what is queued has been written."""
        if self._closing is not None:
            return
        self._closing = (code, reason)
        self._flush()
        if self._drainer is None:
            self._closer = asyncio.create_task(self._close())

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
        """Shutdown: give the goodbye `grace` seconds to get through, then cut the peer off."""
        await asyncio.sleep(0)
        tasks = [t for t in (self._drainer, self._closer) if t is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        if any(not t.done() for t in tasks) and self.transport is not None:
            self.transport.abort()

    async def stop(self) -> None:
        """The handler is done with this socket: finish or cancel what is still running."""
        for task in (self._drainer, self._closer):
            if task is None:
                continue
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), CLOSE_GRACE_SECONDS * 2)
            task.cancel()
