""""Your table is ready": sent through the restaurant's notifier (a `guest.notify` webhook by
default, an SMS provider when configured), with the message and its delivery kept on the party."""
from __future__ import annotations

from typing import Any

import msgspec
import pytest
import test_webhooks
from conftest import bearer, error_of, table_counts
from test_webhooks import FAST, always, failing_first, register, until

from server.notify import NOTIFIERS, SmsError, SmsNotifier, SmsProvider

receive = test_webhooks.receive  # a receiver on a real socket of 127.0.0.1


@pytest.fixture
def config(config, request):
    """Quick webhook rounds and retries, receivers on 127.0.0.1 allowed."""
    return msgspec.structs.replace(config, **{**FAST, **getattr(request, "param", {})})


@pytest.fixture
async def owner(tokens) -> dict[str, str]:
    return bearer(await tokens("owner"))


async def add(client, base, host, **body: Any) -> dict[str, Any]:
    response = await client.post(base + "/waitlist", headers=host,
                                 json={"name": "Ada", "size": 2, "phone": "+1 555 0100", **body})
    assert response.status == 201, await response.text()
    return await response.json()


async def notify(client, base, host, party: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await client.post(f"{base}/waitlist/{party['id']}/notify", headers={**host, **headers})
    assert response.status == 200, await response.text()
    return await response.json()


async def party_now(client, base, host, party_id: int) -> dict[str, Any]:
    return await (await client.get(f"{base}/waitlist/{party_id}", headers=host)).json()


async def use_notifier(client, base, owner, name: str, message: str | None = None) -> None:
    settings = {"guest_notifier": name, **({"guest_ready_message": message} if message else {})}
    response = await client.patch(base, headers=owner, json={"settings": settings})
    assert response.status == 200, await response.text()


async def test_notify_sends_a_guest_notify_webhook_and_the_party_shows_it_delivered(
        client, db, rid, base, host, owner, receive) -> None:
    receiver = await receive()
    await register(client, base, owner, receiver.url, ["guest.notify"])
    party = await add(client, base, host, size=4)
    told = await notify(client, base, host, party)
    assert told["status"] == "notified"
    note = told["notification"]
    assert note == {**note, "via": "webhook", "count": 1, "status": "queued", "attempts": 0,
                    "error": None, "message": "Ada, your table at Demo Bistro is ready."}

    await until(lambda: receiver.arrivals, what="the guest.notify delivery")
    sent = msgspec.json.decode(receiver.arrivals[0].body)
    assert sent["name"] == "guest.notify" and sent["channel"] == "floor"
    assert sent["data"] == {"party_id": party["id"], "name": "Ada", "size": 4, "phone": "+1 555 0100",
                            "message": note["message"], "count": 1}

    async def delivered():
        now = (await party_now(client, base, host, party["id"]))["notification"]
        return now if now["status"] == "delivered" else None
    done = await until(delivered, what="the party's delivery status")
    assert done["attempts"] == 1 and done["error"] is None and done["at"]
    data = await db.fetchval("SELECT data FROM events WHERE restaurant_id = $1 AND name = 'waitlist.updated' "
                             "ORDER BY seq DESC LIMIT 1", rid)
    assert msgspec.json.decode(data)["party"]["notification"]["status"] == "delivered"


async def test_the_message_follows_the_restaurants_words(client, base, host, owner, receive) -> None:
    receiver = await receive()
    await register(client, base, owner, receiver.url, ["guest.*"])
    await use_notifier(client, base, owner, "webhook", "{name} ({size}): come to {restaurant}! {x}")
    party = await add(client, base, host, name="Grace", size=3)
    told = await notify(client, base, host, party)
    assert told["notification"]["message"] == "Grace (3): come to Demo Bistro! {x}"


async def test_a_failing_receiver_shows_retrying_then_delivered(client, base, host, owner,
                                                                receive) -> None:
    receiver = await receive(failing_first(2))
    await register(client, base, owner, receiver.url, ["guest.notify"])
    party = await add(client, base, host)
    await notify(client, base, host, party)

    async def status(wanted: str):
        now = (await party_now(client, base, host, party["id"]))["notification"]
        return now if now["status"] == wanted else None
    retrying = await until(lambda: status("retrying"), what="retrying")
    assert retrying["attempts"] >= 1 and "HTTP 500" in retrying["error"]
    delivered = await until(lambda: status("delivered"), what="delivered after two failures")
    assert delivered["attempts"] == 3 and delivered["error"] is None


@pytest.mark.parametrize("config", [{"webhook_give_up_hours": 0.0003}], indirect=True)
async def test_a_receiver_that_keeps_failing_leaves_the_party_failed(client, base, host, owner,
                                                                     receive) -> None:
    receiver = await receive(always(503))
    await register(client, base, owner, receiver.url, ["guest.notify"])
    party = await add(client, base, host)
    await notify(client, base, host, party)

    async def failed():
        now = (await party_now(client, base, host, party["id"]))["notification"]
        return now if now["status"] == "failed" else None
    gone = await until(failed, seconds=15, what="failed after the give-up time")
    assert gone["attempts"] >= 1 and "HTTP 503" in gone["error"]


async def test_without_a_webhook_for_guest_notify_the_message_fails_at_once(client, db, rid, base,
                                                                            host, owner) -> None:
    await register(client, base, owner, "https://example.com/hook", ["order.created"])
    party = await add(client, base, host)
    told = await notify(client, base, host, party)
    assert told["status"] == "notified"
    assert told["notification"]["status"] == "failed"
    assert told["notification"]["error"] == "no active webhook subscribes to guest.notify"
    assert not await db.fetchval("SELECT count(*) FROM events WHERE restaurant_id = $1 "
                                 "AND name = 'guest.notify'", rid)


async def test_notifying_again_sends_again_and_counts(client, db, rid, base, host, owner,
                                                     receive) -> None:
    receiver = await receive()
    await register(client, base, owner, receiver.url, ["guest.notify"])
    party = await add(client, base, host)
    first = await notify(client, base, host, party)
    second = await notify(client, base, host, party, **{"If-Match": f'"{first["version"]}"'})
    assert second["status"] == "notified" and second["notification"]["count"] == 2
    assert second["version"] == first["version"] + 1
    await until(lambda: len(receiver.arrivals) == 2, what="both messages")
    counts = [msgspec.json.decode(a.body)["data"]["count"] for a in receiver.arrivals]
    assert counts == [1, 2]
    stale = await client.post(f"{base}/waitlist/{party['id']}/notify",
                              headers={**host, "If-Match": f'"{first["version"]}"'})
    assert stale.status == 412


@pytest.mark.parametrize("how", ["seat", "leave"])
async def test_notifying_a_seated_or_gone_party_is_409_and_writes_nothing(client, db, base, host,
                                                                          how) -> None:
    party = await add(client, base, host)
    assert (await client.post(f"{base}/waitlist/{party['id']}/{how}", headers=host)).status == 200
    before = await table_counts(db)
    events = await db.fetchval("SELECT count(*) FROM events")
    response = await client.post(f"{base}/waitlist/{party['id']}/notify", headers=host)
    assert response.status == 409
    error = await error_of(response)
    assert error["code"] == "conflict"
    assert error["details"][0]["status"] == ("seated" if how == "seat" else "left")
    assert await table_counts(db) == before
    assert await db.fetchval("SELECT count(*) FROM events") == events
    assert (await party_now(client, base, host, party["id"]))["notification"] is None


async def test_the_sms_log_provider_records_the_message(client, base, host, owner) -> None:
    await use_notifier(client, base, owner, "sms:log")
    party = await add(client, base, host, name="Linus")
    told = await notify(client, base, host, party)
    note = told["notification"]
    assert (note["via"], note["status"], note["attempts"]) == ("sms:log", "delivered", 1)
    provider = client.app[NOTIFIERS]["sms:log"].provider
    assert provider.sent == [("+1 555 0100", "Linus, your table at Demo Bistro is ready.")]
    no_phone = await add(client, base, host, name="Ada", phone=None)
    failed = (await notify(client, base, host, no_phone))["notification"]
    assert failed["status"] == "failed" and failed["error"] == "the party left no phone number"


@pytest.mark.parametrize("failure, said", [
    (SmsError("number not reachable"), "number not reachable"),
    (OSError("connection reset by the provider"), "OSError: connection reset by the provider")])
async def test_a_provider_that_refuses_or_breaks_leaves_the_party_failed(client, base, host, owner,
                                                                         failure, said) -> None:
    class Refusing(SmsProvider):
        name = "refusing"

        async def send_sms(self, phone: str, text: str) -> None:
            raise failure
    client.app[NOTIFIERS]["sms:log"] = SmsNotifier(Refusing())  # a provider plugged in by name
    await use_notifier(client, base, owner, "sms:log")
    told = await notify(client, base, host, await add(client, base, host))  # a 200, never a 500
    assert told["notification"] == {**told["notification"], "status": "failed", "attempts": 1,
                                    "error": said}


@pytest.mark.parametrize("settings,path", [
    ({"guest_notifier": "sms:nope"}, "$.settings.guest_notifier"),
    ({"guest_notifier": "pigeon"}, "$.settings.guest_notifier"),
    ({"guest_ready_message": ""}, "$.settings.guest_ready_message"),
    ({"guest_ready_message": "x" * 301}, "$.settings.guest_ready_message"),
])
async def test_bad_notifier_settings_are_422_and_write_nothing(client, db, base, owner, settings,
                                                               path) -> None:
    before = await table_counts(db)
    response = await client.patch(base, headers=owner, json={"settings": settings})
    assert response.status == 422
    assert (await error_of(response))["details"][0]["path"] == path
    assert await table_counts(db) == before
