"""Log records as one JSON line each (or text on a terminal), carrying the request and restaurant ids.

The request_id middleware and the tenancy check publish the ids in context variables,
so every record logged while a request runs (its SQL warnings and tasks it spawns
included) names the request, whichever module logs it. The access log, off by
default, writes one record per request through the same formatter.
"""
from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar, Token
from typing import Any, TextIO

import msgspec
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from server.keys import FORWARDED_FOR, REQUEST_ID, RESTAURANT_ID

FORMATS = ("auto", "json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"

request_id_var: ContextVar[str | None] = ContextVar("log_request_id", default=None)
restaurant_id_var: ContextVar[int | None] = ContextVar("log_restaurant_id", default=None)

# What every LogRecord has; anything else on a record came through `extra=` and is written out.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "request_id", "restaurant_id"}
_encode = msgspec.json.Encoder(enc_hook=repr).encode  # odd `extra=` values as their repr


def begin_request(request_id: str) -> tuple[Token, Token]:
    """Name the request for every record logged until `end_request` (its restaurant unknown yet)."""
    return request_id_var.set(request_id), restaurant_id_var.set(None)


def end_request(tokens: tuple[Token, Token]) -> None:
    request_id_var.reset(tokens[0])
    restaurant_id_var.reset(tokens[1])


class RequestContext(logging.Filter):
    """Stamp each record with the request and restaurant ids of the code that logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        if getattr(record, "restaurant_id", None) is None:
            record.restaurant_id = restaurant_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: newlines in messages and tracebacks are escaped."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in ("request_id", "restaurant_id"):
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return _encode(entry).decode()


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is None:
            record.request_id = "-"
        return super().format(record)


def formatter_for(log_format: str, stream: TextIO) -> logging.Formatter:
    """`json`, `text`, or `auto`: text on a terminal, JSON everywhere else (services, containers)."""
    if log_format not in FORMATS:
        raise SystemExit(f"serveline: log_format must be one of {', '.join(FORMATS)}")
    as_text = log_format == "text" or (log_format == "auto" and stream.isatty())
    return _Text(TEXT_FORMAT) if as_text else JsonFormatter()


def configure_logging(level: str, log_format: str, stream: TextIO | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one writing to stderr in the chosen format."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter_for(log_format, stream))
    handler.addFilter(RequestContext())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


class AccessLog(AbstractAccessLogger):
    """One record per request (`access_log` setting): method, path, route, status, time, ids."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        resource = request.match_info.route.resource if isinstance(request, web.Request) else None
        self.logger.info(
            "%s %s %s %.1f ms", request.method, request.path, response.status, time * 1000,
            extra={"request_id": request.get(REQUEST_ID), "restaurant_id": request.get(RESTAURANT_ID),
                   "method": request.method, "path": request.path,
                   "route": resource.canonical if resource is not None else None,
                   "status": response.status, "duration_ms": round(time * 1000, 3),
                   "remote": request.get(FORWARDED_FOR) or request.remote,
                   "bytes": response.body_length})

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
