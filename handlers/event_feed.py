"""The events feed: what the socket delivers, polled over HTTP by an integration.

`GET …/events?since=N` answers the events after seq N, in order, with the same bodies
and seqs as the socket's `event` messages, a page at a time (the last seq of a page is
the next `since`). The same all-or-nothing rule as a socket's resume holds: when events
after N are no longer all kept, or the database was replaced (another `epoch`), the
answer is 410 `reset_required` and the integration reads the current state afresh.
"""
from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
from aiohttp import web

from server.auth import MANAGERS, requires
from server.cache import min_seq
from server.errors import ApiError
from server.http import json_response, query_int, seq_headers
from server.keys import READS, RESTAURANT_ID, ROLE
from server.openapi import Query, documented
from server.realtime import messages
from server.realtime.commands import channel_problem, needs_reset
from server.realtime.const import FAMILIES
from store import events

routes = web.RouteTableDef()
DEFAULT_LIMIT, MOST = 100, 1000


class EventPage(msgspec.Struct, frozen=True):
    epoch: str
    seq: int  # the restaurant's seq when this page was read
    items: list[dict[str, Any]]  # the socket's event messages: type, seq, channel, name, at, data
    next_since: int  # pass as `since` for the next page
    more: bool  # True when events after next_since were already there


def _channels(request: web.Request) -> list[str]:
    raw = request.query.get("channels", "")
    channels = sorted({c for c in raw.split(",") if c}) or sorted(FAMILIES)
    problem = channel_problem(request[ROLE], channels)
    if problem is not None:
        code, message = problem
        raise ApiError(403 if code == "forbidden_channel" else 422, code, message,
                       [{"path": "query.channels", "message": message}])
    return channels


@routes.get("/api/v1/restaurants/{rid}/events")
@requires(MANAGERS, scope="events")
@documented(returns=EventPage, query=(Query("since", int), Query("epoch", str),
                                      Query("channels", str), Query("limit", int)))
async def event_feed(request: web.Request) -> web.Response:
    """The events after `since`; read on a replica when one is usable (the history is the same
    there, up to the seq the page reports)."""
    rid = request[RESTAURANT_ID]
    since = query_int(request, "since", required=True, high=2**62)
    limit = query_int(request, "limit", default=DEFAULT_LIMIT, low=1, high=MOST)
    channels = _channels(request)
    given = request.query.get("epoch")

    async def read_page(pool: asyncpg.Pool) -> tuple[tuple[asyncpg.Record, list | None], int]:
        where = await events.position(pool, rid)
        epoch = str(where["epoch"])
        if needs_reset(given or epoch, since, epoch, where["seq"], where["oldest"]):
            return (where, None), where["seq"]
        return (where, await events.replay(pool, rid, since, channels, limit + 1)), where["seq"]

    # The client has seen `since`: a replica behind it would wrongly answer 410, so it is at
    # least as fresh a read as the client's own Min-Seq.
    (where, rows), seq = await request.app[READS].run(read_page, max(min_seq(request), since))
    epoch = str(where["epoch"])
    if rows is None:
        raise ApiError(410, "reset_required",
                       f"the events after {since} are no longer all kept here (or the epoch "
                       "changed): read the current state, then follow from its seq",
                       [{"epoch": epoch, "seq": seq, "oldest_seq": where["oldest"]}])
    return json_response(_page(epoch, seq, since, rows, limit), headers=seq_headers(seq))


def _page(epoch: str, seq: int, since: int, rows: list[asyncpg.Record], limit: int) -> dict[str, Any]:
    page = rows[:limit]
    items = [msgspec.Raw(messages.event(row["seq"], row["channel"], row["name"],
                                        row["at"].isoformat(), messages.raw(row["data"])))
             for row in page]
    return {"epoch": epoch, "seq": seq, "items": items,
            # Past a full page, the next one starts after its last event; otherwise every
            # event up to `seq` on these channels is in this page (all committed before it
            # was read), so a feed of quiet channels moves on too.
            "next_since": page[-1]["seq"] if len(rows) > limit
            else max([seq, since] + [row["seq"] for row in page[-1:]]),
            "more": len(rows) > limit}
