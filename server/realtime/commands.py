"""What a signed-in client may ask: subscribe (with replay or reset), ack, ping."""
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from server.realtime import messages
from server.realtime.connection import Connection
from server.realtime.const import (
    FAMILIES,
    FORBIDDEN_CHANNEL,
    NOT_SUBSCRIBED,
    REPLAY_BATCH,
    ROLE_CHANNELS,
    UNKNOWN_CHANNEL,
    family,
)
from server.realtime.hub import Hub
from store import events, snapshot

_CHANNEL = re.compile(r"^[a-z]+(:[a-z][a-z0-9_]{0,30})?$")


@dataclass(slots=True)
class Session:
    conn: Connection
    hub: Hub
    pool: asyncpg.Pool


def channel_problem(role: str, channels: list[str]) -> tuple[str, str] | None:
    """(error code, message) for the first channel this role may not follow, if any (the
    socket and the events feed share the rule)."""
    for channel in channels:
        if not _CHANNEL.match(channel) or family(channel) not in FAMILIES or (
                ":" in channel and family(channel) != "kitchen"):
            return UNKNOWN_CHANNEL, f"there is no channel {channel!r}"
        if family(channel) not in ROLE_CHANNELS.get(role, frozenset()):
            return FORBIDDEN_CHANNEL, f"a {role} may not subscribe to {channel!r}"
    return None


def needs_reset(given_epoch: str | None, since: int, epoch: str, seq: int,
                oldest: int | None) -> bool:
    """All or nothing: replay only when every event after `since` is still in the log."""
    if given_epoch != epoch or since > seq:
        return True
    return since < seq and (oldest is None or oldest > since + 1)


async def _replay(session: Session, channels: list[str]) -> None:
    conn = session.conn
    while True:
        rows = await events.replay(session.pool, conn.restaurant_id, conn.position, channels,
                                   REPLAY_BATCH)
        for row in rows:
            conn.send(messages.event(row["seq"], row["channel"], row["name"], row["at"].isoformat(),
                                     messages.raw(row["data"])))  # framed for this client alone
            conn.position = row["seq"]
            if conn.backlogged:
                await conn.drain()  # pace a long replay by what the client takes
        if len(rows) < REPLAY_BATCH:
            return


async def subscribe(session: Session, msg: messages.Subscribe) -> None:
    conn = session.conn
    channels = sorted(set(msg.channels))
    problem = channel_problem(conn.role, channels)
    if problem is not None:
        conn.send(messages.error(*problem))
        return
    await session.hub.join(conn)
    conn.channels = frozenset(channels)
    conn.pending = []  # live events wait here until the replay or reset is out
    try:
        where = await events.position(session.pool, conn.restaurant_id)
        epoch, seq = str(where["epoch"]), where["seq"]
        conn.send(messages.subscribed(channels, epoch, seq))
        replay = msg.since is not None and not needs_reset(msg.epoch, msg.since, epoch, seq,
                                                            where["oldest"])
        if msg.since is None:
            conn.position = seq
        elif not replay:
            epoch, seq, parts = await snapshot.take(session.pool, conn.restaurant_id, channels)
            conn.send(messages.reset(epoch, seq, parts))
            conn.position = seq
        else:
            conn.position = msg.since
        conn.acked = conn.position  # what the client holds now; receipts move it on
        if replay:
            await _replay(session, channels)
    finally:
        conn.go_live()


async def ack(session: Session, msg: messages.Ack) -> None:
    if not session.conn.channels:
        session.conn.send(messages.error(NOT_SUBSCRIBED, "subscribe before acknowledging"))
        return
    session.hub.acknowledge(session.conn, min(msg.seq, session.conn.position))


async def ping(session: Session, msg: messages.Ping) -> None:
    session.conn.send(messages.PONG)


async def already_signed_in(session: Session, msg: messages.Auth) -> None:
    """A second `auth` changes nothing: the connection keeps its first identity."""


HANDLERS: dict[type, Callable[[Session, object], Awaitable[None]]] = {
    messages.Subscribe: subscribe,
    messages.Ack: ack,
    messages.Ping: ping,
    messages.Auth: already_signed_in,
}
