"""`python -m bench <scenario> [--quick] [--json out.json]`: Serveline beside the yardstick.

Starts an embedded PostgreSQL and the servers a scenario needs, runs it, stops
everything, prints a table and optionally writes every figure to JSON. What
each figure means: bench/README.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from bench import observability, servers, ws
from bench.servers import Bench, Failed

SCENARIOS = {**ws.SCENARIOS, **observability.SCENARIOS}  # a new module's scenarios join here

# figure: (unit, comparison, target); figures without a target are context, never judged.
FIGURES: dict[str, tuple[str, str | None, float | None]] = {
    "serveline_fanout_dps": ("deliveries/s", None, None),
    "yardstick_blast_dps": ("deliveries/s", None, None),
    "ratio_fanout_vs_blast": ("x", ">=", 3.0),
    "rss_per_socket_bytes": ("B", "<=", 16 * 1024),
    "yardstick_rss_per_socket_bytes": ("B", None, None),
    "resume_1000_ms": ("ms", "<", 50.0),
    "observe_cpu_ratio": ("x", "<=", 1.05),
    "observe_rps_ratio": ("x", None, None),
    "observe_on_cpu_us_per_request": ("us/request", None, None),
    "observe_off_cpu_us_per_request": ("us/request", None, None),
    "observe_hot_path_us": ("us/request", None, None),
    "observe_hot_path_share": ("%", "<=", 0.01),
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a first look")
    parser.add_argument("--json", metavar="PATH", type=Path, help="write every figure here")
    parser.add_argument("--clients", type=int, default=4, metavar="N",
                        help="client processes holding the sockets (default 4)")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the temp folder with the servers' logs")
    return parser.parse_args(argv)


async def run(names: list[str], bench: Bench) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Each scenario in turn; a failed one is noted (with its servers' log lines) and skipped."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    figures: dict[str, Any] = {}
    details: dict[str, Any] = {}
    failed: list[str] = []
    for name in names:
        print(f"== {name}", flush=True)
        first_server = len(bench.started)
        try:
            result = await SCENARIOS[name](bench)
        except (Failed, RuntimeError, TimeoutError) as error:
            failed.append(name)
            bench.note(f"{name} FAILED: {error}")
            for server in bench.started[first_server:]:
                lines = server.noteworthy()
                print(f"  {server.name} log {server.log}: {len(lines)} warning/error lines",
                      *(f"    {line}" for line in lines[:30]), sep="\n", flush=True)
            continue
        details.update(result.pop("details", {}))
        figures.update(result)
    return figures, details, failed


def _value(name: str, value: float) -> str:
    unit = FIGURES.get(name, ("", None, None))[0]
    if unit == "B":
        return f"{value:,.0f} B ({value / 1024:.1f} KiB)"
    if unit == "x":
        return f"{value:.2f} x"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "%":
        return f"{value * 100:.2f} %"
    return f"{value:,.0f} {unit}"


def _verdict(name: str, value: float) -> tuple[str, str]:
    unit, comparison, target = FIGURES.get(name, ("", None, None))
    if comparison is None or target is None:
        return "", ""
    shown = {"B": f"{target / 1024:g} KiB", "ms": f"{target:g} ms", "x": f"{target:g} x",
             "%": f"{target * 100:g} %"}[unit]
    met = {"<": value < target, "<=": value <= target, ">=": value >= target}[comparison]
    return f"{comparison} {shown}", "met" if met else "MISSED"


def table(figures: dict[str, Any]) -> str:
    rows = [("figure", "value", "target", "")]
    rows += [(name, _value(name, value), *_verdict(name, value)) for name, value in figures.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in rows)


def main(argv: list[str]) -> int:
    args = parse(argv)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    fd_limit = servers.raise_fd_limit()
    servers.yardstick_path()  # fail now, clearly, if ../shared is missing
    folder = Path(tempfile.mkdtemp(prefix="serveline-bench-"))
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    print(f"bench {' '.join(argv)}: {os.cpu_count()} cores, open-files limit {fd_limit}, "
          f"logs in {folder}", flush=True)
    bench = None
    try:
        with servers.postgres(folder) as admin_dsn:
            bench = Bench(admin_dsn, folder, args.quick, args.clients)
            figures, details, failed = uvloop.run(run(names, bench))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"\ninterrupted; everything started was stopped; logs kept in {folder}",
              file=sys.stderr)
        return 130

    print("\n" + table(figures))
    if bench.notes:
        print("\nnotes:", *(f"  - {note}" for note in bench.notes), sep="\n")
    if args.json:
        report = {"scenario": args.scenario, "quick": args.quick, "started_at": started_at,
                  "machine": {"cores": os.cpu_count(), "open_files_limit": fd_limit,
                              "client_processes": args.clients},
                  **figures,
                  "targets": {name: f"{comparison} {target}" for name, (_, comparison, target)
                              in FIGURES.items() if comparison and name in figures},
                  "details": details, "notes": bench.notes, "failed": failed}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    if failed or bench.notes or args.keep_logs:
        print(f"server logs kept in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
