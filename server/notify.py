"""Telling a guest "your table is ready": pluggable notifiers, and the delivery kept on the party.

A restaurant picks its notifier by name in its settings (`guest_notifier`):

* `webhook` (the default): the message is a `guest.notify` event written with the notify
  itself; the restaurant's webhooks that subscribe to it deliver it (signed, retried, never
  into our own network: server/webhooks.py), and `following_deliveries` copies each
  delivery's outcome onto its party (queued → retrying → delivered | failed).
* `sms:<provider>`: the message goes to the party's phone through an `SmsProvider` right after
  the notify commits, and the outcome is kept on the party. `sms:log` only logs and keeps the
  message (for development); a real provider subclasses `SmsProvider` and is added to
  `SMS_PROVIDERS` (and its name to `Settings.guest_notifier`).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Literal, Protocol

import asyncpg
import msgspec
from aiohttp import web

from server.keys import CONFIG, POOL
from store import waitlist
from store.waitlist import Guest

log = logging.getLogger("serveline.notify")
FOLLOW_LIMIT = 500  # parties looked at per round


class Delivery(msgspec.Struct, frozen=True):
    """What a notifier could say right after sending."""
    status: Literal["queued", "retrying", "delivered", "failed"]
    attempts: int = 0
    error: str | None = None


class Notifier(Protocol):
    """One way of telling a guest. `outbox` notifiers send through the `guest.notify` event
    written with the notify (their outcome is followed later); the others send in `send`."""
    outbox: bool

    async def send(self, party: Guest, message: str) -> Delivery: ...


class WebhookNotifier:
    """The default: the `guest.notify` event is the message, the webhook queue its delivery."""
    outbox = True

    async def send(self, party: Guest, message: str) -> Delivery:
        return Delivery(status="queued")  # already on its way: committed with the notify


class SmsError(Exception):
    """A provider's refusal or failure, in words the host can read."""


class SmsProvider:
    """Where a real SMS service plugs in: subclass, set `name`, implement `send_sms` (raise
    SmsError when the message was not accepted), and add the class to SMS_PROVIDERS."""
    name = ""

    async def send_sms(self, phone: str, text: str) -> None:
        raise NotImplementedError


class LogSmsProvider(SmsProvider):
    """For development: sends nothing, logs the message and keeps it in `sent`."""
    name = "log"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send_sms(self, phone: str, text: str) -> None:
        self.sent.append((phone, text))
        log.info("SMS to %s: %s", phone, text)


SMS_PROVIDERS: dict[str, type[SmsProvider]] = {LogSmsProvider.name: LogSmsProvider}


class SmsNotifier:
    """Texts the party's phone through one provider: one attempt per notify."""
    outbox = False

    def __init__(self, provider: SmsProvider) -> None:
        self.provider = provider

    async def send(self, party: Guest, message: str) -> Delivery:
        if not party.phone:
            return Delivery(status="failed", error="the party left no phone number")
        try:
            await self.provider.send_sms(party.phone, message)
        except SmsError as error:
            return Delivery(status="failed", attempts=1, error=str(error)[:500])
        except Exception as error:  # a provider's own failure is the party's status, never a 500
            log.warning("SMS provider %s failed", self.provider.name, exc_info=True)
            return Delivery(status="failed", attempts=1, error=f"{type(error).__name__}: {error}"[:500])
        return Delivery(status="delivered", attempts=1)


def notifiers() -> dict[str, Notifier]:
    """Every notifier this process has, by the name a restaurant's settings use."""
    found: dict[str, Notifier] = {"webhook": WebhookNotifier()}
    for name, provider in SMS_PROVIDERS.items():
        found[f"sms:{name}"] = SmsNotifier(provider())
    return found


NOTIFIERS: web.AppKey[dict[str, Notifier]] = web.AppKey("notifiers")


async def notify_guest(app: web.Application, rid: int, party_id: int,
                       expected: int | None) -> tuple[msgspec.Raw, int]:
    """Mark the party notified and send "your table is ready"; the party as it now stands."""
    pool = app[POOL]
    guest, raw, seq = await waitlist.notify(pool, rid, party_id, expected)
    notifier = app[NOTIFIERS].get(guest.via)
    if notifier is None:
        delivery = Delivery(status="failed", error=f"this server has no notifier {guest.via!r}")
    elif notifier.outbox:
        return raw, seq
    else:
        delivery = await notifier.send(guest, guest.message)
    recorded = await waitlist.record_delivery(pool, guest, delivery.status, delivery.attempts,
                                              delivery.error)
    return recorded or (raw, seq)


async def _follow(pool: asyncpg.Pool, every: float) -> None:
    """Copy webhook outcomes onto parties, round after round, until cancelled."""
    while True:
        try:
            await waitlist.follow_deliveries(pool, FOLLOW_LIMIT)
        except Exception:  # the database may be restarting; the next round tries again
            log.warning("following guest notifications failed", exc_info=True)
        await asyncio.sleep(every)


async def following_deliveries(app: web.Application) -> AsyncIterator[None]:
    """The notifiers, and the task that follows webhook messages (as often as webhooks poll)."""
    app[NOTIFIERS] = notifiers()
    task = asyncio.create_task(_follow(app[POOL], max(app[CONFIG].webhook_poll_seconds, 0.05)))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
