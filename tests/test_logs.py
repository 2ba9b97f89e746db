"""Structured logs: one JSON line per record, naming the request and restaurant it came from."""
from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import msgspec
import pytest
from aiohttp.test_utils import TestServer
from conftest import bearer

from server.app import create_app
from server.config import Config
from server.logs import (
    AccessLog,
    JsonFormatter,
    RequestContext,
    begin_request,
    end_request,
    restaurant_id_var,
)


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the root logger writes, through the JSON formatter run.py installs."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContext())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


def records(out: io.StringIO) -> list[dict]:
    return [msgspec.json.decode(line) for line in out.getvalue().splitlines()]


def test_a_record_is_one_json_line_with_its_ids_and_traceback(json_lines):
    named = begin_request("req-42")
    restaurant_id_var.set(7)
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        logging.getLogger("serveline.test").exception("it broke:\n%s", "twice", extra={"table": 3})
    finally:
        end_request(named)
    logging.getLogger("serveline.test").warning("after the request")

    lines = json_lines.getvalue().splitlines()
    assert len(lines) == 2
    first, second = records(json_lines)
    assert first["level"] == "ERROR" and first["logger"] == "serveline.test"
    assert first["message"] == "it broke:\ntwice"
    assert first["request_id"] == "req-42" and first["restaurant_id"] == 7 and first["table"] == 3
    assert first["exc_info"].startswith("Traceback") and "ValueError: bad\nthing" in first["exc_info"]
    assert first["time"].endswith("Z")
    assert "request_id" not in second and "restaurant_id" not in second  # the request is over


async def test_what_a_request_logs_names_it_and_its_restaurant(make_client, config, rid, json_lines):
    client = await make_client(msgspec.structs.replace(config, slow_query_ms=0))
    token = (await (await client.post("/api/v1/auth/login", json={
        "email": "manager@demo.test", "password": "correct horse battery"})).json())["token"]
    response = await client.get(f"/api/v1/restaurants/{rid}/orders?status=open",
                                headers={**bearer(token), "X-Request-Id": "json-log-1"})
    assert response.status == 200
    mine = [r for r in records(json_lines) if r.get("request_id") == "json-log-1"]
    assert mine and all(r["logger"] == "serveline.sql" for r in mine)
    assert any(r.get("restaurant_id") == rid for r in mine)  # statements after the tenancy check
    assert all("elapsed_ms" in r and "pattern" in r for r in mine)


async def test_the_access_log_is_off_by_default_and_json_when_on(config, aiohttp_client, json_lines):
    assert Config().access_log is False
    server = TestServer(create_app(config))  # started as run.py does with access_log on
    await server.start_server(access_log_class=AccessLog,
                              access_log=logging.getLogger("serveline.access"))
    client = await aiohttp_client(server)
    response = await client.get("/api/health", headers={"X-Request-Id": "access-1"})
    assert response.status == 200
    await response.read()
    for _ in range(100):  # written once the answer has gone out
        access = [r for r in records(json_lines) if r["logger"] == "serveline.access"]
        if access:
            break
        await asyncio.sleep(0.01)
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == "access-1" and line["status"] == 200
    assert line["route"] == "/api/health" and line["method"] == "GET" and line["duration_ms"] >= 0
