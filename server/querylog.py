"""SQL statements per request, timing per statement pattern, and a log line for each slow one.

asyncpg calls our logger for every statement a pooled connection runs (BEGIN and
COMMIT included), on the next loop turn but in a copy of the context of the task
that ran it, so a context variable set per request attributes each statement to
its request. Statements are grouped by pattern (the SQL with literals replaced by
`?`; asyncpg's parameters are `$n` already): calls, total, max and a ring of
recent timings for p50/p95. The cost is a dict lookup and a few additions per
statement; EXPLAIN and pg_stat_statements are read only when someone asks.
"""
from __future__ import annotations

import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextvars import ContextVar

import asyncpg
import msgspec
from asyncpg.connection import LoggedQuery

from store import diagnostics

log = logging.getLogger("serveline.sql")
KEEP = 1024  # recent requests whose counts can be read back
RING = 128  # recent timings kept per pattern, for its percentiles
MAX_PATTERNS = 500  # further patterns are pooled under OTHER (dynamic SQL must not grow memory)
MAX_TEXTS = 2000  # raw statement texts remembered with their pattern
PATTERN_CHARS = 2000
OTHER = "<other statements>"
EXPLAINED = 10  # slow patterns explained per report, at most
PLAN_TTL_SECONDS = 300.0

_LITERAL = re.compile(r"'(?:[^']|'')*'|(?<![\w$.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b")
_LIST = re.compile(r"\(\?(?:\s*,\s*\?)+\)")


def normalise(sql: str) -> str:
    """The statement's pattern: whitespace collapsed, string and number literals as `?`."""
    text = _LIST.sub("(?, …)", _LITERAL.sub("?", " ".join(sql.split())))
    return text if len(text) <= PATTERN_CHARS else text[:PATTERN_CHARS] + "…"


class Counter:
    __slots__ = ("request_id", "statements")

    def __init__(self, request_id: str | None = None) -> None:
        self.statements = 0
        self.request_id = request_id


QUIET = Counter()  # the analyzer's own EXPLAINs run under this one and are not recorded
_current: ContextVar[Counter | None] = ContextVar("sql_counter", default=None)


class Pattern:
    __slots__ = (
        "calls",
        "critical",
        "errors",
        "last_slow_request_id",
        "max",
        "recent",
        "sample",
        "slow",
        "text",
        "total",
    )

    def __init__(self, text: str, sample: str) -> None:
        self.text = text
        self.sample = sample  # one raw statement, for EXPLAIN
        self.calls = self.errors = self.slow = self.critical = 0
        self.total = self.max = 0.0
        self.recent = [0.0] * RING
        self.last_slow_request_id: str | None = None


class QueryPattern(msgspec.Struct, frozen=True):
    pattern: str
    calls: int
    errors: int
    total_ms: float
    mean_ms: float
    p50_ms: float  # of the last 128 calls
    p95_ms: float
    max_ms: float
    slow: int  # calls at or over slow_query_ms
    critical: int  # calls at or over critical_query_ms
    last_slow_request_id: str | None


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list."""
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


class QueryLog:
    def __init__(self, slow_ms: float, critical_ms: float = 500.0, *, patterns: bool = True) -> None:
        self.slow_ms, self.critical_ms = slow_ms, critical_ms
        self.slow_seconds = slow_ms / 1000
        self.critical_seconds = critical_ms / 1000
        self.keep_patterns = patterns
        self.statements = self.slow = self.critical = 0
        self.seconds = 0.0
        self._recent: OrderedDict[str, Counter] = OrderedDict()
        self._patterns: dict[str, Pattern] = {}
        self._by_text: dict[str, Pattern] = {}  # raw SQL -> its pattern (constants hash once)
        self._plans: dict[str, tuple[float, list[diagnostics.SeqScan], str | None]] = {}

    # Hot path ---------------------------------------------------------------

    def record(self, query: LoggedQuery) -> None:
        counter = _current.get()
        if counter is QUIET:
            return
        if counter is not None:
            counter.statements += 1
        elapsed = query.elapsed
        self.statements += 1
        self.seconds += elapsed
        pattern = None
        if self.keep_patterns:
            pattern = self._by_text.get(query.query) or self._learn(query.query)
            pattern.recent[pattern.calls % RING] = elapsed
            pattern.calls += 1
            pattern.total += elapsed
            pattern.max = max(pattern.max, elapsed)
            if query.exception is not None:
                pattern.errors += 1
        if elapsed >= self.slow_seconds:
            self._slow(query, elapsed, counter, pattern)

    def _learn(self, sql: str) -> Pattern:
        text = normalise(sql)
        pattern = self._patterns.get(text)
        if pattern is None:
            if len(self._patterns) >= MAX_PATTERNS:
                text = OTHER
                pattern = self._patterns.get(OTHER)
            if pattern is None:
                pattern = self._patterns[text] = Pattern(text, sql)
        if len(self._by_text) < MAX_TEXTS:
            self._by_text[sql] = pattern
        return pattern

    def _slow(self, query: LoggedQuery, elapsed: float, counter: Counter | None,
              pattern: Pattern | None) -> None:
        request_id = counter.request_id if counter is not None else None
        critical = elapsed >= self.critical_seconds
        self.slow += 1
        if critical:
            self.critical += 1
        if pattern is not None:
            pattern.slow += 1
            pattern.critical += critical
            pattern.last_slow_request_id = request_id or pattern.last_slow_request_id
        text = pattern.text if pattern is not None and pattern.text != OTHER else normalise(query.query)
        log.log(logging.ERROR if critical else logging.WARNING, "%s SQL (%.1f ms) [%s]: %s",
                "critical" if critical else "slow", elapsed * 1000, request_id or "-", text[:500],
                extra={"request_id": request_id, "elapsed_ms": round(elapsed * 1000, 3),
                       "pattern": text})

    # Requests ---------------------------------------------------------------

    def begin(self, request_id: str) -> Counter:
        counter = Counter(request_id)
        self._recent[request_id] = counter
        while len(self._recent) > KEEP:
            self._recent.popitem(last=False)
        _current.set(counter)
        return counter

    def statements_of(self, request_id: str) -> int | None:
        """How many SQL statements a recent request ran (None if unknown or long gone)."""
        counter = self._recent.get(request_id)
        return None if counter is None else counter.statements

    # Reports ----------------------------------------------------------------

    def top(self, limit: int = 20) -> list[QueryPattern]:
        """The patterns that took the most time in total, most first."""
        ranked = sorted(self._patterns.values(), key=lambda p: p.total, reverse=True)[:limit]
        return [_summary(p) for p in ranked if p.calls]

    def pattern(self, text: str) -> QueryPattern | None:
        found = self._patterns.get(text)
        return _summary(found) if found is not None and found.calls else None

    async def suggestions(self, pool: asyncpg.Pool,
                          limit: int = 20) -> tuple[list[diagnostics.SeqScan], list[str]]:
        """Sequential scans of large tables in the plans of the slow top patterns, and notes.

        Plans are generic (they hold for any parameters), never executed, and kept for a
        few minutes, so asking often costs PostgreSQL little.
        """
        slow = [p for p in sorted(self._patterns.values(), key=lambda p: p.total, reverse=True)[:limit]
                if p.slow and p.text != OTHER and diagnostics.explainable(p.sample)][:EXPLAINED]
        found: list[diagnostics.SeqScan] = []
        notes: list[str] = []
        if not slow:
            return found, notes
        now = time.monotonic()
        with unrecorded():
            async with pool.acquire() as conn:
                for pattern in slow:
                    cached = self._plans.get(pattern.text)
                    if cached is None or now - cached[0] > PLAN_TTL_SECONDS:
                        scans = await diagnostics.seq_scans(conn, pattern.sample)
                        note = f"no plan for: {pattern.text[:120]}" if scans is None else None
                        cached = self._plans[pattern.text] = (now, [
                            msgspec.structs.replace(scan, pattern=pattern.text) for scan in scans or ()],
                            note)
                    found += cached[1]
                    notes += [cached[2]] if cached[2] else []
        return found, notes


def _summary(p: Pattern) -> QueryPattern:
    ordered = sorted(p.recent[:min(p.calls, RING)])
    return QueryPattern(
        pattern=p.text, calls=p.calls, errors=p.errors, total_ms=round(p.total * 1000, 3),
        mean_ms=round(p.total * 1000 / p.calls, 3), p50_ms=round(percentile(ordered, 0.5) * 1000, 3),
        p95_ms=round(percentile(ordered, 0.95) * 1000, 3), max_ms=round(p.max * 1000, 3),
        slow=p.slow, critical=p.critical, last_slow_request_id=p.last_slow_request_id)


@contextlib.contextmanager
def unrecorded() -> Iterator[None]:
    """Statements run inside are not counted (the analyzer's own EXPLAINs and catalogue reads)."""
    token = _current.set(QUIET)
    try:
        yield
    finally:
        _current.reset(token)
