"""Webhook delivery: each process signs and sends every endpoint's events, in seq order, retried.

Every `webhook_poll_seconds` (at once when this process hears of a commit) a round turns
new events into deliveries (store/webhook_queue.py) and starts a task for each endpoint
whose oldest pending delivery is due. That task leases the endpoint (no other process sends
to it meanwhile) and sends its deliveries one at a time until one fails; a failure is tried
again after an exponential back-off with jitter, and given up after `webhook_give_up_hours`.
Endpoints are served side by side (at most `webhook_concurrency` at once), so a dead or slow
receiver costs one slot for one timeout, never the others or the service. Delivery is at
least once: a receiver dedupes by the `webhook-id` header.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator
from typing import NamedTuple

import aiohttp
import asyncpg
from aiohttp import web

from server.alerts import INSTANCE
from server.config import Config
from server.keys import CONFIG, HUB, POOL, WEBHOOKS
from server.outbound import GuardedResolver, RefusedAddress, url_refusal
from store import webhook_queue
from store.webhook_queue import Due
from store.webhooks import SECRET_PREFIX, message_id

log = logging.getLogger("serveline.webhooks")
USER_AGENT = "Serveline-Webhooks/1"
ENQUEUE_BATCH = 1000  # events looked at per endpoint and round
DUE_LIMIT = 1000  # endpoints started per round
RUN_LENGTH = 100  # deliveries sent under one lease before other endpoints get the slot
ROUND_GAP = 0.05  # seconds between rounds at least: a busy log wakes the worker on every commit
LEASE_MARGIN_SECONDS = 30.0  # a lease outlives one attempt by this much
KEPT_HOURS = 7 * 24.0  # delivered and given-up deliveries stay listed a week
PURGE_SECONDS = 3600.0
ERROR_CHARS = 300


class Outcome(NamedTuple):
    delivered: bool
    status: int | None  # the receiver's HTTP status; None when it never answered
    error: str | None


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body` under the secret's bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def retry_delay(config: Config, attempts: int) -> float:
    """Seconds before the next try after `attempts` failures: base·2^(attempts−1), capped,
    times a jitter in [0.5, 1] so receivers coming back are not hit by every sender at once."""
    delay = config.webhook_retry_base_seconds * 2.0 ** min(attempts - 1, 60)
    return min(delay, config.webhook_retry_max_seconds) * random.uniform(0.5, 1.0)


def _short(text: str) -> str:
    """One line, no control characters, at most ERROR_CHARS: what `last_error` shows."""
    flat = "".join(c if c.isprintable() else " " for c in text).strip()
    return flat if len(flat) <= ERROR_CHARS else flat[:ERROR_CHARS - 1] + "…"


class WebhookWorker:
    """This process's deliveries: the rounds, one task per endpoint, one HTTP session."""

    def __init__(self, pool: asyncpg.Pool, config: Config) -> None:
        self.pool, self.config = pool, config
        self.owner = f"{INSTANCE}:{secrets.token_hex(4)}"  # this worker's name on a lease
        self.lease_seconds = config.webhook_timeout_seconds + LEASE_MARGIN_SECONDS
        self.slots = asyncio.Semaphore(config.webhook_concurrency)
        self.running: dict[tuple[int, int], asyncio.Task[None]] = {}
        self.wake = asyncio.Event()
        self.endpoints = True  # whether any exist (commits wake the worker only then)
        self.purged_at = 0.0
        self.session: aiohttp.ClientSession | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self.config.webhook_allow_private),
            limit=self.config.webhook_concurrency)
        self.session = aiohttp.ClientSession(
            connector=connector, headers={"User-Agent": USER_AGENT}, trust_env=False,
            timeout=aiohttp.ClientTimeout(total=self.config.webhook_timeout_seconds))
        self.task = asyncio.create_task(self._rounds())

    async def stop(self) -> None:
        tasks = [t for t in (self.task, *self.running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.session is not None:
            await self.session.close()

    def heard(self, _restaurant_id: int, _seq: int, families: frozenset[str] | None) -> None:
        """A hub follower: a commit may have made deliveries. With no active endpoint only a
        `manager` event can change that (webhook.created, webhook.updated)."""
        if self.endpoints or families is None or "manager" in families:
            self.wake.set()

    def nudge(self) -> None:
        """Look for due deliveries now (a replay made one due)."""
        self.wake.set()

    async def _rounds(self) -> None:
        poll = self.config.webhook_poll_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await self.wake.wait()
            self.wake.clear()
            try:
                await self.round()
            except Exception:  # the database may be restarting; try again next round
                log.warning("webhook round failed; retrying in %.1f s", poll, exc_info=True)
                await asyncio.sleep(poll)
            await asyncio.sleep(min(ROUND_GAP, poll))

    async def round(self) -> None:
        """Queue new events, then start each due endpoint not already being served here."""
        _queued, self.endpoints = await webhook_queue.enqueue(self.pool, ENQUEUE_BATCH)
        for key in await webhook_queue.due_endpoints(self.pool, DUE_LIMIT):
            if key not in self.running:
                task = asyncio.create_task(self._serve(*key))
                self.running[key] = task
                task.add_done_callback(lambda _done, key=key: self.running.pop(key, None))
        if time.monotonic() - self.purged_at > PURGE_SECONDS:
            self.purged_at = time.monotonic()
            await webhook_queue.purge(self.pool, KEPT_HOURS)

    async def _serve(self, rid: int, endpoint_id: int) -> None:
        """Send an endpoint's due deliveries in seq order until one fails, under its lease."""
        async with self.slots:
            try:
                if not await webhook_queue.claim(self.pool, rid, endpoint_id, self.owner,
                                                 self.lease_seconds):
                    return  # another process holds it
                try:
                    await self._send_due(rid, endpoint_id)
                finally:
                    await webhook_queue.release(self.pool, rid, endpoint_id, self.owner)
            except Exception:  # the database may be away: the lease runs out, a later round retries
                log.warning("webhook %d of restaurant %d: delivery stopped",
                            endpoint_id, rid, exc_info=True)

    async def _send_due(self, rid: int, endpoint_id: int) -> None:
        config = self.config
        for _ in range(RUN_LENGTH):
            due = await webhook_queue.next_due(self.pool, rid, endpoint_id, self.owner)
            if due is None:
                return
            started = time.monotonic()
            outcome = await self.attempt(due)
            status = await webhook_queue.record(
                self.pool, due, endpoint_id, self.owner, elapsed=time.monotonic() - started,
                delivered=outcome.delivered, status=outcome.status, error=outcome.error,
                retry_in=retry_delay(config, due.attempts + 1),
                give_up_after=config.webhook_give_up_hours * 3600.0, lease=self.lease_seconds)
            if status == "failed":
                log.warning("webhook %d of restaurant %d gave up on seq %d: %s",
                            endpoint_id, rid, due.seq, outcome.error)
            elif status != "delivered":
                return  # to be tried again later (it holds back the later ones), or lease lost

    async def attempt(self, due: Due) -> Outcome:
        """One signed POST of a delivery; anything but a 2xx answer is a failure, said briefly."""
        assert self.session is not None
        refusal = url_refusal(due.url, self.config.webhook_allow_private)
        if refusal is not None:
            return Outcome(False, None, _short(f"refused: {refusal}"))
        msg_id, timestamp = message_id(due.restaurant_id, due.id), int(time.time())
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                   "webhook-signature": signature(due.secret, msg_id, timestamp, due.body),
                   "Content-Type": "application/json"}
        try:
            async with self.session.post(due.url, data=due.body, headers=headers,
                                         allow_redirects=False) as response:
                if 200 <= response.status < 300:
                    return Outcome(True, response.status, None)
                said = (await response.content.read(ERROR_CHARS)).decode("utf-8", "replace")
                return Outcome(False, response.status,
                               _short(f"HTTP {response.status} {response.reason or ''}: {said}"
                                      .rstrip(": ")))
        except TimeoutError:
            return Outcome(False, None, f"no answer within {self.config.webhook_timeout_seconds:g} s")
        except aiohttp.ClientConnectorError as error:
            if isinstance(error.os_error, RefusedAddress):
                return Outcome(False, None, _short(str(error.os_error)))
            return Outcome(False, None, _short(f"cannot connect to {error.host}:{error.port}: "
                                               f"{error.os_error.strerror or error.os_error}"))
        except (aiohttp.ClientError, OSError, ValueError) as error:
            return Outcome(False, None, _short(f"{type(error).__name__}: {error}"))


async def delivering_webhooks(app: web.Application) -> AsyncIterator[None]:
    """The worker, started after the hub (commits wake it) and stopped before the pool."""
    worker = app[WEBHOOKS] = WebhookWorker(app[POOL], app[CONFIG])
    app[HUB].on_commit.append(worker.heard)
    worker.start()
    yield
    await worker.stop()
