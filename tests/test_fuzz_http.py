"""Bad input over real sockets: slow, huge, truncated, mis-typed and out-of-range requests each
get a clear 4xx in the one JSON error shape, in bounded time and memory, and write nothing.

Requests that aiohttp's own client would refuse to send (invalid UTF-8, 100 KB headers, bodies
trickled a byte at a time, a body cut short) go through raw asyncio streams.
"""
from __future__ import annotations

import asyncio
import base64
import re
import time
from dataclasses import dataclass

import msgspec
import psutil
import pytest
from conftest import bearer, error_of, table_counts

MiB = 1024 * 1024


@dataclass
class Answer:
    """A raw HTTP answer, read until the server closed the connection."""
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict:
        """The one error shape, as `error_of` checks it."""
        assert self.headers.get("content-type", "").startswith("application/json"), self
        body = msgspec.json.decode(self.body)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        return body["error"]


def parse(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    return Answer(int(status_line.split()[1]), headers, body[:int(length)] if length else body)


class Raw:
    """One raw connection to the test server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, client) -> Raw:
        return cls(*await asyncio.open_connection(client.server.host, client.server.port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, timeout: float = 10.0) -> Answer:
        """Read one answer: up to the end of its body, or until the server closes."""
        async with asyncio.timeout(timeout):
            head = await self.reader.readuntil(b"\r\n\r\n")
            answer = parse(head)
            length = answer.headers.get("content-length")
            body = await (self.reader.readexactly(int(length)) if length else self.reader.read())
        return parse(head + body)

    async def closed_by_server(self, timeout: float) -> bool:
        """Whether the server ends the connection within `timeout` (reading what it sends)."""
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(65536):
                    pass
            return True
        except (TimeoutError, ConnectionError):
            return False

    def close(self) -> None:
        self.writer.close()


def request_head(method: str, target: bytes | str, headers: dict[str, str | bytes] | None = None,
                 length: int | None = None) -> bytes:
    target = target.encode() if isinstance(target, str) else target
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1"]
    for name, value in (headers or {}).items():
        lines.append(name.encode() + b": " + (value.encode() if isinstance(value, str) else value))
    if length is not None:
        lines.append(b"Content-Length: %d" % length)
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def raw_request(client, method: str, target: bytes | str, headers: dict | None = None,
                      body: bytes | None = None, timeout: float = 10.0) -> Answer:
    conn = await Raw.open(client)
    try:
        await conn.send(request_head(method, target, {**(headers or {}), "Connection": "close"},
                                     None if body is None else len(body)) + (body or b""))
        return await conn.answer(timeout)
    finally:
        conn.close()


@pytest.fixture
async def health_stays_fast(client):
    """A probe that /api/health answers quickly while something bad goes on."""
    async def probe() -> float:
        started = time.monotonic()
        response = await client.get("/api/health")
        assert response.status == 200
        return time.monotonic() - started
    return probe


# Bodies trickled, cut short, or too large ---------------------------------------------------


async def test_a_body_trickled_byte_by_byte_is_cut_off_with_408_and_the_connection_let_go(
        make_client, config, db, rid):
    client = await make_client(msgspec.structs.replace(config, body_read_seconds=1.0))
    token = (await (await client.post("/api/v1/auth/login", json={
        "email": "manager@demo.test", "password": "correct horse battery"})).json())["token"]
    before = await table_counts(db)
    body = b'{"name": "Patio", "sort": 3}'
    conn = await Raw.open(client)
    await conn.send(request_head("POST", f"/api/v1/restaurants/{rid}/areas",
                                 {**bearer(token), "Content-Type": "application/json"}, len(body)))

    async def trickle() -> None:
        for byte in body[:-1]:  # never the last byte: the body is never complete
            await conn.send(bytes([byte]))
            await asyncio.sleep(0.2)
    sending = asyncio.create_task(trickle())
    started = time.monotonic()
    answering = asyncio.create_task(conn.answer(timeout=5))
    await asyncio.sleep(0.5)
    probe = time.monotonic()
    assert (await client.get("/api/health")).status == 200  # others are answered meanwhile
    assert time.monotonic() - probe < 0.5
    answer = await answering
    waited = time.monotonic() - started
    assert answer.status == 408 and answer.error()["code"] == "request_timeout"
    assert 0.9 <= waited < 3
    # aiohttp reads what is still coming for its lingering time (10 s), then hangs up.
    assert await conn.closed_by_server(timeout=15)
    sending.cancel()
    conn.close()
    assert await table_counts(db) == before


async def test_a_body_cut_short_writes_nothing_and_logs_no_error(client, db, rid, manager,
                                                                 health_stays_fast, caplog):
    before = await table_counts(db)
    conn = await Raw.open(client)
    await conn.send(request_head("POST", f"/api/v1/restaurants/{rid}/areas",
                                 {**manager, "Content-Type": "application/json"}, 100)
                    + b'{"name": "Pat')
    conn.writer.write_eof()  # the client is done, 86 bytes short: aiohttp hangs up on it
    assert await conn.closed_by_server(timeout=5)
    conn.close()
    assert await health_stays_fast() < 1
    assert await table_counts(db) == before
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_a_10_mb_body_is_refused_with_413_before_it_is_read(client, db, rid, manager,
                                                                   health_stays_fast):
    before = await table_counts(db)
    rss = psutil.Process().memory_info().rss
    conn = await Raw.open(client)
    started = time.monotonic()
    await conn.send(request_head("POST", f"/api/v1/restaurants/{rid}/areas",
                                 {**manager, "Content-Type": "application/json"}, 10 * MiB)
                    + b'{"name": "' + b"x" * 65536)
    answer = await conn.answer(timeout=5)  # without sending the other 9.9 MB
    assert time.monotonic() - started < 2
    assert answer.status == 413 and answer.error()["code"] == "payload_too_large"
    conn.close()
    assert await health_stays_fast() < 1
    assert psutil.Process().memory_info().rss - rss < 50 * MiB
    assert await table_counts(db) == before


async def test_a_10_mb_chunked_body_is_refused_with_413_at_the_limit(client, db, rid, manager):
    before = await table_counts(db)
    rss = psutil.Process().memory_info().rss
    conn = await Raw.open(client)
    await conn.send(request_head("POST", f"/api/v1/restaurants/{rid}/areas", {
        **manager, "Content-Type": "application/json", "Transfer-Encoding": "chunked"}))
    chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)

    async def stream() -> int:
        sent = 0
        try:
            while sent < 10 * MiB:
                await conn.send(chunk)
                sent += 65536
        except ConnectionError:
            pass
        return sent
    sending = asyncio.create_task(stream())
    answer = await conn.answer(timeout=10)
    assert answer.status == 413 and answer.error()["code"] == "payload_too_large"
    sending.cancel()
    conn.close()
    assert psutil.Process().memory_info().rss - rss < 50 * MiB
    assert await table_counts(db) == before


# Headers and URLs aiohttp cannot parse --------------------------------------------------------


UNREADABLE = [
    ("a 100 KB header", request_head("GET", "/api/health", {"X-Big": "a" * 100_000})),
    ("a 100 KB URL", request_head("GET", "/api/health?q=" + "a" * 100_000)),
    ("200 headers", request_head("GET", "/api/health", {f"X-H{i}": "1" for i in range(200)})),
    ("a NUL in a header", request_head("GET", "/api/health", {"X-Bad": b"a\x00b"})),
    ("raw invalid UTF-8 in the query", request_head("GET", b"/api/health?q=\xff\xfe")),
    ("raw invalid UTF-8 in the path", request_head("GET", b"/api/v1/restaurants/\xff/tables")),
    ("not HTTP at all", b"HELLO\r\n\r\n"),
]


@pytest.mark.parametrize("what,head", UNREADABLE, ids=[u[0] for u in UNREADABLE])
async def test_unreadable_requests_get_400_in_the_error_shape_and_a_closed_connection(
        client, health_stays_fast, what, head):
    conn = await Raw.open(client)
    await conn.send(head)
    answer = await conn.answer()
    assert answer.status == 400, (what, answer)
    error = answer.error()
    assert error["code"] == "bad_request"
    assert len(error["message"]) < 200  # says what, without echoing the 100 KB back
    assert await conn.closed_by_server(timeout=2)
    conn.close()
    assert await health_stays_fast() < 1


# Bodies of the wrong kind ----------------------------------------------------------------------

NESTED = 100_000
BAD_BODIES = [
    # (what, body, content type, status, code)
    ("invalid UTF-8 in a string", b'{"name": "\xff\xfe"}', "application/json", 400, "invalid_json"),
    ("a lone surrogate", b'{"name": "\\ud800"}', "application/json", 400, "invalid_json"),
    ("a NUL in a string", b'{"name": "Pa\\u0000tio"}', "application/json", 422, "validation_failed"),
    ("100,000 [", b"[" * NESTED, "application/json", 422, "validation_failed"),
    ("100,000 [ closed", b"[" * NESTED + b"]" * NESTED, "application/json", 422, "validation_failed"),
    ("100,000 [ in a field", b'{"name": ' + b"[" * NESTED, "application/json", 422, "validation_failed"),
    ("100,000 { in an unknown field", b'{"x": ' + b'{"a": ' * NESTED, "application/json", 422,
     "validation_failed"),
    ("100,000 [ in an unknown field", b'{"name": "P", "x": ' + b"[" * NESTED + b"]" * NESTED + b"}",
     "application/json", 422, "validation_failed"),
    ("truncated JSON", b'{"name": "Pat', "application/json", 400, "invalid_json"),
    ("an empty body", b"", "application/json", 400, "invalid_json"),
    ("whitespace only", b"  \r\n ", "application/json", 400, "invalid_json"),
    ("JSON null", b"null", "application/json", 422, "validation_failed"),
    ("NaN", b'{"name": "P", "sort": NaN}', "application/json", 400, "invalid_json"),
    ("Infinity", b'{"name": "P", "sort": Infinity}', "application/json", 400, "invalid_json"),
    ("1e309", b'{"name": "P", "sort": 1e309}', "application/json", 422, "validation_failed"),
    ("2**64", b'{"name": "P", "sort": 18446744073709551616}', "application/json", 422,
     "validation_failed"),
    ("2**31", b'{"name": "P", "sort": 2147483648}', "application/json", 422, "validation_failed"),
    ("a float for an int", b'{"name": "P", "sort": 1.5}', "application/json", 422, "validation_failed"),
    ("text/plain", b'{"name": "P"}', "text/plain", 415, "unsupported_media_type"),
    ("a form", b"name=P", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ("multipart", b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nP\r\n--b--\r\n',
     "multipart/form-data; boundary=b", 415, "unsupported_media_type"),
    ("UTF-16 JSON", '{"name": "P"}'.encode("utf-16"), "application/json; charset=utf-16", 400,
     "invalid_json"),
]


@pytest.mark.parametrize("what,body,content_type,status,code", BAD_BODIES,
                         ids=[b[0] for b in BAD_BODIES])
async def test_bad_bodies_get_a_clear_error_and_write_nothing(client, db, rid, manager, what, body,
                                                              content_type, status, code):
    before = await table_counts(db)
    response = await client.post(f"/api/v1/restaurants/{rid}/areas", data=body,
                                 headers={**manager, "Content-Type": content_type})
    assert response.status == status, (what, await response.text())
    assert (await error_of(response))["code"] == code
    assert await table_counts(db) == before


async def test_a_duplicate_key_counts_once_the_last_one_wins(client, rid, manager):
    response = await client.post(f"/api/v1/restaurants/{rid}/areas",
                                 data=b'{"name": "First", "name": "Last"}',
                                 headers={**manager, "Content-Type": "application/json"})
    assert response.status == 201
    assert (await response.json())["name"] == "Last"


# Numbers out of range, for ids, prices and quantities -----------------------------------------

HUGE = ["18446744073709551616", "9223372036854775808", "1e309", "-1e309", "-0", "-1", "1.5",
        "NaN", "Infinity", "-Infinity", "1" + "0" * 400]


@pytest.mark.parametrize("number", HUGE)
async def test_numbers_out_of_range_are_refused_wherever_they_go(client, db, rid, manager,
                                                                 menu, number):
    burger = menu["Burger"]
    area = (await (await client.get(f"/api/v1/restaurants/{rid}/areas", headers=manager)).json())
    area_id = area["items"][0]["id"]
    category, item = burger["category_id"], burger["id"]
    bodies = [  # each body valid but for the one number
        ("/tables", f'{{"label": "Q1", "seats": {number}, "area_id": {area_id}}}'),
        ("/tables", f'{{"label": "Q2", "seats": 2, "area_id": {number}}}'),
        ("/menu/items", (f'{{"category_id": {category}, "name": "Q", "price_minor": {number}, '
                         f'"station": "grill"}}')),
        ("/menu/items", (f'{{"category_id": {number}, "name": "Q", "price_minor": 100, '
                         f'"station": "grill"}}')),
        ("/orders", f'{{"items": [{{"menu_item_id": {item}, "qty": {number}}}]}}'),
        ("/orders", f'{{"items": [{{"menu_item_id": {number}}}]}}'),
        ("/waitlist", f'{{"name": "Q", "size": {number}}}'),
    ]
    if number == "-0":
        del bodies[2]  # -0 is 0, and a price of 0 is a fine price
    before = await table_counts(db)
    for path, body in bodies:
        response = await client.post(f"/api/v1/restaurants/{rid}{path}", data=body.encode(),
                                     headers={**manager, "Content-Type": "application/json"})
        assert response.status in (400, 422), (path, number, await response.text())
        await error_of(response)
    assert await table_counts(db) == before


@pytest.mark.parametrize("target,status", [
    ("/tables/18446744073709551616", 404), ("/tables/-0", 404), ("/tables/1e3", 404),
    ("/tables/%C2%B2", 404), ("/tables/%D9%A1", 404), ("/tables/%FF%FE", 404),
    ("/tables?limit=18446744073709551616", 400), ("/tables?limit=-0", 400),
    ("/tables?limit=1e3", 400), ("/tables?limit=%C2%B2", 400), ("/tables?limit=--5", 400),
    ("/tables?limit=%FF", 400), ("/tables?status=%FF%FE", 400), ("/tables?cursor=%FF", 400),
    ("/tables?area_id=%00", 400), ("/reservations?date=%FF", 400),
    ("/reservations?date=9999-12-31", 400), ("/availability?date=9999-12-31&size=2", 400),
    ("/availability?date=0001-01-01&size=2", 400), ("/dashboard/hourly?date=9999-12-31", 400),
    ("/reports/daily?from=0001-01-01&to=0001-01-02", 400), ("/reports/hourly?date=9999-12-31", 400),
    ("/reservations?date=9998-12-31", 200), ("/availability?date=1970-01-01&size=2", 200),
    ("/events?since=18446744073709551616", 400), ("/events?since=0&epoch=%FF", 410),
    ("/events?since=0&channels=%00", 422), ("/kitchen/tickets?station=%FF", 400),
    ("/waitlist/estimate?size=1e309", 400),
])
async def test_bad_ids_and_query_values_get_a_clear_answer(client, rid, manager, target, status):
    response = await client.get(f"/api/v1/restaurants/{rid}{target}", headers=manager)
    assert response.status == status, (target, await response.text())
    if status >= 400:
        await error_of(response)


async def test_cursors_and_ids_past_two_billion_are_fine_where_ids_are_bigints(client, rid, manager):
    """Ids are bigints: 2**31 and up must not be read as 32-bit integers anywhere."""
    hook = await (await client.post(f"/api/v1/restaurants/{rid}/webhooks", headers=manager, json={
        "url": "https://hooks.example.com/fuzz", "events": ["*"]})).json()
    big = base64.urlsafe_b64encode(b"[3000000000]").decode().rstrip("=")
    for target in (f"/alerts?cursor={big}", f"/webhooks/{hook['webhook']['id']}/deliveries?cursor={big}",
                   f"/webhooks/{hook['webhook']['id']}/deliveries?before=3000000000",
                   f"/orders?cursor={big}", f"/tables?cursor={big}", f"/staff?cursor={big}",
                   f"/devices?cursor={big}", f"/api-keys?cursor={big}", f"/webhooks?cursor={big}",
                   f"/waitlist?cursor={big}", f"/kitchen/tickets?cursor={big}",
                   f"/kitchen/expo?cursor={big}", f"/areas?cursor={big}",
                   "/tables/3000000000", "/orders/3000000000", "/waitlist/3000000000"):
        response = await client.get(f"/api/v1/restaurants/{rid}{target}", headers=manager)
        assert response.status in (200, 400, 404), (target, await response.text())


@pytest.mark.parametrize("rid_text", ["%C2%B2", "%D9%A1", "%FF", "18446744073709551616", "-0", "1.0"])
async def test_odd_restaurant_ids_are_not_found(client, manager, rid_text):
    response = await client.get(f"/api/v1/restaurants/{rid_text}/tables", headers=manager)
    assert response.status == 404
    assert (await error_of(response))["code"] == "not_found"


@pytest.mark.parametrize("method,header,value,status", [
    ("PATCH", "If-Match", b"\xb2", 400), ("PATCH", "If-Match", b"99999999999999999999", 400),
    ("PATCH", "If-Match", b"\xff", 400), ("POST", "Idempotency-Key", b"\xff\xfe", 400),
    ("POST", "Authorization", b"Bearer \xff\xfe", 401), ("POST", "Authorization", b"\xff", 401),
    ("POST", "X-Request-Id", b"\xff", 201),
])
async def test_non_ascii_header_values_get_a_clear_answer(client, db, rid, manager, method, header,
                                                          value, status):
    party = await (await client.post(f"/api/v1/restaurants/{rid}/waitlist", headers=manager,
                                     json={"name": "Q", "size": 2})).json()
    target = f"/api/v1/restaurants/{rid}/waitlist" + (f"/{party['id']}" if method == "PATCH" else "")
    headers = {**manager, "Content-Type": "application/json", header: value}
    before = await table_counts(db)
    answer = await raw_request(client, method, target, headers, b'{"name": "Q", "size": 2}')
    assert answer.status == status, answer
    if status >= 400:
        answer.error()
        assert await table_counts(db) == before


@pytest.mark.parametrize("starts_at", ["9999-12-31T23:00:00+00:00", "9999-12-31T23:59:59-14:00",
                                       "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00-14:00"])
async def test_times_at_the_edge_of_the_calendar_are_refused(client, db, rid, manager, starts_at):
    before = await table_counts(db)
    response = await client.post(f"/api/v1/restaurants/{rid}/reservations", headers=manager,
                                 json={"name": "Far", "size": 2, "starts_at": starts_at})
    assert response.status == 422, (starts_at, await response.text())
    await error_of(response)
    assert await table_counts(db) == before


async def test_the_sign_in_form_and_screens_take_bad_bytes_without_failing(client, db):
    """The screens' HTML side: form bodies and slugs reach the database too."""
    page = await (await client.get("/login")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1].encode()
    before = await table_counts(db)
    for form, status in ((b"csrf=" + csrf + b"&email=\xff\xfe&password=x", 400),
                         (b"csrf=" + csrf + b"&email=a%00b%40demo.test&password=x", 401),
                         (b"csrf=" + csrf + b"&email=%FF%FE&password=%00", 401),
                         (b"csrf=%C3%A9%00&email=a&password=b", 403)):
        response = await client.post("/login", data=form, allow_redirects=False, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
        assert response.status == status, (form, await response.text())
    assert await table_counts(db) == before
    for path in ("/r/%00/kitchen", "/r/demo%00/floor", "/r/%FF%FE/manager", "/r/%C2%B2/ops",
                 "/r/" + "a" * 5000 + "/reports"):
        response = await client.get(path, allow_redirects=False)
        assert response.status in (303, 404), (path, await response.text())
