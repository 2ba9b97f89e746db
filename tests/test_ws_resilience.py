"""Nothing lost, nobody slowed: stale and slow peers, a lost LISTEN connection, two instances, restarts."""
from __future__ import annotations

import asyncio
import base64
import os
import socket

import msgspec
import pytest
from conftest import Socket, bearer
from test_ws_basics import create_order

from server.keys import HUB, POOL
from server.realtime import const
from server.realtime.hub import LISTEN_NAME
from store import events


async def emit(pool, rid: int, count: int, size: int = 100) -> None:
    """Real writes through the outbox, each its own transaction."""
    for n in range(count):
        async with events.write(pool) as tx:
            tx.emit(rid, "orders", "test.bulk", {"n": n, "pad": "x" * size})


async def subscribed_socket(client, rid, token, channels=("orders",), **subscribe) -> Socket:
    sock = Socket(await client.ws_connect(f"/api/v1/restaurants/{rid}/ws", headers=bearer(token)))
    await sock.until("welcome")
    await sock.send(type="subscribe", channels=list(channels), **subscribe)
    return sock


async def test_a_peer_that_stops_answering_pings_is_closed_within_two_intervals(
        make_client, config, rid, tokens):
    client = await make_client(msgspec.structs.replace(config, ws_heartbeat_seconds=0.4))
    token = (await (await client.post("/api/v1/auth/login", json={
        "email": "kitchen@demo.test", "password": "correct horse battery"})).json())["token"]
    ws = await client.ws_connect(f"/api/v1/restaurants/{rid}/ws", headers=bearer(token),
                                 autoping=False)
    sock = Socket(ws)
    await sock.send(type="subscribe", channels=["kitchen"])
    hub = client.app[HUB]
    await asyncio.sleep(0.2)
    assert sum(len(r.connections) for r in hub.rooms.values()) == 1
    await asyncio.sleep(0.8)  # two heartbeat intervals, never answering a ping
    assert sum(len(r.connections) for r in hub.rooms.values()) == 0
    assert hub.stats["stale_closed"] == 1
    await ws.close()


async def raw_silent_peer(client, rid: int, token: str) -> socket.socket:
    """A peer that completes the handshake, subscribes, then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", client.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /api/v1/restaurants/{rid}/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n").encode())
    payload = b'{"type": "subscribe", "channels": ["orders"]}'
    mask = os.urandom(4)
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask
                 + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    sock.setblocking(False)
    return sock


async def test_a_slow_peer_is_closed_to_resume_while_fifty_others_get_everything(
        make_client, config, rid, tokens):
    client = await make_client(msgspec.structs.replace(config, ws_send_buffer_bytes=256 * 1024))
    token = (await (await client.post("/api/v1/auth/login", json={
        "email": "manager@demo.test", "password": "correct horse battery"})).json())["token"]
    others = [await subscribed_socket(client, rid, token) for _ in range(50)]
    for sock in others:
        await sock.until("subscribed")
    hub = client.app[HUB]
    healthy = set(hub.rooms[rid].connections)
    slow = await raw_silent_peer(client, rid, token)
    await asyncio.sleep(0.2)
    count = 300

    async def receive_all(sock: Socket) -> list[int]:
        return [e["seq"] for e in await sock.events(count, timeout=60)]
    readers = [asyncio.create_task(receive_all(sock)) for sock in others]
    assert len(hub.rooms[rid].connections - healthy) == 1  # the silent one is in the room
    await emit(client.app[POOL], rid, count, size=16_000)  # ~4.8 MB: more than kernel buffers hold
    results = await asyncio.gather(*readers)
    for seqs in results:
        assert len(seqs) == count and seqs == sorted(set(seqs))
    for _ in range(50):
        if hub.stats["slow_closed"]:
            break
        await asyncio.sleep(0.1)
    assert hub.stats["slow_closed"] == 1
    assert hub.rooms[rid].connections == healthy
    for sock in others:
        await sock.close()
    slow.close()


async def test_a_killed_listen_connection_loses_nothing(client, db, rid, tokens):
    token = await tokens("manager")
    sock = await subscribed_socket(client, rid, token)
    await sock.until("subscribed")
    await emit(client.app[POOL], rid, 5)
    killed = await db.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE application_name = $1 AND datname = current_database()",
                               LISTEN_NAME)
    assert killed == 1
    await emit(client.app[POOL], rid, 20)  # some of these are notified to nobody
    got = await sock.events(25, timeout=15)
    seqs = [e["seq"] for e in got]
    assert seqs == list(range(seqs[0], seqs[0] + 25))
    assert client.app[HUB].stats["listen_reconnects"] >= 1


async def test_five_hundred_missed_events_resume_on_another_instance_and_after_a_restart(
        make_client, config, rid, tokens):
    first = await make_client(config)
    second = await make_client(config)
    token = (await (await first.post("/api/v1/auth/login", json={
        "email": "manager@demo.test", "password": "correct horse battery"})).json())["token"]
    sock = await subscribed_socket(first, rid, token)
    start = await sock.until("subscribed")
    await sock.close()
    await emit(first.app[POOL], rid, 250)
    await first.close()  # the first instance goes away; its process state with it
    await emit(second.app[POOL], rid, 250)
    third = await make_client(config)  # a fresh instance, as after a restart
    for instance in (second, third):
        again = await subscribed_socket(instance, rid, token, epoch=start["epoch"],
                                        since=start["seq"])
        got = await again.events(500, timeout=30)
        assert [e["seq"] for e in got] == list(range(start["seq"] + 1, start["seq"] + 501))
        await again.close()


async def test_events_written_on_one_instance_reach_clients_of_the_other(
        make_client, config, rid, tokens):
    a, b = await make_client(config), await make_client(config)
    token = (await (await a.post("/api/v1/auth/login", json={
        "email": "manager@demo.test", "password": "correct horse battery"})).json())["token"]
    on_a, on_b = await subscribed_socket(a, rid, token), await subscribed_socket(b, rid, token)
    await on_a.until("subscribed")
    await on_b.until("subscribed")
    order, _ = await create_order(a, rid, token)
    for sock in (on_a, on_b):
        event = await sock.until("event", "order.created")
        assert event["data"]["order"]["id"] == order["id"]


async def test_shutdown_asks_clients_to_reconnect_later_and_closes_to_resume(
        make_client, config, rid, tokens):
    client = await make_client(config)
    token = (await (await client.post("/api/v1/auth/login", json={
        "email": "host@demo.test", "password": "correct horse battery"})).json())["token"]
    sock = await subscribed_socket(client, rid, token, channels=("floor",))
    await sock.until("subscribed")
    closing = asyncio.create_task(client.server.close())  # the server goes; the client stays
    goodbye = await sock.until("reconnect")
    assert 0 <= goodbye["after_ms"] <= const.RECONNECT_JITTER_MS
    assert await sock.closed() == const.CLOSE_RESUME
    await closing


@pytest.mark.parametrize("count", [1000])
async def test_resume_replays_in_pages_without_overflowing(make_client, config, rid, count):
    client = await make_client(msgspec.structs.replace(config, ws_send_buffer_bytes=64 * 1024))
    token = (await (await client.post("/api/v1/auth/login", json={
        "email": "manager@demo.test", "password": "correct horse battery"})).json())["token"]
    sock = await subscribed_socket(client, rid, token)
    start = await sock.until("subscribed")
    await sock.close()
    await emit(client.app[POOL], rid, count, size=500)  # ~600 KB: ten times the buffer
    again = await subscribed_socket(client, rid, token, epoch=start["epoch"], since=start["seq"])
    got = await again.events(count, timeout=30)
    assert [e["seq"] for e in got] == list(range(start["seq"] + 1, start["seq"] + count + 1))
