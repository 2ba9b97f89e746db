"""The restaurant's WebSocket: sign in, then subscribe, receive events, acknowledge (docs/protocol.md)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import asyncpg
from aiohttp import WSMsgType, web

from server.auth import bearer_token, public, same_origin
from server.errors import ApiError, forbidden
from server.identity import identify, restaurant_role
from server.keys import CONFIG, HUB, POOL, REVOCATIONS
from server.middlewares import UNAVAILABLE
from server.openapi import documented
from server.realtime import commands, messages
from server.realtime.connection import Connection
from server.realtime.const import (
    AUTH_TIMEOUT_SECONDS,
    CLOSE_BINARY,
    CLOSE_NOT_FOUND,
    CLOSE_POLICY,
    CLOSE_RESUME,
    CLOSE_UNAUTHORIZED,
    INVALID_FORMAT,
    MAX_ERRORS_IN_A_ROW,
    MAX_FRAME_BYTES,
    RECONNECT_JITTER_MS,
    UNKNOWN_TYPE,
)
from store import events
from store.credentials import Principal

routes = web.RouteTableDef()
log = logging.getLogger("serveline.ws")

# Once upgraded, no HTTP answer can go out (the errors middleware's 503 would land in the socket's
# stream as garbage): a database that is away or too slow asks the client to come back instead.
DATABASE_TROUBLE = (*UNAVAILABLE, asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError,
                    asyncpg.TransactionRollbackError)
DATABASE_AWAY = b"database unavailable: resume from your last seq"


def _come_back_later(restaurant: object, error: Exception) -> bytes:
    """The `reconnect` message (jittered, as on shutdown) for a socket the database failed."""
    log.warning("database unavailable on a socket of restaurant %s (%s: %s); asked it to resume "
                "later", restaurant, type(error).__name__, error)
    return messages.reconnect(random.randint(0, RECONNECT_JITTER_MS))


async def _allowed(request: web.Request, token: str) -> tuple[Principal, int, str]:
    """The caller's principal, restaurant and role here, or the HTTP error it earns."""
    principal = await identify(request.app, token)
    restaurant_id, role = restaurant_role(principal, request.match_info["rid"])
    if principal.kind == "api_key" and "events" not in principal.scopes:
        raise forbidden("this API key lacks the events scope")
    return principal, restaurant_id, role


async def _first_message_auth(request: web.Request,
                              ws: web.WebSocketResponse) -> tuple[Principal, int, str, str] | None:
    """Wait up to 5 s for {"type": "auth"}; anything else closes with 4001 (or 4004)."""
    try:
        msg = await ws.receive(timeout=AUTH_TIMEOUT_SECONDS)
        if msg.type != WSMsgType.TEXT:
            raise ValueError
        auth = messages.decoder.decode(msg.data)
        if not isinstance(auth, messages.Auth):
            raise ValueError  # noqa: TRY004 — caught below: not an auth message
        return (*await _allowed(request, auth.token), auth.token)
    except ApiError as error:
        code = CLOSE_NOT_FOUND if error.status == 404 else CLOSE_UNAUTHORIZED
        await ws.close(code=code, message=error.message.encode()[:120])
    except (TimeoutError, *messages.UNREADABLE):
        await ws.close(code=CLOSE_UNAUTHORIZED, message=b"sign in first: send {\"type\": \"auth\"}")
    return None


def _decode_error(data: bytes) -> bytes:
    try:
        kind = messages.kind_decoder.decode(data).type
    except messages.UNREADABLE:
        return messages.error(INVALID_FORMAT, "send one JSON object with a \"type\"")
    if kind not in ("auth", "subscribe", "ack", "ping"):
        return messages.error(UNKNOWN_TYPE, f"unknown message type {kind!r}")
    return messages.error(INVALID_FORMAT, f"a {kind} message with wrong or missing fields")


async def _serve(session: commands.Session) -> None:
    """Read the client's messages until it goes; one error reply per bad message."""
    ws, errors_in_a_row = session.conn.ws, 0
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            await ws.close(code=CLOSE_BINARY, message=b"text frames only")
            return
        if msg.type != WSMsgType.TEXT:
            continue
        try:
            message = messages.decoder.decode(msg.data)
        except messages.UNREADABLE:
            errors_in_a_row += 1
            session.conn.send(_decode_error(msg.data))
            if errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
                await ws.close(code=CLOSE_POLICY, message=b"too many bad messages")
                return
            continue
        errors_in_a_row = 0
        await commands.HANDLERS[type(message)](session, message)


@routes.get("/api/v1/restaurants/{rid}/ws")
@public  # credentials are checked here: they may come in the first message
@documented(status=101)
async def websocket(request: web.Request) -> web.StreamResponse:
    """Upgrade to the restaurant's WebSocket (protocol: docs/protocol.md)."""
    token, via_cookie = bearer_token(request)
    if via_cookie and not same_origin(request):
        # Another site's page opening a socket with our cookie (cross-site WebSocket hijacking).
        raise forbidden("cross-site request refused")
    who = (*await _allowed(request, token), token) if token else None
    config, hub = request.app[CONFIG], request.app[HUB]
    ws = web.WebSocketResponse(heartbeat=config.ws_heartbeat_seconds, max_msg_size=MAX_FRAME_BYTES,
                               compress=False, decode_text=False)
    await ws.prepare(request)
    try:
        who = who or await _first_message_auth(request, ws)
    except DATABASE_TROUBLE as error:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(_come_back_later(request.match_info["rid"], error).decode())
            await ws.close(code=CLOSE_RESUME, message=DATABASE_AWAY)
        return ws
    if who is None:
        return ws
    principal, restaurant_id, role, token = who
    device_id = principal.id if principal.kind == "device" else None
    conn = Connection(ws, request.transport, request.writer, restaurant_id, role, device_id,
                      config.ws_send_buffer_bytes)
    session_ends = request.app[REVOCATIONS].watch(conn, token, principal)  # revoked: closed
    try:
        where = await events.position(request.app[POOL], restaurant_id)
        conn.send(messages.welcome(role, device_id, str(where["epoch"]), where["seq"],
                                   config.ws_heartbeat_seconds))
        await _serve(commands.Session(conn=conn, hub=hub, pool=request.app[POOL]))
    except DATABASE_TROUBLE as error:
        conn.send(_come_back_later(restaurant_id, error))
        conn.close_soon(CLOSE_RESUME, DATABASE_AWAY)
    finally:
        request.app[REVOCATIONS].forget(conn, session_ends)
        hub.leave(conn, stale=isinstance(ws.exception(), asyncio.TimeoutError))
        await conn.stop()
    return ws
