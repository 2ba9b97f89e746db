"""Sizes of the fault scenarios (small in CI, bigger with `--soak`) and their figures."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from .processes import Cluster


class Scale(msgspec.Struct, frozen=True, kw_only=True):
    soak: bool
    screens: int  # sockets following the orders and kitchen channels
    writers: int  # iPads placing orders
    pace: float  # seconds between one writer's orders
    load_seconds: float  # load before and after each fault
    kills: int  # kill -9 rounds of run.py; instance kills with two instances
    outage_seconds: float  # PostgreSQL stopped this long
    outages: int
    flood: int  # sockets reconnecting at once after a restart
    crowd_processes: int  # client processes holding them


CI = Scale(soak=False, screens=20, writers=4, pace=0.05, load_seconds=1.5, kills=1,
           outage_seconds=3.0, outages=1, flood=300, crowd_processes=2)
SOAK = Scale(soak=True, screens=60, writers=8, pace=0.02, load_seconds=8.0, kills=4,
             outage_seconds=10.0, outages=2, flood=1000, crowd_processes=4)


@pytest.fixture
def scale(request: pytest.FixtureRequest) -> Scale:
    return SOAK if request.config.getoption("--soak", default=False) else CI


@pytest.fixture
def figures(record_property: Callable[[str, Any], None]) -> Callable[..., None]:
    """`figures("scenario", faults=1, …)`: one line on stdout (pytest -s), a property in the
    JUnit report, and a JSON line in $SERVELINE_FAULTS_FIGURES when that is set."""
    def report(scenario: str, **values: Any) -> None:
        shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in values.items()}
        print(f"\nFAULTS {scenario}: " + " ".join(f"{k}={v}" for k, v in shown.items()), flush=True)
        record_property("figures", shown)
        path = os.environ.get("SERVELINE_FAULTS_FIGURES")
        if path:
            with open(path, "a") as out:
                out.write(json.dumps({"scenario": scenario, **shown}) + "\n")
    return report


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary folder with a short path (PostgreSQL's socket path must stay short),
    removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="sl-faults-") as folder:
        yield Path(folder)


@pytest.fixture
def cluster(short_tmp: Path) -> Iterator[Cluster]:
    """A PostgreSQL of the test's own, started; stopped (whatever happened) at the end."""
    pg = Cluster(short_tmp)
    try:
        pg.start()
        yield pg
    finally:
        pg.close()
