"""Bad input on the WebSocket: random, oversized, binary, truncated, invalid UTF-8 and deeply
nested frames, unknown types, floods, silent and deaf peers. Each gets what docs/protocol.md
says (an `error` message or a close code), while another socket keeps receiving events,
/api/health keeps answering fast, and the server's memory stays bounded.

The server runs in this process, so its memory is this process's RSS.
"""
from __future__ import annotations

import asyncio
import random
import time

import msgspec
import psutil
import pytest
from aiohttp import WSMsgType
from conftest import Socket, bearer
from test_ws_basics import create_order
from test_ws_resilience import emit, raw_silent_peer, subscribed_socket

from server.keys import HUB, POOL
from server.realtime import const

MiB = 1024 * 1024
NESTED = 30_000  # levels: a frame under the 64 KiB limit


def rss() -> int:
    return psutil.Process().memory_info().rss


@pytest.fixture
async def manager_token(tokens) -> str:
    return await tokens("manager")


@pytest.fixture
async def bystander(client, rid, manager_token):
    """A socket on the orders channel that must keep getting events whatever others do."""
    sock = await subscribed_socket(client, rid, manager_token)
    await sock.until("subscribed")

    async def still_served() -> None:
        started = time.monotonic()
        health = await client.get("/api/health")
        assert health.status == 200 and time.monotonic() - started < 1
        order, _ = await create_order(client, rid, manager_token)
        created = await sock.until("event", "order.created", timeout=5)
        assert created["data"]["order"]["id"] == order["id"]
    yield still_served
    await sock.close()


def hub_connections(client) -> int:
    return sum(len(room.connections) for room in client.app[HUB].rooms.values())


# Frames that get an error message, the socket staying open ---------------------------------

BAD_TEXT = [
    # (what, frame payload, error code)
    ("empty", b"", const.INVALID_FORMAT),
    ("whitespace", b" \n\t", const.INVALID_FORMAT),
    ("truncated", b'{"type": "subscribe", "chan', const.INVALID_FORMAT),
    ("null", b"null", const.INVALID_FORMAT),
    ("an array", b"[1, 2]", const.INVALID_FORMAT),
    ("a string", b'"ping"', const.INVALID_FORMAT),
    ("a huge number", b"1e309", const.INVALID_FORMAT),
    ("NaN", b'{"type": "ack", "seq": NaN}', const.INVALID_FORMAT),
    ("no type", b'{"channels": ["orders"]}', const.INVALID_FORMAT),
    ("a number for a type", b'{"type": 5}', const.INVALID_FORMAT),
    ("an unknown type", b'{"type": "dance"}', const.UNKNOWN_TYPE),
    ("a type in capitals", b'{"type": "PING"}', const.UNKNOWN_TYPE),
    ("a type with a NUL", b'{"type": "ping\\u0000"}', const.UNKNOWN_TYPE),
    ("an unknown field", b'{"type": "ping", "extra": 1}', const.INVALID_FORMAT),
    ("no channels", b'{"type": "subscribe"}', const.INVALID_FORMAT),
    ("empty channels", b'{"type": "subscribe", "channels": []}', const.INVALID_FORMAT),
    ("a 1000-character channel", b'{"type": "subscribe", "channels": ["' + b"k" * 1000 + b'"]}',
     const.INVALID_FORMAT),
    ("a channel with a NUL", b'{"type": "subscribe", "channels": ["orders\\u0000"]}',
     const.UNKNOWN_CHANNEL),
    ("seq 2**64", b'{"type": "ack", "seq": 18446744073709551616}', const.INVALID_FORMAT),
    ("seq 1e309", b'{"type": "ack", "seq": 1e309}', const.INVALID_FORMAT),
    ("seq -0", b'{"type": "ack", "seq": -0}', const.NOT_SUBSCRIBED),
    ("since 2**64", b'{"type": "subscribe", "channels": ["orders"], "since": 18446744073709551616}',
     const.INVALID_FORMAT),
    ("invalid UTF-8", b'{"type": "\xff\xfe"}', const.INVALID_FORMAT),
    ("invalid UTF-8 outside strings", b"\xff\xfe\xfd", const.INVALID_FORMAT),
    ("a lone surrogate", b'{"type": "\\ud800"}', const.INVALID_FORMAT),
    ("deep [ alone", b"[" * NESTED, const.INVALID_FORMAT),
    ("deep [ closed", b"[" * NESTED + b"]" * NESTED, const.INVALID_FORMAT),
    ("deep [ in an unknown field", b'{"type": "ping", "x": ' + b"[" * NESTED + b"]" * NESTED + b"}",
     const.INVALID_FORMAT),
    ("deep { in an unknown field",
     b'{"type": "dance", "x": ' + b'{"a": ' * (NESTED // 4) + b"1" + b"}" * (NESTED // 4) + b"}",
     const.INVALID_FORMAT),
    ("deep [ before the type", b'{"x": ' + b"[" * NESTED + b"]" * NESTED + b', "type": "ping"}',
     const.INVALID_FORMAT),
    ("deep [ for channels", b'{"type": "subscribe", "channels": ' + b"[" * NESTED, const.INVALID_FORMAT),
]


@pytest.mark.parametrize("what,payload,code", BAD_TEXT, ids=[b[0] for b in BAD_TEXT])
async def test_a_bad_text_frame_gets_an_error_message_and_the_socket_stays(
        rid, manager_token, open_socket, caplog, what, payload, code):
    sock = await open_socket(rid, manager_token)
    await sock.ws.send_frame(payload, WSMsgType.TEXT)  # as sent: aiohttp's send_str would encode
    error = await sock.until("error")
    assert error["code"] == code, (what, error)
    assert isinstance(error["message"], str) and error["message"]
    await sock.send(type="ping")
    assert (await sock.until("pong"))["type"] == "pong"
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # nothing crashed


async def test_random_frames_get_errors_or_documented_closes_and_others_carry_on(
        client, rid, manager_token, open_socket, bystander):
    """Random bytes as text frames: an error each, and the 64th bad one in a row closes 4008."""
    shuffle = random.Random(20261125)
    sock = await open_socket(rid, manager_token)
    before = rss()
    for n in range(const.MAX_ERRORS_IN_A_ROW - 1):
        size = shuffle.choice([1, 7, 100, 4000, 60_000])
        await sock.ws.send_frame(shuffle.randbytes(size), WSMsgType.TEXT)
        error = await sock.until("error")
        assert error["code"] in (const.INVALID_FORMAT, const.UNKNOWN_TYPE), n
    await sock.send(type="ping")  # a good message resets the count
    await sock.until("pong")
    for _ in range(const.MAX_ERRORS_IN_A_ROW):
        await sock.ws.send_frame(shuffle.randbytes(50), WSMsgType.TEXT)
    assert await sock.closed() == const.CLOSE_POLICY
    await bystander()
    assert rss() - before < 50 * MiB


# Frames that close the socket with a documented code --------------------------------------


@pytest.mark.parametrize("what,opcode,payload,close_code", [
    ("binary", WSMsgType.BINARY, b"\x00\x01", const.CLOSE_BINARY),
    ("binary JSON", WSMsgType.BINARY, b'{"type": "ping"}', const.CLOSE_BINARY),
    ("a 65 KiB frame", WSMsgType.TEXT, b'{"type": "ping", "x": "' + b"x" * 66_000 + b'"}',
     const.CLOSE_TOO_BIG),
    ("a 1 MiB frame", WSMsgType.TEXT, b"x" * MiB, const.CLOSE_TOO_BIG),
    ("a 1 MiB binary frame", WSMsgType.BINARY, b"\x00" * MiB, const.CLOSE_TOO_BIG),
])
async def test_frames_the_protocol_refuses_close_with_the_documented_code(
        rid, manager_token, open_socket, bystander, what, opcode, payload, close_code):
    sock = await open_socket(rid, manager_token)
    await sock.ws.send_frame(payload, opcode)
    assert await sock.closed() == close_code, what
    await bystander()


async def test_a_bad_first_message_closes_with_4001(client, rid, open_socket):
    for payload in (b"[" * NESTED, b'{"type": "auth", "token": "' + b"x" * 60_000 + b'"}',
                    b'{"type": "auth", "token": "\xff"}', b'{"type": "auth", "token": "sls_\\u0000"}',
                    b'{"x": ' + b"[" * NESTED + b"]" * NESTED + b"}"):
        sock = await open_socket(rid, None, welcome=False)
        await sock.ws.send_frame(payload, WSMsgType.TEXT)
        assert await sock.closed() == const.CLOSE_UNAUTHORIZED, payload[:40]


# Floods -------------------------------------------------------------------------------------


async def test_ten_thousand_subscribes_are_answered_in_order_without_hurting_anyone(
        client, rid, manager_token, open_socket, bystander):
    sock = await open_socket(rid, manager_token)
    before = rss()
    frame = msgspec.json.encode({"type": "subscribe", "channels": ["floor"]})
    count = 10_000

    async def flood() -> None:
        for _ in range(count):
            await sock.ws.send_frame(frame, WSMsgType.TEXT)
    sending = asyncio.create_task(flood())
    started = time.monotonic()
    answers = 0
    checked = False
    async with asyncio.timeout(60):
        while answers < count:
            message = await sock.next(timeout=10)
            assert message["type"] == "subscribed", message
            answers += 1
            if answers == count // 2 and not checked:
                checked = True
                await bystander()  # while the flood is being answered
    await sending
    print(f"\n{count} subscribes answered in {time.monotonic() - started:.1f} s")
    assert hub_connections(client) == 2  # the flooder counted once
    await bystander()
    assert rss() - before < 50 * MiB


async def test_a_flood_of_bad_frames_closes_at_64_and_keeps_memory_flat(
        client, rid, manager_token, open_socket, bystander):
    before = rss()
    for _ in range(20):
        sock = await open_socket(rid, manager_token)
        for _ in range(const.MAX_ERRORS_IN_A_ROW + 10):  # more than it takes: some after the close
            try:
                await sock.ws.send_frame(b"[" * NESTED, WSMsgType.TEXT)
            except ConnectionError:
                break
        assert await sock.closed(timeout=10) == const.CLOSE_POLICY
    await bystander()
    assert hub_connections(client) == 1
    assert rss() - before < 50 * MiB


# Peers that do not play along ---------------------------------------------------------------


async def test_a_peer_that_never_answers_pings_is_dropped_and_others_carry_on(
        make_client, config, rid):
    client = await make_client(msgspec.structs.replace(config, ws_heartbeat_seconds=0.5))
    token = (await (await client.post("/api/v1/auth/login", json={
        "email": "manager@demo.test", "password": "correct horse battery"})).json())["token"]
    watcher = await subscribed_socket(client, rid, token)
    await watcher.until("subscribed")
    created: asyncio.Queue[dict] = asyncio.Queue()

    async def keep_reading() -> None:  # aiohttp answers pings while it reads
        while True:
            message = await watcher.next(timeout=30)
            if message.get("name") == "order.created":
                created.put_nowait(message)
    reading = asyncio.create_task(keep_reading())
    deaf = Socket(await client.ws_connect(f"/api/v1/restaurants/{rid}/ws", headers=bearer(token),
                                          autoping=False, heartbeat=None))
    await deaf.send(type="subscribe", channels=["orders"])
    await asyncio.sleep(0.2)
    assert hub_connections(client) == 2
    for _ in range(3):  # over two heartbeats: the deaf peer is dropped, the watcher served
        await asyncio.sleep(0.5)
        await create_order(client, rid, token)
        async with asyncio.timeout(5):
            await created.get()
    assert hub_connections(client) == 1
    assert client.app[HUB].stats["stale_closed"] == 1
    msg = await deaf.ws.receive(timeout=5)  # what it was sent, then the end
    while msg.type in (WSMsgType.TEXT, WSMsgType.PING):
        msg = await deaf.ws.receive(timeout=5)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)
    reading.cancel()
    await deaf.close()
    await watcher.close()


async def test_a_peer_that_never_reads_is_closed_to_resume_and_memory_stays_bounded(
        make_client, config, rid):
    limit = 256 * 1024
    client = await make_client(msgspec.structs.replace(config, ws_send_buffer_bytes=limit))
    token = (await (await client.post("/api/v1/auth/login", json={
        "email": "manager@demo.test", "password": "correct horse battery"})).json())["token"]
    watcher = await subscribed_socket(client, rid, token)
    await watcher.until("subscribed")
    deaf = [await raw_silent_peer(client, rid, token) for _ in range(5)]
    await asyncio.sleep(0.2)
    assert hub_connections(client) == 6
    before = rss()
    hub = client.app[HUB]
    for _ in range(10):  # 4 MB of events each peer cannot take
        await emit(client.app[POOL], rid, 100, size=4000)
        got = 0
        async with asyncio.timeout(10):
            while got < 100:
                got += (await watcher.next())["type"] == "event"
        if hub_connections(client) == 1:
            break
    assert hub_connections(client) == 1
    assert hub.stats["slow_closed"] == 5
    assert rss() - before < 50 * MiB  # each peer held at most `limit`, then nothing
    health = await client.get("/api/health")
    assert health.status == 200
    for sock in deaf:
        sock.close()
    await watcher.close()
