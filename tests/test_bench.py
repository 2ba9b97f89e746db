"""The bench tool runs end to end and writes reports of the documented shape (never its speed).

The smoke run is `python -m bench` in a subprocess with tiny settings: it starts its
own embedded PostgreSQL in a temp folder of its own (a unix socket there, no port
shared with the suite's cluster). Skip it with SERVELINE_SKIP_BENCH_SMOKE=1.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import report

ROOT = Path(__file__).resolve().parents[1]
SMOKE_TIMEOUT_SECONDS = 120

smoke = pytest.mark.skipif(os.environ.get("SERVELINE_SKIP_BENCH_SMOKE") == "1",
                           reason="SERVELINE_SKIP_BENCH_SMOKE=1")


def run_bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict[str, Any], str]:
    out_json, out_html = tmp_path / "report.json", tmp_path / "report.html"
    result = subprocess.run([sys.executable, "-m", "bench", *args, "--json", str(out_json),
                             "--html", str(out_html)], cwd=ROOT, capture_output=True, text=True,
                            timeout=SMOKE_TIMEOUT_SECONDS, check=False)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result, json.loads(out_json.read_text()), out_html.read_text()


def assert_report_shape(document: dict[str, Any], figures: list[str]) -> None:
    for key in ("figures", "targets", "details", "notes", "machine", "started_at", "seconds"):
        assert key in document, key
    assert document["failed"] == []
    for name in figures:
        assert isinstance(document["figures"][name], float | int), name
        assert document[name] == document["figures"][name]  # the first format's top-level copy
    for name, target in document["targets"].items():
        assert set(target) >= {"value", "target", "comparison", "met"}, name
        assert isinstance(target["met"], bool)
    machine = document["machine"]
    assert machine["cores"] >= 1 and len(machine["load_average_before"]) == 3
    assert len(machine["load_average_after"]) == 3 and machine["python"]


BUSY_HOUR_FIGURES = ["api_p50_ms", "api_p95_ms", "api_p99_ms", "order_to_kitchen_p99_ms",
                     "events_lost", "events_duplicated", "errors", "busy_requests_per_s"]


@pytest.mark.slow
@smoke
def test_a_tiny_bench_run_writes_both_reports_and_loses_no_event(tmp_path: Path) -> None:
    # --quick with --duration under 10 s: busy_hour shrinks to 2 restaurants for 3 seconds.
    result, document, page = run_bench(tmp_path, "resume", "busy_hour", "--quick",
                                       "--duration", "3")
    assert_report_shape(document, ["resume_1000_ms", *BUSY_HOUR_FIGURES])
    assert document["figures"]["events_lost"] == 0
    assert document["targets"]["events_lost"]["met"] is True
    assert document["details"]["resume"]["events"] == 1000
    assert document["details"]["busy_hour"]["routes"]
    assert {name: entry["status"] for name, entry in document["scenarios"].items()} == {
        "resume": "ok", "busy_hour": "ok"}
    assert document["quick"] is True and document["duration"] == 3
    for name in ["resume_1000_ms", *BUSY_HOUR_FIGURES]:
        assert name in page
    assert "<script" not in page.lower() and "Latency percentiles" in page
    assert "resume 1:" in result.stdout and "== busy_hour (2 of 2)" in result.stdout


SHAPED = {
    "scenario": "all", "quick": True, "duration": None, "started_at": "2026-01-01T12:00:00+0000",
    "seconds": 200.0, "failed": ["writes"], "notes": ["writes FAILED: <b>not html</b>"],
    "scenarios": {"fanout": {"status": "ok", "seconds": 12.0}},
    "figures": {"fanout_deliveries_per_s": 200_000.0, "blast_deliveries_per_s": 100_000.0,
                "ratio_fanout_vs_blast": 2.0, "ratio_other_vs_bare": 0.9,
                "idle_bytes_per_socket": 12_000.0},
    "units": {"fanout_deliveries_per_s": "deliveries/s", "blast_deliveries_per_s": "deliveries/s",
              "ratio_fanout_vs_blast": "x", "ratio_other_vs_bare": "x",
              "idle_bytes_per_socket": "B"},
    "targets": {"ratio_fanout_vs_blast": report.judge(2.0, "x", ">=", 3.0),
                "idle_bytes_per_socket": report.judge(12_000.0, "B", "<=", 16384)},
    "compared": {"ratio_fanout_vs_blast": {"ours": "fanout_deliveries_per_s", "ours_label": "fan-out",
                                           "theirs": "blast_deliveries_per_s",
                                           "theirs_label": "blast"}},
    "details": {
        "busy_hour": {"routes": {"GET /floor": {"percentiles": {"p50": 3.0, "p95": 7.0, "p99": 9.0}},
                                 "POST /orders": {"count": 9, "p50_ms": 8.0, "p99_ms": 41.0}},
                      "throughput": [[0, 100.0], [1, 120.0], [2, 90.0]]},
        "reads": {"serveline": {"percentiles": {"p50": 1.0, "p99": 4.0}},
                  "yardstick": {"percentiles": {"p50": 0.5, "p99": 2.0}},
                  "throughput": {"serveline": [[0, 5.0], [1, 6.0]], "yardstick": [[0, 9.0], [1, 8.0]]}},
    },
    "machine": {"cores": 2, "load_average_before": [1.0, 1.0, 1.0],
                "load_average_after": [1.5, 1.0, 1.0], "versions": {"aiohttp": "3"}},
}


def test_the_html_report_draws_every_documented_shape_offline() -> None:
    page = report.html(SHAPED)
    assert "<script" not in page.lower() and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert "✘ missed" in page and "✔ met" in page  # verdicts in words, not only colour
    assert "&lt;b&gt;not html&lt;/b&gt;" in page
    groups = {title: group for title, _, group in report.latency_groups(SHAPED["details"])}
    assert list(groups) == ["busy_hour › routes", "reads"]
    assert groups["busy_hour › routes"] == [
        ("GET /floor", [("p50", 3.0), ("p95", 7.0), ("p99", 9.0)]),
        ("POST /orders", [("p50", 8.0), ("p99", 41.0)])]
    assert [label for label, _ in groups["reads"]] == ["serveline", "yardstick"]
    charts = dict(report.throughput_charts(SHAPED["details"]))
    assert list(charts["reads"]) == ["serveline", "yardstick"] and list(charts["busy_hour"]) == [
        "busy_hour"]
    assert page.count("<svg") == 2 + 2 + 2  # two ratios, two latency charts, two throughput charts
    assert "target: ≥ 3 × blast" in page
