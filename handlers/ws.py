"""The restaurant's WebSocket: sign in, then subscribe, receive events, acknowledge (docs/protocol.md)."""
from __future__ import annotations

import asyncio

import msgspec
from aiohttp import WSMsgType, web

from server.auth import bearer_token, public
from server.errors import ApiError, forbidden
from server.identity import identify, restaurant_role
from server.keys import CONFIG, HUB, POOL
from server.openapi import documented
from server.realtime import commands, messages
from server.realtime.connection import Connection
from server.realtime.const import (
    AUTH_TIMEOUT_SECONDS,
    CLOSE_BINARY,
    CLOSE_NOT_FOUND,
    CLOSE_POLICY,
    CLOSE_UNAUTHORIZED,
    INVALID_FORMAT,
    MAX_ERRORS_IN_A_ROW,
    MAX_FRAME_BYTES,
    UNKNOWN_TYPE,
)
from store import events
from store.credentials import Principal

routes = web.RouteTableDef()


async def _allowed(request: web.Request, token: str) -> tuple[Principal, int, str]:
    """The caller's principal, restaurant and role here, or the HTTP error it earns."""
    principal = await identify(request.app, token)
    restaurant_id, role = restaurant_role(principal, request.match_info["rid"])
    if principal.kind == "api_key" and "events" not in principal.scopes:
        raise forbidden("this API key lacks the events scope")
    return principal, restaurant_id, role


async def _first_message_auth(request: web.Request,
                              ws: web.WebSocketResponse) -> tuple[Principal, int, str] | None:
    """Wait up to 5 s for {"type": "auth"}; anything else closes with 4001 (or 4004)."""
    try:
        msg = await ws.receive(timeout=AUTH_TIMEOUT_SECONDS)
        if msg.type != WSMsgType.TEXT:
            raise ValueError
        auth = messages.decoder.decode(msg.data)
        if not isinstance(auth, messages.Auth):
            raise ValueError
        return await _allowed(request, auth.token)
    except ApiError as error:
        code = CLOSE_NOT_FOUND if error.status == 404 else CLOSE_UNAUTHORIZED
        await ws.close(code=code, message=error.message.encode()[:120])
    except (TimeoutError, ValueError, msgspec.MsgspecError):
        await ws.close(code=CLOSE_UNAUTHORIZED, message=b"sign in first: send {\"type\": \"auth\"}")
    return None


def _decode_error(data: bytes) -> bytes:
    try:
        kind = messages.kind_decoder.decode(data).type
    except msgspec.MsgspecError:
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
        except msgspec.MsgspecError:
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
    token, _ = bearer_token(request)
    who = await _allowed(request, token) if token else None
    config, hub = request.app[CONFIG], request.app[HUB]
    ws = web.WebSocketResponse(heartbeat=config.ws_heartbeat_seconds, max_msg_size=MAX_FRAME_BYTES,
                               compress=False, decode_text=False)
    await ws.prepare(request)
    who = who or await _first_message_auth(request, ws)
    if who is None:
        return ws
    principal, restaurant_id, role = who
    device_id = principal.id if principal.kind == "device" else None
    conn = Connection(ws, request.transport, request.writer, restaurant_id, role, device_id,
                      config.ws_send_buffer_bytes)
    try:
        where = await events.position(request.app[POOL], restaurant_id)
        conn.send(messages.welcome(role, device_id, str(where["epoch"]), where["seq"],
                                   config.ws_heartbeat_seconds))
        await _serve(commands.Session(conn=conn, hub=hub, pool=request.app[POOL]))
    finally:
        hub.leave(conn, stale=isinstance(ws.exception(), asyncio.TimeoutError))
        await conn.stop()
    return ws
