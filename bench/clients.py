"""Client processes that hold many WebSockets and count what arrives on them.

One process cannot both receive a large fan-out and leave the servers a core,
so the sockets are spread over a few processes, each one uvloop event loop
with one aiohttp ClientSession. The parent drives them over a pipe with small
commands: open sockets to a target, arm a count, wait until every socket has
received it (the process stamps the moment its last socket got there), report,
close. The stamps are `time.monotonic()`, one clock for every process on Linux.
"""
from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any, Self

import aiohttp
import msgspec
import uvloop

CONNECT_TIMEOUT_SECONDS = 60.0
COMMAND_TIMEOUT_SECONDS = 600.0


class Target(msgspec.Struct, frozen=True):
    """Where a group of sockets connects and how each gets ready to count."""
    group: str  # the name the parent uses for these sockets
    url: str
    headers: dict[str, str] = {}
    subscribe: str | None = None  # sent after the welcome; ready once "subscribed" arrives
    counted: str | None = None  # count only messages of this type; None: every message


class _Frame(msgspec.Struct):
    """The two fields a counter looks at (both servers' messages have them)."""
    type: str = ""
    seq: int = -1


_decode_frame = msgspec.json.Decoder(_Frame).decode


async def receive(pipe: Connection) -> Any:
    """The next object from a pipe, without blocking the event loop."""
    loop = asyncio.get_running_loop()
    readable = loop.create_future()
    loop.add_reader(pipe.fileno(), lambda: readable.done() or readable.set_result(None))
    try:
        await readable
    finally:
        loop.remove_reader(pipe.fileno())
    os.set_blocking(pipe.fileno(), True)  # uvloop leaves it non-blocking; a big reply needs waits
    return pipe.recv()


# The client process -----------------------------------------------------------

class _Socket:
    __slots__ = ("count", "last_seq", "reader", "ws")

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.reader: asyncio.Task[None] | None = None
        self.count = 0
        self.last_seq = -1


class _Group:
    """The sockets of one target in this process, and what they received since `arm`."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.sockets: list[_Socket] = []
        self.expect = 0
        self.complete = 0
        self.finished_at: float | None = None
        self.done = asyncio.Event()
        self.out_of_order = 0
        self.received_bytes = 0
        self.server_closes: Counter[str] = Counter()  # close codes of sockets the server ended
        self.closing = False

    def arm(self, expect: int) -> None:
        for sock in self.sockets:
            sock.count, sock.last_seq = 0, -1
        self.expect, self.complete, self.finished_at = expect, 0, None
        self.out_of_order = self.received_bytes = 0
        self.done.clear()
        if not self.sockets:
            self.done.set()

    def received(self, sock: _Socket, seq: int, size: int) -> None:
        sock.count += 1
        if seq <= sock.last_seq:
            self.out_of_order += 1
        sock.last_seq = seq
        self.received_bytes += size
        if sock.count == self.expect:
            self.complete += 1
            if self.complete == len(self.sockets):
                self.finished_at = time.monotonic()
                self.done.set()

    async def read(self, sock: _Socket) -> None:
        counted = self.target.counted
        async for msg in sock.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = _decode_frame(msg.data)
            if counted is None or frame.type == counted:
                self.received(sock, frame.seq, len(msg.data))
        if not self.closing:
            self.server_closes[str(sock.ws.close_code)] += 1

    def status(self) -> dict[str, Any]:
        counts = [sock.count for sock in self.sockets]
        return {"sockets": len(self.sockets), "open": sum(not s.ws.closed for s in self.sockets),
                "complete": self.complete, "finished_at": self.finished_at,
                "min_count": min(counts, default=0), "max_count": max(counts, default=0),
                "out_of_order": self.out_of_order, "received_bytes": self.received_bytes,
                "server_closes": dict(self.server_closes)}


async def _expect(ws: aiohttp.ClientWebSocketResponse, kind: str) -> None:
    msg = await ws.receive()
    if msg.type is not aiohttp.WSMsgType.TEXT or _decode_frame(msg.data).type != kind:
        raise ValueError(f"expected {kind!r}, got {msg.type.name} {str(msg.data)[:120]} "
                         f"(close code {ws.close_code})")


class _Worker:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.groups: dict[str, _Group] = {}

    async def _connect(self, target: Target) -> aiohttp.ClientWebSocketResponse:
        ws = await self.session.ws_connect(target.url, headers=target.headers,
                                           timeout=aiohttp.ClientWSTimeout(ws_close=5.0))
        try:
            if target.subscribe is not None:
                await _expect(ws, "welcome")
                await ws.send_str(target.subscribe)
                await _expect(ws, "subscribed")
        except BaseException:
            ws._response.close()  # no polite close for a socket that never got ready
            raise
        return ws

    async def open(self, target: Target, count: int, concurrency: int) -> dict[str, Any]:
        group = self.groups.setdefault(target.group, _Group(target))
        gate = asyncio.Semaphore(concurrency)
        errors: Counter[str] = Counter()

        async def one() -> None:
            async with gate:
                try:
                    ws = await asyncio.wait_for(self._connect(target), CONNECT_TIMEOUT_SECONDS)
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
                    errors[f"{type(error).__name__}: {error}"[:200]] += 1
                    return
            sock = _Socket(ws)
            group.sockets.append(sock)
            sock.reader = asyncio.create_task(group.read(sock))

        started = time.monotonic()
        await asyncio.gather(*(one() for _ in range(count)))
        return {"opened": count - sum(errors.values()), "errors": dict(errors),
                "seconds": time.monotonic() - started}

    async def arm(self, group: str, expect: int) -> None:
        self.groups[group].arm(expect)

    async def wait(self, group: str, timeout: float) -> dict[str, Any]:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.groups[group].done.wait(), timeout)
        return self.groups[group].status()

    async def status(self, group: str) -> dict[str, Any]:
        return self.groups[group].status()

    async def close(self, name: str) -> None:
        group = self.groups.pop(name, None)
        if group is None:
            return
        group.closing = True
        await asyncio.gather(*(sock.ws.close() for sock in group.sockets), return_exceptions=True)
        for sock in group.sockets:
            if sock.reader is not None:
                sock.reader.cancel()
        await asyncio.gather(*(s.reader for s in group.sockets if s.reader), return_exceptions=True)

    async def close_all(self) -> None:
        for name in list(self.groups):
            await self.close(name)


async def obey(pipe: Connection, worker: Any) -> bool:
    """Run the parent's commands on `worker` until "stop" (True) or the parent is gone (False)."""
    while True:
        try:
            command, *args = await receive(pipe)
        except EOFError:  # the parent is gone
            return False
        if command == "stop":
            return True
        try:
            pipe.send(await getattr(worker, command)(*args))
        except Exception as error:  # noqa: BLE001 - the parent reports it and stops
            pipe.send({"error": f"{command}: {type(error).__name__}: {error}"})


def stopped(pipe: Connection) -> None:
    with contextlib.suppress(OSError):
        pipe.send("stopped")


async def _serve(pipe: Connection) -> None:
    connector = aiohttp.TCPConnector(limit=0)  # the default limit (100) would cap the sockets
    async with aiohttp.ClientSession(connector=connector) as session:
        worker = _Worker(session)
        try:
            if not await obey(pipe, worker):
                return
        finally:
            await worker.close_all()
    stopped(pipe)


def _process_main(pipe: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; it stops us
    uvloop.run(_serve(pipe))


# The parent's handle ----------------------------------------------------------

class Crowd:
    """A few client processes holding sockets: `async with Crowd(4) as crowd: ...`."""

    def __init__(self, processes: int) -> None:
        self.size = processes
        self._procs: list[multiprocessing.Process] = []
        self._pipes: list[Connection] = []

    async def __aenter__(self) -> Self:
        context = multiprocessing.get_context("spawn")
        for _ in range(self.size):
            mine, theirs = context.Pipe()
            proc = context.Process(target=_process_main, args=(theirs,), daemon=True,
                                   name="bench-clients")
            proc.start()
            theirs.close()
            self._procs.append(proc)
            self._pipes.append(mine)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _call(self, index: int, *command: Any,
                    timeout: float = COMMAND_TIMEOUT_SECONDS) -> Any:
        pipe = self._pipes[index]
        try:
            pipe.send(command)
            reply = await asyncio.wait_for(receive(pipe), timeout)
        except (EOFError, OSError) as error:
            raise RuntimeError(f"client process {index} is gone "
                               f"(exit code {self._procs[index].exitcode})") from error
        if isinstance(reply, dict) and "error" in reply:
            raise RuntimeError(f"client process {index}: {reply['error']}")
        return reply

    async def each(self, *command: Any, timeout: float = COMMAND_TIMEOUT_SECONDS) -> list[Any]:
        """The same command to every process; their replies in order."""
        return list(await asyncio.gather(*(self._call(i, *command, timeout=timeout)
                                           for i in range(self.size))))

    async def open(self, target: Target, count: int, concurrency: int = 32) -> dict[str, Any]:
        """Open `count` sockets to `target`, spread evenly over the processes."""
        shares = [count // self.size + (i < count % self.size) for i in range(self.size)]
        replies = await asyncio.gather(*(self._call(i, "open", target, share, concurrency)
                                         for i, share in enumerate(shares)))
        errors: Counter[str] = Counter()
        for reply in replies:
            errors.update(reply["errors"])
        return {"opened": sum(r["opened"] for r in replies), "errors": dict(errors),
                "seconds": max(r["seconds"] for r in replies)}

    async def status(self, group: str) -> dict[str, Any]:
        return merge(await self.each("status", group))

    async def close(self, group: str) -> None:
        await self.each("close", group)

    async def stop(self) -> None:
        """Ask each process to close its sockets and exit; terminate the ones that do not."""
        for index in range(len(self._pipes)):
            with contextlib.suppress(Exception):
                await self._call(index, "stop", timeout=15)
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(2)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for pipe in self._pipes:
            pipe.close()
        self._procs, self._pipes = [], []


def merge(statuses: list[dict[str, Any]]) -> dict[str, Any]:
    """One group's status over every process."""
    closes: Counter[str] = Counter()
    for status in statuses:
        closes.update(status["server_closes"])
    nonempty = [s for s in statuses if s["sockets"]]
    stamps = [s["finished_at"] for s in nonempty]
    return {"sockets": sum(s["sockets"] for s in statuses),
            "open": sum(s["open"] for s in statuses),
            "complete": sum(s["complete"] for s in statuses),
            "finished_at": max(stamps) if stamps and None not in stamps else None,
            "min_count": min((s["min_count"] for s in nonempty), default=0),
            "max_count": max((s["max_count"] for s in nonempty), default=0),
            "out_of_order": sum(s["out_of_order"] for s in statuses),
            "received_bytes": sum(s["received_bytes"] for s in statuses),
            "server_closes": dict(closes)}
