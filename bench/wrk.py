"""wrk as the load generator: bounded runs on 127.0.0.1, interleaved rounds, what they cost.

One thread and a fixed number of connections per run. A small Lua script per run sets
the method, headers and body (a fresh Idempotency-Key per POST where asked) and prints
wrk's summary as one JSON line, latency percentiles exact to the microsecond. Each run
also records the CPU the server, the bench's PostgreSQL and wrk spent per request.
"""
from __future__ import annotations

import asyncio
import contextlib
import resource
import shutil
import statistics
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import psutil

from bench.servers import Bench, Failed, Server

THREADS = 1
CONNECTIONS = 64
WRK_TIMEOUT = "10s"  # a request slower than this is an error, not a latency
SUMMARY_MARK = "BENCH_SUMMARY "

# wrk's done(): the summary as one JSON line (latencies in microseconds).
SUMMARY_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH_SUMMARY {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "status_errors": %d, ' ..
    '"timeouts": %d, "mean_us": %.1f, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""

# Each POST gets a key of its own: the run's prefix, the wrk thread, a counter.
UNIQUE_POSTS_LUA = r"""
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local sent = 0
request = function()
  sent = sent + 1
  wrk.headers["Idempotency-Key"] = KEY_PREFIX .. "-" .. thread_id .. "-" .. sent
  return wrk.format(nil, nil, nil, BODIES[sent % #BODIES + 1])
end
"""

Run = dict[str, Any]  # one wrk run's summary, with rps and milliseconds added


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise Failed("wrk is not installed; install it with `sudo apt-get install wrk` "
                     "(Debian/Ubuntu) and run again")
    return found


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def script(bench: Bench, name: str, *, token: str | None = None, method: str = "GET",
           bodies: list[bytes] | None = None, key_prefix: str | None = None) -> Path:
    """A wrk script: method, headers, body or bodies, per-request keys, the JSON summary."""
    lines = [f'wrk.method = "{method}"']
    if token is not None:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {token}"')
    if bodies:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append(f"wrk.body = {_lua_string(bodies[0].decode())}")
    if key_prefix is not None:
        assert bodies, "a keyed POST needs its bodies"
        lines.append(f'KEY_PREFIX = "{key_prefix}"')
        lines.append("BODIES = {" + ", ".join(_lua_string(b.decode()) for b in bodies) + "}")
        lines.append(UNIQUE_POSTS_LUA)
    lines.append(SUMMARY_LUA)
    folder = bench.folder / "wrk"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


async def wrk(url: str, lua: Path, connections: int, seconds: float) -> Run:
    """One bounded wrk run against a 127.0.0.1 URL; its summary, or Failed."""
    if not url.startswith("http://127.0.0.1:"):
        raise Failed(f"load goes to 127.0.0.1 only, not {url}")
    argv = [wrk_path(), f"-t{THREADS}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            f"--timeout={WRK_TIMEOUT}", "-s", str(lua), url]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        async with asyncio.timeout(seconds + 30):
            output, _ = await proc.communicate()
    except TimeoutError:
        raise Failed(f"wrk did not finish {seconds:.0f} s of load on {url} in time") from None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = output.decode(errors="replace")
    summary = next((line.removeprefix(SUMMARY_MARK) for line in text.splitlines()
                    if line.startswith(SUMMARY_MARK)), None)
    if proc.returncode != 0 or summary is None:
        raise Failed(f"wrk exited with {proc.returncode} on {url}:\n{text[-2000:]}")
    run: Run = msgspec.json.decode(summary)
    seconds_run = run["duration_us"] / 1e6
    run.update(rps=run["requests"] / seconds_run, p50_ms=run["p50_us"] / 1000,
               p90_ms=run["p90_us"] / 1000, p99_ms=run["p99_us"] / 1000, connections=connections)
    return run


def postgres_cpu_seconds(bench: Bench) -> float:
    """CPU time the bench's PostgreSQL (postmaster and backends) has used so far."""
    try:
        pid = int((bench.folder / "pg" / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pid)
        processes = [postmaster, *postmaster.children()]
    except (OSError, ValueError, IndexError, psutil.Error):
        return 0.0
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def _children_cpu_seconds() -> float:
    """CPU time of this process's finished children (wrk, once it has been waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Load:
    """One route under load: its server, its URL, how to build each run's script."""

    def __init__(self, bench: Bench, name: str, server: Server, path: str,
                 make_script: Callable[[str], Path], connections: int = CONNECTIONS) -> None:
        self.bench, self.name, self.server, self.url = bench, name, server, server.url + path
        self.make_script, self.connections = make_script, connections
        self.runs = 0

    async def run(self, seconds: float) -> Run:
        """One wrk run, with the CPU each side spent per request: the server, PostgreSQL, wrk."""
        self.runs += 1
        lua = self.make_script(f"{self.name}-{self.runs}")
        before = (self.server.cpu_seconds(), postgres_cpu_seconds(self.bench),
                  _children_cpu_seconds())
        result = await wrk(self.url, lua, self.connections, seconds)
        after = (self.server.cpu_seconds(), postgres_cpu_seconds(self.bench),
                 _children_cpu_seconds())
        requests = max(1, result["requests"])
        for key, start, end in zip(("server", "postgres", "wrk"), before, after):
            result[f"{key}_cpu_us_per_request"] = (end - start) / requests * 1e6
        if result["status_errors"]:
            raise Failed(f"{self.name}: {result['status_errors']} of {result['requests']} answers "
                         f"were 4xx/5xx ({self.url}); the server's log: {self.server.log}")
        if result["requests"] == 0:
            raise Failed(f"{self.name}: no request completed in {seconds:.0f} s ({self.url})")
        return result


async def interleaved(bench: Bench, loads: list[Load], rounds: int, seconds: float,
                      warmup: float, settle: Callable[[], Awaitable[None]] | None = None,
                      ) -> dict[str, list[Run]]:
    """Warm every route up (then `settle`, if given), then `rounds` rounds of all of them, the
    order reversed every other round so drift falls on each alike."""
    bench.progress(f"warming up {', '.join(load.name for load in loads)} ({warmup:.0f} s each)")
    for load in loads:
        await load.run(warmup)
    if settle is not None:
        await settle()
    results: dict[str, list[Run]] = {load.name: [] for load in loads}
    for index in range(rounds):
        for load in loads if index % 2 == 0 else loads[::-1]:
            result = await load.run(seconds)
            results[load.name].append(result)
            bench.progress(f"round {index + 1} {load.name:16} c{load.connections:<3}: "
                           f"{result['rps']:>7,.0f} requests/s  p50 {result['p50_ms']:6.1f} ms  "
                           f"p99 {result['p99_ms']:6.1f} ms  CPU us/request: server "
                           f"{result['server_cpu_us_per_request']:,.0f}, postgres "
                           f"{result['postgres_cpu_us_per_request']:,.0f}")
            socket_errors = sum(result[k] for k in ("connect_errors", "read_errors",
                                                    "write_errors", "timeouts"))
            if socket_errors:
                bench.note(f"{load.name} round {index + 1}: {socket_errors} socket errors or "
                           f"timeouts (connect {result['connect_errors']}, read "
                           f"{result['read_errors']}, write {result['write_errors']}, timeout "
                           f"{result['timeouts']})")
    return results


def median_rps(runs: list[Run]) -> float:
    return statistics.median(run["rps"] for run in runs)


def median_ratio(mine: list[Run], theirs: list[Run]) -> float:
    return statistics.median(m["rps"] / t["rps"] for m, t in zip(mine, theirs))


def latency(results: dict[str, list[Run]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per route, the median over the rounds of each percentile (the report draws them)."""
    return {name: {"percentiles": {f"p{n}": statistics.median(run[f"p{n}_ms"] for run in runs)
                                   for n in (50, 90, 99)}}
            for name, runs in results.items()}


def rounds_detail(runs: list[Run]) -> list[dict[str, float]]:
    keep = ("rps", "p50_ms", "p90_ms", "p99_ms", "requests", "server_cpu_us_per_request",
            "postgres_cpu_us_per_request", "wrk_cpu_us_per_request")
    return [{key: run[key] for key in keep} for run in runs]
