"""SQL statements per request, and a warning for each slow one.

asyncpg calls our logger for every statement a pooled connection runs (BEGIN and
COMMIT included), from the context of the task that ran it, so a context
variable set per request attributes each statement to its request.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from contextvars import ContextVar

from aiohttp import web
from asyncpg.connection import LoggedQuery

from server.auth import Handler
from server.keys import QUERY_LOG, REQUEST_ID

log = logging.getLogger("serveline.sql")
KEEP = 1024  # recent requests whose counts can be read back


class Counter:
    __slots__ = ("statements",)

    def __init__(self) -> None:
        self.statements = 0


_current: ContextVar[Counter | None] = ContextVar("sql_counter", default=None)


class QueryLog:
    def __init__(self, slow_ms: float) -> None:
        self.slow_seconds = slow_ms / 1000
        self._recent: OrderedDict[str, Counter] = OrderedDict()

    def record(self, query: LoggedQuery) -> None:
        counter = _current.get()
        if counter is not None:
            counter.statements += 1
        if query.elapsed >= self.slow_seconds:
            log.warning("slow SQL (%.1f ms): %s", query.elapsed * 1000,
                        " ".join(query.query.split())[:500])

    def begin(self, request_id: str) -> Counter:
        counter = Counter()
        self._recent[request_id] = counter
        while len(self._recent) > KEEP:
            self._recent.popitem(last=False)
        _current.set(counter)
        return counter

    def statements_of(self, request_id: str) -> int | None:
        """How many SQL statements a recent request ran (None if unknown or long gone)."""
        counter = self._recent.get(request_id)
        return None if counter is None else counter.statements


@web.middleware
async def count_queries(request: web.Request, handler: Handler) -> web.StreamResponse:
    request.app[QUERY_LOG].begin(request[REQUEST_ID])
    return await handler(request)
