"""The busy hour's crowd: client processes, each running every device of some restaurants.

One process cannot play a hundred iPads and leave the server its share, so the
restaurants are spread over a few processes, each one uvloop event loop with one
aiohttp session (bench/service.py says what the devices do). The parent drives
them over a pipe with small commands: set up (every device's socket connected and
subscribed), go until a deadline, progress, finish, drain (sockets catch up with the
last events), report. Stamps are `time.monotonic()`, one clock for every process
on Linux, so a ticket's order POST start and its arrival on a screen compare.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import random
import signal
import time
from multiprocessing.connection import Connection
from typing import Any, Self

import aiohttp
import uvloop

from bench.clients import Crowd, obey, stopped
from bench.devices import REQUEST_TIMEOUT_SECONDS, Restaurant, Tally
from bench.service import Crew


class _Worker:
    """What the parent drives over the pipe: set up, go, progress, finish, drain, report."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.tally = Tally()
        self.crews: list[Crew] = []
        self.listening: list[asyncio.Task[None]] = []
        self.acting: list[asyncio.Task[None]] = []
        self.cpu_at_go = 0.0
        self.cpu_seconds = 0.0

    async def setup(self, places: list[Restaurant], seed: int) -> dict[str, Any]:
        rng = random.Random(seed)
        self.crews = [Crew(self.http, self.tally, place, random.Random(rng.random()))
                      for place in places]
        started = time.monotonic()
        await asyncio.gather(*(crew.connect() for crew in self.crews))
        self.listening = [asyncio.ensure_future(listen)
                          for crew in self.crews for listen in crew.listeners()]
        return {"sockets": sum(len(crew.screens) for crew in self.crews),
                "seconds": time.monotonic() - started}

    async def go(self, deadline: float) -> None:
        self.cpu_at_go = time.process_time()
        for crew in self.crews:
            crew.deadline = deadline
        self.acting = [asyncio.ensure_future(actor) for crew in self.crews
                       for actor in crew.actors()]

    async def progress(self) -> dict[str, Any]:
        return {"requests": self.tally.requests, "errors": sum(self.tally.errors.values()),
                "conflicts": sum(self.tally.conflicts.values()),
                "cpu_seconds": time.process_time() - self.cpu_at_go}

    async def finish(self, timeout: float) -> dict[str, Any]:
        """Wait for the actors and their chores to end (they start nothing after the deadline)."""
        self.cpu_seconds = time.process_time() - self.cpu_at_go
        pending = [*self.acting, *(chore for crew in self.crews for chore in crew.chores)]
        done, late = await asyncio.wait(pending, timeout=timeout) if pending else (set(), set())
        for task in late:
            task.cancel()
        ended = [*done, *(task for task in self.listening if task.done())]  # a socket's reader too
        failures = [task.exception() for task in ended
                    if not task.cancelled() and task.exception() is not None]
        for failure in failures:
            self.tally.error("client bug", f"{type(failure).__name__}: {failure}")
        return {"late": len(late), "failures": len(failures)}

    async def drain(self, last: dict[int, dict[str, int]], timeout: float) -> list[dict[str, Any]]:
        screens = [screen for crew in self.crews for screen in crew.screens]
        return list(await asyncio.gather(*(
            screen.drain(last.get(screen.device.rid, {}), timeout) for screen in screens)))

    async def report(self) -> dict[str, Any]:
        tally = self.tally
        return {"timings": dict(tally.timings), "sent": dict(tally.sent),
                "statuses": dict(tally.statuses),
                "requests": tally.requests, "errors": dict(tally.errors),
                "conflicts": dict(tally.conflicts), "samples": tally.samples,
                "fired": tally.fired, "arrived": tally.arrived, "cpu_seconds": self.cpu_seconds}

    async def close(self) -> None:
        for task in self.acting:
            task.cancel()
        for crew in self.crews:
            for chore in list(crew.chores):
                chore.cancel()
        await asyncio.gather(*(screen.close() for crew in self.crews for screen in crew.screens),
                             return_exceptions=True)
        for task in self.listening:
            task.cancel()
        await asyncio.gather(*self.acting, *self.listening, return_exceptions=True)


async def _serve(pipe: Connection) -> None:
    connector = aiohttp.TCPConnector(limit=0)  # every device its own keep-alive connection
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     cookie_jar=aiohttp.DummyCookieJar()) as http:
        worker = _Worker(http)
        try:
            if not await obey(pipe, worker):
                return
        finally:
            await worker.close()
    stopped(pipe)


def _process_main(pipe: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; it stops us
    uvloop.run(_serve(pipe))


class Rush(Crowd):
    """Client processes each running the devices of some restaurants: `async with Rush(n)`."""

    async def __aenter__(self) -> Self:
        context = multiprocessing.get_context("spawn")
        for _ in range(self.size):
            mine, theirs = context.Pipe()
            proc = context.Process(target=_process_main, args=(theirs,), daemon=True,
                                   name="bench-rush")
            proc.start()
            theirs.close()
            self._procs.append(proc)
            self._pipes.append(mine)
        return self

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self._procs]

    async def setup(self, shares: list[list[Restaurant]], seed: int) -> list[dict[str, Any]]:
        """Each process its share of restaurants: devices made, every socket open and subscribed."""
        return list(await asyncio.gather(*(self._call(i, "setup", share, seed + i)
                                           for i, share in enumerate(shares))))
