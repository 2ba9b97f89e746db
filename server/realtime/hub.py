"""Rooms per restaurant, fed by one LISTEN connection per process and the event table.

A notification says "restaurant R reached seq S"; the room reads what it has
not delivered yet (one read per process, however many sockets), encodes each
event once and hands the same bytes to every subscribed connection. A lost
LISTEN connection is reopened and every room catches up from the last seq it
delivered: notifications are a wake-up call, the table is the truth.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg

from server.realtime import messages
from server.realtime.connection import Connection
from server.realtime.const import CLOSE_RESUME, RECONNECT_JITTER_MS
from store import devices, events
from store.pool import DATABASE_ERRORS

log = logging.getLogger("serveline.hub")
RETRY_SECONDS = 1.0
ROOM_BATCH = 200  # events per read: a burst's frames leave in one write per socket per batch
SHUTDOWN_GRACE_SECONDS = 2.0  # for goodbyes; a peer that reads nothing is then cut off
LISTEN_NAME = "serveline-listen"  # visible in pg_stat_activity


class Room:
    __slots__ = ("again", "connections", "delivered", "reading", "restaurant_id")

    def __init__(self, restaurant_id: int, delivered: int) -> None:
        self.restaurant_id = restaurant_id
        self.delivered = delivered  # every event up to here was handed to the connections
        self.connections: set[Connection] = set()
        self.reading = False
        self.again = False


class Hub:
    def __init__(self, pool: asyncpg.Pool, dsn: str, ack_flush_seconds: float) -> None:
        self.pool = pool
        self.dsn = dsn
        self.rooms: dict[int, Room] = {}
        self.stats = {"delivered": 0, "stale_closed": 0, "slow_closed": 0, "listen_reconnects": 0}
        self._ack_flush_seconds = ack_flush_seconds
        # (restaurant id, device id) -> highest acknowledged seq, not yet written
        self._acks: dict[tuple[int, int], int] = {}
        self._listener: asyncpg.Connection | None = None
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False
        self._listen_lost = asyncio.Event()
        # Others following the stream (the response cache, known credentials): told of each
        # commit's families; when the LISTEN connection is lost (commits may go unheard from
        # now on); and of the gap once it is back (commits may have been missed meanwhile).
        self.on_commit: list[Callable[[int, int, frozenset[str] | None], None]] = []
        self.on_lost: list[Callable[[], None]] = []
        self.heard: dict[int, int] = {}  # restaurant id -> last seq a notification announced
        self.on_gap: list[Callable[[], None]] = []
        # Told, per event handed to at least one socket, the seconds since its `at` (metrics).
        self.on_delivered: list[Callable[[float], None]] = []

    # Lifetime ---------------------------------------------------------------

    async def start(self) -> None:
        await self._listen()
        self._spawn(self._keep_listening())
        self._spawn(self._flush_acks_forever())

    async def stop(self) -> None:
        """Tell every client to come back later (jittered), close them, stop listening."""
        if self._stopping:
            return
        self._stopping = True
        everyone = [conn for room in self.rooms.values() for conn in room.connections]
        for conn in everyone:
            conn.send(messages.reconnect(random.randint(0, RECONNECT_JITTER_MS)))
            conn.close_soon(CLOSE_RESUME, b"server going away: resume from your last seq")
        await asyncio.gather(*(conn.kick(SHUTDOWN_GRACE_SECONDS) for conn in everyone))
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await self._flush_acks()
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # The LISTEN connection ----------------------------------------------------

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is open, so commits wake the rooms (the ops page)."""
        return (self._listener is not None and not self._listener.is_closed()
                and not self._listen_lost.is_set())

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self.dsn, server_settings={"application_name": LISTEN_NAME})
        conn.add_termination_listener(lambda _: self._lost())
        await conn.add_listener(events.NOTIFY_CHANNEL, self._notified)
        self._listener = conn
        self._listen_lost.clear()

    def _lost(self) -> None:
        self._listen_lost.set()
        for follower in self.on_lost:
            follower()

    async def _keep_listening(self) -> None:
        while not self._stopping:
            await self._listen_lost.wait()
            log.warning("LISTEN connection lost; reconnecting")
            self.stats["listen_reconnects"] += 1
            while not self._stopping:
                try:
                    await self._listen()
                    break
                except DATABASE_ERRORS:
                    await asyncio.sleep(RETRY_SECONDS)
            for follower in self.on_gap:
                follower()
            for room in list(self.rooms.values()):  # catch up on whatever we slept through
                self.wake(room)

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        rid, seq, families = (payload.split(":", 2) + [""])[:3]
        restaurant_id, last = int(rid), int(seq)
        if last > self.heard.get(restaurant_id, 0):
            self.heard[restaurant_id] = last
        for follower in self.on_commit:
            follower(restaurant_id, last, frozenset(families.split(",")) if families else None)
        room = self.rooms.get(restaurant_id)
        if room is not None and last > room.delivered:
            self.wake(room)

    # Rooms ------------------------------------------------------------------

    async def join(self, conn: Connection) -> Room:
        room = self.rooms.get(conn.restaurant_id)
        if room is None:
            seq = (await events.position(self.pool, conn.restaurant_id))["seq"]
            room = self.rooms.setdefault(conn.restaurant_id, Room(conn.restaurant_id, seq))
        room.connections.add(conn)
        return room

    def leave(self, conn: Connection, *, stale: bool = False) -> None:
        """Forget a connection (the handler's `finally`); count why it went."""
        if conn.closed_slow:
            self.stats["slow_closed"] += 1
        if stale:
            self.stats["stale_closed"] += 1
        room = self.rooms.get(conn.restaurant_id)
        if room is None:
            return
        room.connections.discard(conn)
        if not room.connections and not room.reading:
            del self.rooms[conn.restaurant_id]

    def wake(self, room: Room) -> None:
        if room.reading:
            room.again = True
        else:
            room.reading = True
            self._spawn(self._catch_up(room))

    async def _catch_up(self, room: Room) -> None:
        try:
            await self._deliver_new(room)
        except DATABASE_ERRORS:
            log.warning("reading events for restaurant %s failed; retrying", room.restaurant_id,
                        exc_info=True)
            await asyncio.sleep(RETRY_SECONDS)
            room.again = True
        finally:
            room.reading = False
        if room.again and not self._stopping:
            self.wake(room)
        elif not room.connections and self.rooms.get(room.restaurant_id) is room:
            del self.rooms[room.restaurant_id]

    async def _deliver_new(self, room: Room) -> None:
        """Deliver every event after `room.delivered`, in order, each encoded once."""
        while True:
            room.again = False
            rows = await events.read_after(self.pool, room.restaurant_id, room.delivered, ROOM_BATCH)
            for row in rows:
                data = messages.frame(messages.event(row["seq"], row["channel"], row["name"],
                                                     row["at"].isoformat(), messages.raw(row["data"])))
                for conn in room.connections:
                    conn.deliver(row["seq"], row["channel"], data)
                room.delivered = row["seq"]
                self.stats["delivered"] += len(room.connections)
            for conn in room.connections:
                conn.flush()
            if self.on_delivered and rows and room.connections:
                now = time.time()
                for row in rows:
                    for observe in self.on_delivered:
                        observe(now - row["at"].timestamp())
            if len(rows) < ROOM_BATCH and not room.again:
                return
            await asyncio.sleep(0)  # let each socket write this batch (one write each) first

    # Receipts ---------------------------------------------------------------

    def acknowledge(self, conn: Connection, seq: int) -> None:
        conn.acked = max(conn.acked, seq)
        if conn.device_id is not None:
            device = (conn.restaurant_id, conn.device_id)
            self._acks[device] = max(self._acks.get(device, 0), seq)

    def _caught_up_to(self) -> dict[tuple[int, int], int]:
        """Each connected device's position: a device that has acknowledged all it was sent
        has seen everything its room delivered (events of other channels included)."""
        positions = {}
        for room in self.rooms.values():
            for conn in room.connections:
                if conn.device_id is None or not conn.channels or conn.pending is not None:
                    continue
                seq = room.delivered if conn.acked >= conn.position else conn.acked
                device = (conn.restaurant_id, conn.device_id)
                positions[device] = max(positions.get(device, 0), seq)
        return positions

    async def _flush_acks(self) -> None:
        """One UPDATE for every device's receipts and presence since the last flush."""
        acks, self._acks = self._acks, {}
        positions = self._caught_up_to()
        for device, seq in acks.items():
            positions[device] = max(positions.get(device, 0), seq)
        if not positions:
            return
        seen = sorted(positions)
        try:
            await devices.record_presence(self.pool, seen, [positions[d] for d in seen])
        except DATABASE_ERRORS:
            for device, seq in acks.items():  # keep them for the next round
                self._acks[device] = max(self._acks.get(device, 0), seq)
            raise

    async def _flush_acks_forever(self) -> None:
        while True:
            await asyncio.sleep(self._ack_flush_seconds)
            started = time.monotonic()
            try:
                await self._flush_acks()
            except DATABASE_ERRORS:
                log.warning("writing device receipts failed; retrying", exc_info=True)
            log.debug("receipts flushed in %.1f ms", (time.monotonic() - started) * 1000)
