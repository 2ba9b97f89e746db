"""Outgoing webhooks: signed, the feed's own JSON, in order per endpoint, retried with back-off,
given up in time, isolated from dead receivers, and never sent into our own network."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import inspect
import re
import socket
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import msgspec
import pytest
from aiohttp import web
from conftest import bearer, error_of, table_counts

from server.realtime import messages
from server.webhooks import USER_AGENT, signature
from store import events

ROOT = Path(__file__).resolve().parent.parent
POLL = 0.05
# Quick rounds and retries, and receivers on 127.0.0.1 allowed (they are what these tests talk to).
FAST = {"webhook_allow_private": True, "webhook_poll_seconds": POLL,
        "webhook_retry_base_seconds": 0.2, "webhook_retry_max_seconds": 5.0,
        "webhook_timeout_seconds": 2.0}
HANG = 0  # a receiver's answer that means: never answer


@pytest.fixture
def config(config, request):
    """Every server of these tests (the `client` too) is quick to retry; a test changes more
    with `@pytest.mark.parametrize("config", [{...}], indirect=True)`."""
    return msgspec.structs.replace(config, **{**FAST, **getattr(request, "param", {})})


class Arrival(NamedTuple):
    at: float  # time.monotonic()
    headers: dict[str, str]
    body: bytes

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def seq(self) -> int:
        return msgspec.json.decode(self.body)["seq"]


class Receiver:
    """A real HTTP endpoint on 127.0.0.1 that keeps every request and answers what `answer` says
    (an HTTP status, or HANG)."""

    def __init__(self, answer: Callable[[Arrival, list[Arrival]], int]) -> None:
        self.answer = answer
        self.arrivals: list[Arrival] = []
        self.answers: list[int] = []
        self.released = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        arrival = Arrival(time.monotonic(), {k.lower(): v for k, v in request.headers.items()},
                          await request.read())
        self.arrivals.append(arrival)
        status = self.answer(arrival, self.arrivals)
        self.answers.append(status)
        if status == HANG:
            await self.released.wait()
            status = 200
        return web.Response(status=status, text="not now" if status >= 400 else "thanks")

    def delivered(self) -> list[Arrival]:
        """The arrivals answered with a 2xx, in order."""
        return [a for a, status in zip(self.arrivals, self.answers, strict=True)
                if 200 <= status < 300]


def always(status: int) -> Callable[[Arrival, list[Arrival]], int]:
    return lambda _arrival, _seen: status


def failing_first(times: int, status: int = 500) -> Callable[[Arrival, list[Arrival]], int]:
    """`status` to the first message's first `times` arrivals, 200 to everything else."""
    def answer(arrival: Arrival, seen: list[Arrival]) -> int:  # `seen` ends with `arrival`
        first = seen[0].message_id
        tries = sum(1 for a in seen if a.message_id == first)
        return status if arrival.message_id == first and tries <= times else 200
    return answer


@pytest.fixture
async def receive(aiohttp_server):
    """`await receive(answer)` starts a receiver on a free port of 127.0.0.1."""
    started: list[Receiver] = []

    async def start(answer: Callable[[Arrival, list[Arrival]], int] | None = None) -> Receiver:
        receiver = Receiver(answer or always(200))
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        server = await aiohttp_server(app)
        receiver.url = str(server.make_url("/hook"))
        started.append(receiver)
        return receiver
    yield start
    for receiver in started:  # let hanging requests end before the servers close
        receiver.released.set()


def closed_port() -> int:
    """A port of 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def until(predicate, seconds: float = 10.0, what: str = "the condition"):
    """Poll `predicate` (plain or async) until it is truthy; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {seconds} s (last: {result!r})")
        await asyncio.sleep(0.05)


def verifies(secret: str, arrival: Arrival) -> bool:
    """A receiver's check, per the Standard Webhooks spec, written out from scratch."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = (f"{arrival.headers['webhook-id']}.{arrival.headers['webhook-timestamp']}.".encode()
              + arrival.body)
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [s.partition(",")[2] for s in arrival.headers["webhook-signature"].split()
             if s.startswith("v1,")]
    return any(hmac.compare_digest(expected, s) for s in given)


async def register(client, base, headers, url, patterns=("order.created",), **extra) -> dict:
    response = await client.post(base + "/webhooks", headers=headers,
                                 json={"url": url, "events": list(patterns), **extra})
    assert response.status == 201, await response.text()
    return await response.json()


async def place_order(client, base, server, menu) -> dict:
    response = await client.post(base + "/orders", headers=server,
                                 json={"items": [{"menu_item_id": menu["Burger"]["id"]}]})
    assert response.status == 201, await response.text()
    return await response.json()


async def deliveries(client, base, headers, webhook_id, **query) -> list[dict]:
    response = await client.get(f"{base}/webhooks/{webhook_id}/deliveries", headers=headers,
                                params={k: str(v) for k, v in query.items()})
    assert response.status == 200, await response.text()
    return (await response.json())["items"]


async def order_created_seqs(db, rid) -> list[int]:
    return [r["seq"] for r in await db.fetch(
        "SELECT seq FROM events WHERE restaurant_id = $1 AND name = 'order.created' ORDER BY seq", rid)]


def test_signatures_match_the_standard_webhooks_test_vector():
    # Published with the spec's reference libraries: a receiver's library must accept ours.
    assert signature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                     1614265330, b'{"test": 2432232314}') \
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


async def test_a_delivery_is_signed_and_is_the_events_feed_item_for_its_seq(
        client, db, rid, base, tokens, server, menu, receive):
    owner = bearer(await tokens("owner"))
    receiver = await receive()
    created = await register(client, base, owner, receiver.url)
    secret, webhook = created["secret"], created["webhook"]
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret)
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert webhook["events"] == ["order.created"] and webhook["active"] and "secret" not in webhook

    await place_order(client, base, server, menu)
    await until(lambda: receiver.arrivals, what="a delivery")
    arrival = receiver.arrivals[0]
    assert verifies(secret, arrival)
    assert not verifies("whsec_" + base64.b64encode(b"x" * 32).decode(), arrival)
    assert arrival.headers["content-type"] == "application/json"
    assert arrival.headers["user-agent"] == USER_AGENT
    assert abs(int(arrival.headers["webhook-timestamp"]) - time.time()) < 60

    sent = msgspec.json.decode(arrival.body)
    feed = await client.get(base + "/events", headers=owner,
                            params={"since": str(sent["seq"] - 1), "limit": "1"})
    assert sent == (await feed.json())["items"][0]
    assert sent["name"] == "order.created" and sent["type"] == "event"
    row = await db.fetchrow("SELECT seq, channel, name, at, data::text AS data FROM events "
                            "WHERE restaurant_id = $1 AND seq = $2", rid, sent["seq"])
    assert arrival.body == messages.event(row["seq"], row["channel"], row["name"],
                                          row["at"].isoformat(), messages.raw(row["data"]))

    listed = await until(lambda: deliveries(client, base, owner, webhook["id"], status="delivered"))
    assert len(listed) == 1  # only order.created was asked for (not ticket.fired, …)
    [delivery] = listed
    assert delivery["message_id"] == arrival.message_id == f"msg_{rid}_{delivery['id']}"
    assert (delivery["seq"], delivery["attempts"], delivery["last_status"]) == (sent["seq"], 1, 200)
    assert delivery["delivered_at"] and delivery["next_attempt_at"] is None


async def test_failed_attempts_are_retried_with_growing_backoff_until_delivered(
        client, config, base, tokens, server, menu, receive):
    owner = bearer(await tokens("owner"))
    receiver = await receive(failing_first(2))  # 500, 500, then 200
    webhook = (await register(client, base, owner, receiver.url))["webhook"]
    await place_order(client, base, server, menu)
    [delivery] = await until(lambda: deliveries(client, base, owner, webhook["id"], status="delivered"),
                             what="delivered after two 500s")
    assert delivery["attempts"] == 3 and delivery["last_status"] == 200
    assert delivery["last_error"] is None  # the last answer was a success
    assert len(receiver.arrivals) == 3
    assert len({a.message_id for a in receiver.arrivals}) == 1  # one message, retried
    assert len({a.body for a in receiver.arrivals}) == 1
    gaps = [b.at - a.at for a, b in zip(receiver.arrivals, receiver.arrivals[1:], strict=False)]
    base_delay = config.webhook_retry_base_seconds
    # The n-th delay is base·2^(n−1) times a jitter in [0.5, 1]: at least half of it; and the
    # second is at least the first's largest value, give or take a poll.
    assert gaps[0] >= base_delay * 0.5 and gaps[1] >= base_delay * 2 * 0.5, gaps
    assert gaps[1] >= gaps[0] - 2 * POLL, gaps


async def test_events_arrive_in_seq_order_even_when_the_first_keeps_failing(
        client, db, rid, base, tokens, server, menu, receive):
    owner = bearer(await tokens("owner"))
    receiver = await receive(failing_first(3))
    webhook = (await register(client, base, owner, receiver.url, ["order.*"]))["webhook"]
    for _ in range(5):
        await place_order(client, base, server, menu)
    await until(lambda: _count(client, base, owner, webhook["id"], 5), what="five deliveries")
    expected = await order_created_seqs(db, rid)
    seqs = [a.seq for a in receiver.arrivals]
    assert seqs == sorted(seqs)  # never a later event before an earlier one, retries included
    assert seqs[:4] == [expected[0]] * 4  # the first: three 500s, then delivered
    assert [a.seq for a in receiver.delivered()] == expected  # each once, strictly increasing

    listed, cursor = [], None  # newest first, a keyset page at a time
    while True:
        response = await client.get(f"{base}/webhooks/{webhook['id']}/deliveries", headers=owner,
                                    params={"limit": "2", **({"cursor": cursor} if cursor else {})})
        page = await response.json()
        listed += page["items"]
        cursor = page["next"]
        if cursor is None:
            break
    assert [d["seq"] for d in listed] == expected[::-1]
    older = await deliveries(client, base, owner, webhook["id"], before=listed[1]["id"])
    assert [d["id"] for d in older] == [d["id"] for d in listed[2:]]


async def _count(client, base, owner, webhook_id, wanted: int) -> bool:
    return len(await deliveries(client, base, owner, webhook_id, status="delivered")) >= wanted


@pytest.mark.parametrize("config", [{"webhook_timeout_seconds": 0.5}], indirect=True)
async def test_a_dead_or_hanging_endpoint_holds_up_neither_others_nor_the_api(
        client, base, tokens, server, menu, receive):
    owner = bearer(await tokens("owner"))
    healthy, hanging = await receive(), await receive(always(HANG))
    dead = (await register(client, base, owner, f"http://127.0.0.1:{closed_port()}/hook"))["webhook"]
    slow = (await register(client, base, owner, hanging.url))["webhook"]
    await register(client, base, owner, healthy.url)
    for _ in range(5):
        started = time.monotonic()
        await place_order(client, base, server, menu)
        assert time.monotonic() - started < 2.0  # delivery is never on the request's path
    last_order = time.monotonic()
    await until(lambda: len(healthy.arrivals) >= 5, seconds=5, what="healthy got all")
    assert time.monotonic() - last_order < 5
    assert len({a.message_id for a in healthy.arrivals}) == 5

    async def tried(webhook_id: int) -> dict | None:
        listed = await deliveries(client, base, owner, webhook_id)
        oldest = listed[-1] if listed else None
        return oldest if oldest and oldest["attempts"] >= 1 and oldest["last_error"] else None
    refused = await until(lambda: tried(dead["id"]), what="the dead endpoint tried")
    assert refused["status"] == "pending" and refused["last_status"] is None
    assert "cannot connect" in refused["last_error"] and "\n" not in refused["last_error"]
    timed_out = await until(lambda: tried(slow["id"]), what="the hanging endpoint tried")
    assert timed_out["last_error"] == "no answer within 0.5 s"
    later = (await deliveries(client, base, owner, dead["id"]))[:-1]
    assert later and all(d["attempts"] == 0 for d in later)  # held back behind the first


@pytest.mark.parametrize("config", [{"webhook_allow_private": False}], indirect=True)
async def test_private_addresses_are_refused_at_registration_and_at_delivery(
        client, db, base, tokens, server, menu, receive):
    owner = bearer(await tokens("owner"))
    receiver = await receive()
    port = receiver.url.rsplit(":", 1)[1].split("/")[0]
    before = await table_counts(db)
    for url, kind in [(receiver.url, "loopback"), ("http://[::1]/hook", "loopback"),
                      ("http://10.0.0.1/", "private"), ("https://192.168.1.20/x", "private"),
                      ("http://169.254.169.254/latest/meta-data", "link-local"),
                      ("http://[::ffff:127.0.0.1]/", "loopback"), ("http://0.0.0.0/", "unspecified"),
                      ("http://[fe80::1]/", "link-local"), ("http://224.0.0.1/", "multicast"),
                      ("http://127.1/", "canonical")]:
        response = await client.post(base + "/webhooks", headers=owner,
                                     json={"url": url, "events": ["*"]})
        assert response.status == 422, (url, await response.text())
        error = await error_of(response)
        assert error["code"] == "invalid" and error["details"][0]["path"] == "$.url"
        assert kind in error["message"], (url, error)
    assert await table_counts(db) == before

    # A name is judged where it is connected to: localhost resolves to loopback only.
    webhook = (await register(client, base, owner, f"http://localhost:{port}/hook"))["webhook"]
    await place_order(client, base, server, menu)

    async def refused() -> dict | None:
        listed = await deliveries(client, base, owner, webhook["id"])
        return listed[0] if listed and listed[0]["last_error"] else None
    delivery = await until(refused, what="a refused attempt")
    assert delivery["status"] == "pending" and delivery["last_status"] is None
    assert "refused: localhost resolves only to addresses webhooks may not reach" \
        in delivery["last_error"] and "loopback" in delivery["last_error"]
    assert receiver.arrivals == []  # nothing was sent


@pytest.mark.parametrize("config", [{"webhook_give_up_hours": 0.0005,  # 1.8 s
                                     "webhook_retry_base_seconds": 0.1}], indirect=True)
async def test_a_delivery_failing_past_the_give_up_time_fails_and_the_next_goes_out(
        client, base, tokens, server, menu, receive):
    owner = bearer(await tokens("owner"))
    receiver = await receive(failing_first(10_000, status=503))
    webhook = (await register(client, base, owner, receiver.url))["webhook"]
    await place_order(client, base, server, menu)
    await place_order(client, base, server, menu)

    async def settled() -> list[dict] | None:
        listed = await deliveries(client, base, owner, webhook["id"])
        return listed if [d["status"] for d in listed] == ["delivered", "failed"] else None
    second, first = await until(settled, seconds=15, what="first given up, second delivered")
    assert first["attempts"] >= 2 and first["last_status"] == 503
    assert first["last_error"].startswith("HTTP 503") and first["next_attempt_at"] is None
    assert second["attempts"] == 1 and second["seq"] > first["seq"]
    tried_for = (datetime.fromisoformat(first["last_attempt_at"])
                 - datetime.fromisoformat(first["first_attempt_at"]))
    assert 1.5 <= tried_for.total_seconds() <= 5
    last_try_of_first = max(a.at for a in receiver.arrivals if a.message_id == first["message_id"])
    assert all(a.at > last_try_of_first for a in receiver.arrivals
               if a.message_id == second["message_id"])


async def test_replay_sends_a_delivered_delivery_again_with_its_id_and_the_current_secret(
        client, base, tokens, server, menu, receive):
    owner = bearer(await tokens("owner"))
    receiver = await receive()
    created = await register(client, base, owner, receiver.url)
    webhook = created["webhook"]
    await place_order(client, base, server, menu)
    [delivery] = await until(lambda: deliveries(client, base, owner, webhook["id"], status="delivered"))

    rotated = await client.post(f"{base}/webhooks/{webhook['id']}/rotate-secret", headers=owner)
    assert rotated.status == 200
    new_secret = (await rotated.json())["secret"]
    assert new_secret != created["secret"]
    replayed = await client.post(f"{base}/webhooks/{webhook['id']}/deliveries/{delivery['id']}/replay",
                                 headers=owner)
    assert replayed.status == 202, await replayed.text()
    assert (await replayed.json())["delivery"]["status"] == "pending"
    await until(lambda: len(receiver.arrivals) == 2, what="the replay")
    first, again = receiver.arrivals
    assert again.message_id == first.message_id == delivery["message_id"]
    assert again.body == first.body
    assert verifies(new_secret, again) and not verifies(created["secret"], again)
    [done] = await until(lambda: deliveries(client, base, owner, webhook["id"], status="delivered"))
    assert done["id"] == delivery["id"] and done["attempts"] == 1
    missing = await client.post(f"{base}/webhooks/{webhook['id']}/deliveries/999999/replay",
                                headers=owner)
    assert missing.status == 404 and (await error_of(missing))["code"] == "not_found"


async def test_pausing_skips_events_and_deleting_removes_the_endpoint_and_its_deliveries(
        client, db, base, tokens, server, menu, receive):
    owner = bearer(await tokens("owner"))
    receiver = await receive()
    webhook = (await register(client, base, owner, receiver.url, ["order.*"]))["webhook"]
    path = f"{base}/webhooks/{webhook['id']}"
    paused = await client.patch(path, headers={**owner, "If-Match": str(webhook["version"])},
                                json={"active": False, "description": "books"})
    assert paused.status == 200, await paused.text()
    assert (await paused.json())["webhook"]["active"] is False
    await place_order(client, base, server, menu)  # while paused: skipped
    await asyncio.sleep(3 * POLL)
    stale = await client.patch(path, headers={**owner, "If-Match": str(webhook["version"])},
                               json={"active": True})
    assert stale.status == 412
    resumed = await client.patch(path, headers=owner, json={"active": True, "events": ["order.closed",
                                                                                     "order.created"]})
    assert (await resumed.json())["webhook"]["events"] == ["order.closed", "order.created"]
    order = await place_order(client, base, server, menu)
    await until(lambda: receiver.arrivals, what="a delivery after resuming")
    assert [msgspec.json.decode(a.body)["data"]["order"]["id"] for a in receiver.arrivals] == [order["id"]]
    got = await client.get(path, headers=owner)
    assert got.status == 200 and "secret" not in (await got.json())["webhook"]
    listed = await client.get(base + "/webhooks", headers=owner)
    assert [w["id"] for w in (await listed.json())["items"]] == [webhook["id"]]

    assert (await client.delete(path, headers=owner)).status == 204
    assert (await client.get(path, headers=owner)).status == 404
    assert await db.fetchval("SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1",
                             webhook["id"]) == 0


@pytest.mark.parametrize("config", [{"webhook_poll_seconds": 60.0}], indirect=True)
async def test_a_commit_wakes_the_worker_without_waiting_for_the_poll(
        client, base, tokens, server, menu, receive):
    owner = bearer(await tokens("owner"))
    receiver = await receive()
    await register(client, base, owner, receiver.url)
    await place_order(client, base, server, menu)
    await until(lambda: receiver.arrivals, seconds=5, what="a delivery long before the poll")


async def test_two_instances_deliver_each_event_once(make_client, config, client, base, tokens,
                                                     server, menu, receive):
    await make_client(config)  # a second process on the same database, with its own worker
    owner = bearer(await tokens("owner"))
    receiver = await receive()
    webhook = (await register(client, base, owner, receiver.url))["webhook"]
    await asyncio.gather(*(place_order(client, base, server, menu) for _ in range(6)))
    await until(lambda: _count(client, base, owner, webhook["id"], 6), what="six deliveries")
    await asyncio.sleep(5 * POLL)
    assert len(receiver.arrivals) == len({a.message_id for a in receiver.arrivals}) == 6


async def test_bad_input_is_refused_clearly_and_writes_nothing(client, db, rid, restaurant_ids, base,
                                                                tokens):
    owner = bearer(await tokens("owner"))
    other = bearer(await tokens("owner", "other"))
    others = f"/api/v1/restaurants/{restaurant_ids['other']}"
    theirs = (await register(client, others, other, "https://hooks.example.com/a"))["webhook"]
    ours = (await register(client, base, owner, "https://hooks.example.com/b"))["webhook"]
    refused = {role: bearer(await tokens(role)) for role in ("host", "server", "kitchen")}
    before = await table_counts(db)

    for body, status, code, path in [
            ({"url": "ftp://hooks.example.com/", "events": ["*"]}, 422, "invalid", "$.url"),
            ({"url": "https://me:pw@hooks.example.com/", "events": ["*"]}, 422, "invalid", "$.url"),
            ({"url": "https://", "events": ["*"]}, 422, "invalid", "$.url"),
            ({"url": "https://" + "a" * 2000 + ".com/", "events": ["*"]}, 422, "validation_failed",
             "$.url"),
            ({"url": "https://hooks.example.com/", "events": ["order.created", "order.eaten"]}, 422,
             "invalid", "$.events[1]"),
            ({"url": "https://hooks.example.com/", "events": ["orders.*"]}, 422, "invalid",
             "$.events[0]"),
            ({"url": "https://hooks.example.com/", "events": []}, 422, "validation_failed", "$.events"),
            ({"events": ["*"]}, 422, "validation_failed", "$"),
            ({"url": "https://hooks.example.com/", "events": ["*"], "secret": "mine"}, 422,
             "validation_failed", "$"),
    ]:
        response = await client.post(base + "/webhooks", headers=owner, json=body)
        assert response.status == status, (body, await response.text())
        error = await error_of(response)
        assert error["code"] == code and error["details"][0]["path"] == path, (body, error)
    unknown = await client.post(base + "/webhooks", headers=owner,
                                json={"url": "https://hooks.example.com/", "events": ["order.eaten"]})
    assert "order.eaten" in (await error_of(unknown))["message"]
    bad_patch = await client.patch(f"{base}/webhooks/{ours['id']}", headers=owner,
                                   json={"url": "gopher://hooks.example.com/"})
    assert bad_patch.status == 422 and (await error_of(bad_patch))["details"][0]["path"] == "$.url"

    for method, path in [("GET", "/webhooks/999999"), ("GET", "/webhooks/abc"),
                         ("PATCH", "/webhooks/999999"), ("DELETE", "/webhooks/999999"),
                         ("GET", f"/webhooks/{theirs['id']}"), ("DELETE", f"/webhooks/{theirs['id']}"),
                         ("PATCH", f"/webhooks/{theirs['id']}"),
                         ("POST", f"/webhooks/{theirs['id']}/rotate-secret"),
                         ("GET", f"/webhooks/{theirs['id']}/deliveries"),
                         ("POST", f"/webhooks/{theirs['id']}/deliveries/1/replay")]:
        response = await client.request(method, base + path, headers=owner, json={"active": False})
        assert response.status == 404, (method, path, await response.text())
        assert (await error_of(response))["code"] == "not_found"
    for role, headers in refused.items():
        for method, path in [("POST", "/webhooks"), ("GET", "/webhooks"),
                             ("DELETE", f"/webhooks/{ours['id']}")]:
            response = await client.request(method, base + path, headers=headers,
                                            json={"url": "https://hooks.example.com/", "events": ["*"]})
            assert response.status == 403, (role, method, path)
            assert (await error_of(response))["code"] == "forbidden"
    bad_status = await client.get(f"{base}/webhooks/{ours['id']}/deliveries?status=lost", headers=owner)
    assert bad_status.status == 400 and (await error_of(bad_status))["code"] == "invalid_query"
    assert await table_counts(db) == before


def test_every_event_name_written_in_store_is_a_known_one():
    """store/events.NAMES is the list webhooks validate against: a name emitted anywhere in
    store/ (tx.emit(…), the events SQL writes itself) must be in it."""
    families = {name.partition(".")[0] for name in events.NAMES}
    emitted = set()
    for path in (ROOT / "store").glob("*.py"):
        text = path.read_text()
        emitted |= set(re.findall(r"\.emit\(\s*[^,]+,\s*[^,]+,\s*[\"']([a-z_.]+)[\"']", text))
        emitted |= {name for name in re.findall(r"[\"']([a-z]+(?:_[a-z]+)*\.[a-z]+(?:_[a-z]+)*)[\"']", text)
                    if name.partition(".")[0] in families}
    assert emitted and emitted <= events.NAMES, emitted - events.NAMES
