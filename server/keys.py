"""Typed keys for what the app and each request carry."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec
from aiohttp import web

from server.auth import LoginThrottle, Passwords
from server.config import Config
from store.credentials import Principal
from store.replicas import Reads

if TYPE_CHECKING:
    from server.cache import ResponseCache
    from server.identity import Credentials
    from server.querylog import QueryLog
    from server.ratelimit import RateLimits
    from server.realtime.hub import Hub
    from server.realtime.revocation import Revocations
    from server.webhooks import WebhookWorker


class OpenApi(msgspec.Struct, frozen=True):
    spec: dict[str, Any]
    encoded: bytes


CONFIG = web.AppKey("config", Config)
OPENAPI = web.AppKey("openapi", OpenApi)
QUERY_LOG: web.AppKey[QueryLog] = web.AppKey("query_log")
HUB: web.AppKey[Hub] = web.AppKey("hub")
REVOCATIONS: web.AppKey[Revocations] = web.AppKey("revocations")
CACHE: web.AppKey[ResponseCache] = web.AppKey("cache")
CREDENTIALS: web.AppKey[Credentials] = web.AppKey("credentials")
POOL = web.AppKey("pool", asyncpg.Pool)
READS = web.AppKey("reads", Reads)  # the primary, or a read replica, for reads that tolerate lag
PASSWORDS = web.AppKey("passwords", Passwords)
LOGIN_THROTTLE = web.AppKey("login_throttle", LoginThrottle)
RATE_LIMITS: web.AppKey[RateLimits] = web.AppKey("rate_limits")
WEBHOOKS: web.AppKey[WebhookWorker] = web.AppKey("webhooks")
DEMO_PASSWORD = web.AppKey("demo_password", str)  # set only when this start seeded the demo

REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)
RESTAURANT_ID = web.RequestKey("restaurant_id", int)
ROLE = web.RequestKey("role", str)
FORWARDED_FOR = web.RequestKey("forwarded_for", str)  # the client address our proxy saw
