"""A client process holding many resuming screens (`fleet.Feed`), for floods one process cannot make.

The parent (`Crowd`) sends one JSON line of settings on stdin and later `stop`; the process
prints a status line every 0.2 s (how many feeds are subscribed, the lowest position, drops)
and, on `stop`, writes every feed's report to the file named in the settings.
Run as `python -m faults.crowd` with tests/ on the path.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from .fleet import Feed, http_session
from .processes import ROOT

STATUS_SECONDS = 0.2
CONNECTS_PER_SECOND = 200  # the first connections are spread out: the flood is the reconnect


class Settings(msgspec.Struct, frozen=True):
    ws_url: str
    tokens: list[str]
    prefix: str
    report: str


def status(feeds: list[Feed]) -> bytes:
    failures: Counter[str] = Counter()
    for feed in feeds:
        failures.update(feed.failed)
    return msgspec.json.encode({
        "failures": dict(failures.most_common(4)),
        "feeds": len(feeds), "subscribed": sum(f.subscribed.is_set() for f in feeds),
        "min_position": min((f.position for f in feeds), default=-1),
        "drops": sum(f.drops for f in feeds),
        "failed": sum(sum(f.failed.values()) for f in feeds)}) + b"\n"


async def run() -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    settings = msgspec.json.decode(await stdin.readline(), type=Settings)
    async with http_session() as http:
        feeds = [Feed(http, settings.ws_url, token, f"{settings.prefix}-{n}")
                 for n, token in enumerate(settings.tokens)]

        async def start(n: int, feed: Feed) -> None:
            await asyncio.sleep(n / CONNECTS_PER_SECOND)
            await feed.run()
        tasks = [asyncio.create_task(start(n, feed)) for n, feed in enumerate(feeds)]

        async def report_status() -> None:
            while True:
                sys.stdout.buffer.write(status(feeds))
                sys.stdout.flush()
                await asyncio.sleep(STATUS_SECONDS)
        reporter = asyncio.create_task(report_status())
        while (await stdin.readline()).strip() not in (b"stop", b""):
            pass
        reporter.cancel()
        await asyncio.gather(*(feed.stop() for feed in feeds))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        Path(settings.report).write_bytes(msgspec.json.encode([feed.report() for feed in feeds]))
    sys.stdout.buffer.write(b'{"done": true}\n')
    sys.stdout.flush()


class Crowd:
    """The parent's handle on one crowd process."""

    def __init__(self, proc: asyncio.subprocess.Process, report: Path, size: int) -> None:
        self.proc, self.report, self.size = proc, report, size
        self.status: dict[str, Any] = {"feeds": size, "subscribed": 0, "min_position": -1,
                                       "drops": 0, "failed": 0}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, ws_url: str, tokens: list[str], folder: Path, name: str) -> Crowd:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "faults.crowd", cwd=ROOT, env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=(folder / f"{name}.log").open("w"))
        report = folder / f"{name}.json"
        assert proc.stdin is not None
        proc.stdin.write(msgspec.json.encode(Settings(ws_url=ws_url, tokens=tokens, prefix=name,
                                                      report=str(report))) + b"\n")
        await proc.stdin.drain()
        return cls(proc, report, len(tokens))

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.status = msgspec.json.decode(line)

    async def stop(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"stop\n")
        await self.proc.stdin.drain()
        async with asyncio.timeout(timeout):
            await self.proc.wait()
        assert self.proc.returncode == 0, f"crowd process ended with {self.proc.returncode}"
        return msgspec.json.decode(self.report.read_bytes())

    async def close(self) -> None:
        """For `finally`: the process is gone, whatever state it was in."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        self._reader.cancel()


if __name__ == "__main__":
    uvloop.run(run())
