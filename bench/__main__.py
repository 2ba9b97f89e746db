"""`python -m bench <scenario>... [--quick] [--duration S] [--json out.json] [--html out.html]`.

Serveline beside the yardstick. Starts an embedded PostgreSQL and the servers a
scenario needs, runs it with a line of progress per phase, stops everything,
prints a table and writes the JSON and HTML reports (bench/report.py). What
each figure means: bench/README.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import uvloop

from bench import busy, history, http, observability, replica, report, servers, ws
from bench.servers import Bench, Failed

SCENARIOS = {**ws.SCENARIOS, **observability.SCENARIOS, **http.SCENARIOS, **busy.SCENARIOS,
             **history.SCENARIOS, **replica.SCENARIOS}  # a new module's scenarios join here

# figure: (unit, comparison, target); figures without a target are context, never judged.
FIGURES: dict[str, tuple[str, str | None, float | None]] = {
    "fanout_deliveries_per_s": ("deliveries/s", None, None),
    "blast_deliveries_per_s": ("deliveries/s", None, None),
    "ratio_fanout_vs_blast": ("x", ">=", 3.0),
    "idle_bytes_per_socket": ("B", "<=", 16 * 1024),
    "yardstick_idle_bytes_per_socket": ("B", None, None),
    "ratio_idle_vs_bare": ("x", None, None),
    "resume_1000_ms": ("ms", "<", 50.0),
    "observe_cpu_ratio": ("x", "<=", 1.05),
    "observe_rps_ratio": ("x", None, None),
    "observe_on_cpu_us_per_request": ("us/request", None, None),
    "observe_off_cpu_us_per_request": ("us/request", None, None),
    "observe_hot_path_us": ("us/request", None, None),
    "observe_hot_path_share": ("%", "<=", 0.01),
    "menu_cached_rps": ("requests/s", None, None),
    "yardstick_hello_rps": ("requests/s", None, None),
    "ratio_menu_vs_hello": ("x", ">=", 0.7),
    "open_orders_rps": ("requests/s", None, None),
    "yardstick_db_rps": ("requests/s", None, None),
    "ratio_orders_vs_db": ("x", ">=", 0.8),
    "order_create_rps": ("requests/s", None, None),
    "yardstick_write_rps": ("requests/s", None, None),
    "ratio_order_vs_write": ("x", ">=", 0.5),
    "order_create_p99_ms": ("ms", "<", 50.0),
    "yardstick_write_p99_ms": ("ms", None, None),
    "cold_start_s": ("s", "<", 3.0),
    "api_p50_ms": ("ms", None, None),
    "api_p95_ms": ("ms", None, None),
    "api_p99_ms": ("ms", "<", 50.0),
    "order_to_kitchen_p99_ms": ("ms", "<", 25.0),
    "events_lost": ("events", "<=", 0),  # a count: "<= 0" is "== 0"
    "events_duplicated": ("events", "<=", 0),
    "errors": ("requests", "<=", 0),
    "conflicts": ("requests", None, None),
    "busy_requests_per_s": ("requests/s", None, None),
    "history_order_items": ("rows", None, None),
    "ratio_open_orders_vs_db_before": ("x", None, None),
    "ratio_open_orders_vs_db_after": ("x", None, None),
    "ratio_open_tickets_vs_db_before": ("x", None, None),
    "ratio_open_tickets_vs_db_after": ("x", None, None),
    "history_hot_read_ratio": ("x", ">=", 0.9),  # after / before, the worse of the two reads
    "history_seed_rows_per_s": ("rows/s", None, None),
    "replica_read_share": ("%", None, None),
    "replica_lag_max_s": ("s", None, None),
    "replica_lag_p50_s": ("s", None, None),
    "replica_min_seq_fallbacks": ("reads", None, None),
    "replica_read_your_writes_violations": ("reads", "<=", 0),
    "replica_reads_per_s": ("requests/s", None, None),
}


# ratio: (numerator figure, its label, denominator figure, its label); the report draws
# the two side by side, with the target (if any) as a multiple of the denominator.
COMPARED: dict[str, tuple[str, str, str, str]] = {
    "ratio_fanout_vs_blast": ("fanout_deliveries_per_s", "Serveline fan-out",
                              "blast_deliveries_per_s", "yardstick blast"),
    "ratio_idle_vs_bare": ("idle_bytes_per_socket", "Serveline (signed in, subscribed)",
                           "yardstick_idle_bytes_per_socket", "yardstick (bare socket)"),
    "ratio_menu_vs_hello": ("menu_cached_rps", "Serveline GET menu (cached)",
                            "yardstick_hello_rps", "yardstick GET /hello"),
    "ratio_orders_vs_db": ("open_orders_rps", "Serveline GET open orders",
                           "yardstick_db_rps", "yardstick GET /db"),
    "ratio_order_vs_write": ("order_create_rps", "Serveline POST orders",
                             "yardstick_write_rps", "yardstick POST /write"),
    "observe_cpu_ratio": ("observe_on_cpu_us_per_request", "metrics on",
                          "observe_off_cpu_us_per_request", "metrics off"),
}
# `all` runs the registered scenarios in this order; any not named here run after them.
ORDER = ("cold_start", "reads", "writes", "fanout", "idle", "resume", "busy_hour", "observe")
ALIASES = {"memory": "idle"}  # the first name of `idle`


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Serveline beside the yardstick, measured in one run "
        "on this machine; prints a table and writes JSON and HTML reports (bench/README.md).")
    parser.add_argument("scenario", nargs="+", choices=[*SCENARIOS, *ALIASES, "all"],
                        help="one or more scenarios, or all of them in turn")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a first look")
    parser.add_argument("--duration", type=float, metavar="S",
                        help="seconds each timed scenario runs (default: each scenario's own)")
    parser.add_argument("--json", metavar="PATH", type=Path, help="write the JSON report here")
    parser.add_argument("--html", metavar="PATH", type=Path, help="write the HTML report here")
    parser.add_argument("--clients", type=int, default=4, metavar="N",
                        help="client processes holding the sockets (default 4)")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the temp folder with the servers' logs")
    args = parser.parse_args(argv)
    if args.duration is not None and args.duration <= 0:
        parser.error("--duration must be more than 0 seconds")
    return args


def scenario_names(asked: list[str]) -> list[str]:
    """The scenarios to run, in order, each once: `all` expands to every registered one."""
    everything = [n for n in ORDER if n in SCENARIOS] + [n for n in SCENARIOS if n not in ORDER]
    names: list[str] = []
    for name in asked:
        for one in everything if name == "all" else [ALIASES.get(name, name)]:
            if one not in names:
                names.append(one)
    return names


async def run(names: list[str], bench: Bench) -> tuple[dict[str, Any], dict[str, Any],
                                                       list[str], dict[str, Any]]:
    """Each scenario in turn; a failed one is noted (with its servers' log lines) and skipped."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    figures: dict[str, Any] = {}
    details: dict[str, Any] = {}
    failed: list[str] = []
    timing: dict[str, Any] = {}
    for index, name in enumerate(names, 1):
        bench.progress(f"== {name} ({index} of {len(names)})")
        began = bench.elapsed()
        first_server = len(bench.started)
        try:
            result = await SCENARIOS[name](bench)
        except Exception as error:  # noqa: BLE001 - noted; the other scenarios still run
            if not isinstance(error, Failed | RuntimeError | TimeoutError):
                traceback.print_exc()
            failed.append(name)
            timing[name] = {"status": "failed", "seconds": round(bench.elapsed() - began, 1),
                            "error": f"{type(error).__name__}: {error}"}
            bench.note(f"{name} FAILED: {error}")
            for server in bench.started[first_server:]:
                lines = server.noteworthy()
                print(f"  {server.name} log {server.log}: {len(lines)} warning/error lines",
                      *(f"    {line}" for line in lines[:30]), sep="\n", flush=True)
            continue
        details.update(result.pop("details", {}))
        figures.update(result)
        timing[name] = {"status": "ok", "seconds": round(bench.elapsed() - began, 1)}
        bench.progress(f"{name} done in {timing[name]['seconds']:.1f} s")
    return figures, details, failed, timing


def table(figures: dict[str, Any]) -> str:
    rows = [("figure", "value", "target", "")]
    for name, value in figures.items():
        unit, comparison, target = FIGURES.get(name, ("", None, None))
        verdict = ("", "")
        if comparison and target is not None:
            met = report.judge(value, unit, comparison, target)["met"]
            verdict = (f"{comparison} {report.format_target(target, unit)}",
                       "met" if met else "MISSED")
        rows.append((name, report.format_value(value, unit), *verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in rows)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    began = time.monotonic()
    args = parse(argv)
    names = scenario_names(args.scenario)
    fd_limit = servers.raise_fd_limit()
    servers.yardstick_path()  # fail now, clearly, if the baseline is missing
    folder = Path(tempfile.mkdtemp(prefix="serveline-bench-"))
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    machine = report.machine(fd_limit, args.clients)
    print(f"bench {' '.join(argv)}: {', '.join(names)}; {machine['cores']} cores, load "
          f"{machine['load_average_before'][0]:.2f}, open-files limit {fd_limit}, "
          f"logs in {folder}", flush=True)
    bench = None
    try:
        signal.signal(signal.SIGTERM, _interrupt)  # outside the loop too: PostgreSQL is stopped
        with servers.postgres(folder) as admin_dsn:
            bench = Bench(admin_dsn, folder, args.quick, args.clients, args.duration,
                          clock=began)
            figures, details, failed, timing = uvloop.run(run(names, bench))
            signal.signal(signal.SIGTERM, _interrupt)  # the loop's handler went with the loop
    except (KeyboardInterrupt, asyncio.CancelledError):
        if not (folder / "pg" / "postmaster.pid").exists():  # interrupted while it started
            shutil.rmtree(folder / "pg", ignore_errors=True)
        print(f"\ninterrupted; everything started was stopped; logs kept in {folder}",
              file=sys.stderr)
        return 130

    print("\n" + table(figures))
    if bench.notes:
        print("\nnotes:", *(f"  - {note}" for note in bench.notes), sep="\n")
    document = report.build(
        asked=args.scenario, quick=args.quick, duration=args.duration, started_at=started_at,
        seconds=time.monotonic() - began, figures=figures, figure_meta=FIGURES, compared=COMPARED,
        details=details, notes=bench.notes, failed=failed, scenarios=timing,
        machine_info=machine)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    if args.html:
        report.write_html(document, args.html)
        print(f"wrote {args.html}")
    if failed or bench.notes or args.keep_logs:
        print(f"server logs kept in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
