"""Outgoing webhooks: managers register endpoints; events reach them signed, in order, retried."""
from __future__ import annotations

import msgspec
from aiohttp import web

from server.auth import MANAGERS, requires
from server.errors import ApiError
from server.http import (
    after_id,
    decode,
    expected_version,
    json_response,
    page_limit,
    page_response,
    path_id,
    query_choice,
    query_int,
    seq_headers,
    written,
)
from server.keys import CONFIG, POOL, RESTAURANT_ID, WEBHOOKS
from server.openapi import PAGING, Page, Query, documented
from server.outbound import url_refusal
from store import webhooks

routes = web.RouteTableDef()
WEBHOOKS_PATH = "/api/v1/restaurants/{rid}/webhooks"
WEBHOOK_PATH = WEBHOOKS_PATH + "/{webhook_id}"


class WebhookOut(msgspec.Struct, frozen=True):
    webhook: webhooks.Webhook


class DeliveryOut(msgspec.Struct, frozen=True):
    delivery: webhooks.Delivery


def check_url(request: web.Request, url: str) -> None:
    """422 for a URL webhooks may not go to (scheme, user info, a private address …)."""
    problem = url_refusal(url, request.app[CONFIG].webhook_allow_private)
    if problem is not None:
        raise ApiError(422, "invalid", f"this URL cannot receive webhooks: {problem}",
                       [{"path": "$.url", "message": problem}])


@routes.get(WEBHOOKS_PATH)
@requires(MANAGERS)
@documented(returns=Page[webhooks.Webhook], query=PAGING)
async def list_webhooks(request: web.Request) -> web.Response:
    page, seq = await webhooks.list_webhooks(request.app[POOL], request[RESTAURANT_ID],
                                             page_limit(request), after_id(request))
    return page_response(page, seq)


@routes.post(WEBHOOKS_PATH)
@requires(MANAGERS)
@documented(body=webhooks.WebhookIn, returns=webhooks.WebhookWithSecret, status=201)
async def create_webhook(request: web.Request) -> web.Response:
    """Register an endpoint; its signing secret is shown only in this answer."""
    body = await decode(request, webhooks.WebhookIn)
    check_url(request, body.url)
    created, seq = await webhooks.create(request.app[POOL], request[RESTAURANT_ID], body)
    return written(created, seq, 201)


@routes.get(WEBHOOK_PATH)
@requires(MANAGERS)
@documented(returns=WebhookOut)
async def get_webhook(request: web.Request) -> web.Response:
    raw = await webhooks.get(request.app[POOL], request[RESTAURANT_ID], path_id(request, "webhook_id"))
    return json_response(WebhookOut(webhook=raw))


@routes.patch(WEBHOOK_PATH)
@requires(MANAGERS)
@documented(body=webhooks.WebhookPatch, returns=WebhookOut)
async def patch_webhook(request: web.Request) -> web.Response:
    """Change the URL, events or description, or pause (`active: false`) and resume."""
    webhook_id = path_id(request, "webhook_id")
    body = await decode(request, webhooks.WebhookPatch)
    if body.url is not msgspec.UNSET:
        check_url(request, body.url)
    webhook, seq = await webhooks.patch(request.app[POOL], request[RESTAURANT_ID], webhook_id, body,
                                        expected_version(request))
    return written(WebhookOut(webhook=webhook), seq)


@routes.delete(WEBHOOK_PATH)
@requires(MANAGERS)
@documented(status=204)
async def delete_webhook(request: web.Request) -> web.Response:
    seq = await webhooks.delete(request.app[POOL], request[RESTAURANT_ID],
                                path_id(request, "webhook_id"))
    return web.Response(status=204, headers=seq_headers(seq))


@routes.post(WEBHOOK_PATH + "/rotate-secret")
@requires(MANAGERS)
@documented(returns=webhooks.WebhookWithSecret)
async def rotate_webhook_secret(request: web.Request) -> web.Response:
    """A new signing secret, shown only in this answer; the old one stops at once."""
    rotated, seq = await webhooks.rotate_secret(request.app[POOL], request[RESTAURANT_ID],
                                                path_id(request, "webhook_id"))
    return written(rotated, seq)


@routes.get(WEBHOOK_PATH + "/deliveries")
@requires(MANAGERS)
@documented(returns=Page[webhooks.Delivery], query=(
    *PAGING, Query("status", str, description="pending, delivered or failed (default: all)"),
    Query("before", int, description="only deliveries with a smaller id")))
async def list_deliveries(request: web.Request) -> web.Response:
    """An endpoint's deliveries, newest first, with their attempts and last answer."""
    webhook_id = path_id(request, "webhook_id")
    status = query_choice(request, "status", webhooks.STATUSES)
    before = after_id(request) or query_int(request, "before", default=0, high=2**63 - 1)
    page, seq = await webhooks.list_deliveries(request.app[POOL], request[RESTAURANT_ID], webhook_id,
                                               page_limit(request), before, status)
    return page_response(page, seq)


@routes.post(WEBHOOK_PATH + "/deliveries/{delivery_id}/replay")
@requires(MANAGERS)
@documented(returns=DeliveryOut, status=202)
async def replay_delivery(request: web.Request) -> web.Response:
    """Send a delivery again, now, with the same `webhook-id` (receivers dedupe by it)."""
    delivery = await webhooks.replay(request.app[POOL], request[RESTAURANT_ID],
                                     path_id(request, "webhook_id"), path_id(request, "delivery_id"))
    if WEBHOOKS in request.app:
        request.app[WEBHOOKS].nudge()
    return json_response(DeliveryOut(delivery=delivery), status=202)
