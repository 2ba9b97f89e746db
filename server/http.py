"""JSON in and out: msgspec decoding with clear errors, encoding once to bytes."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import date
from typing import Any, TypeVar

import msgspec
from aiohttp import hdrs, web, web_protocol
from aiohttp.http_exceptions import LineTooLong

from server.auth import Handler
from server.errors import HTTP_CODES, ApiError, error_response
from store import pages

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
encode = _encoder.encode
_decoders: dict[Any, msgspec.json.Decoder] = {}


GZIP_MIN_BYTES = 1024  # smaller bodies gain nothing from compression
GZIP_INLINE_BYTES = 64 * 1024  # larger ones are compressed off the event loop


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_encoder.encode(obj), status=status, content_type="application/json",
                        headers=headers, zlib_executor_size=GZIP_INLINE_BYTES)


def wants_gzip(request: web.Request) -> bool:
    return "gzip" in request.headers.get(hdrs.ACCEPT_ENCODING, "").lower()


@web.middleware
def compress_large(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """gzip a large JSON answer when the client takes it (cached answers come gzipped already)."""
    if not wants_gzip(request) or hdrs.UPGRADE in request.headers:
        return handler(request)
    return _compressed(request, handler)


async def _compressed(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if (type(response) is web.Response and isinstance(response.body, bytes)
            and len(response.body) >= GZIP_MIN_BYTES and response.content_type == "application/json"
            and hdrs.CONTENT_ENCODING not in response.headers):
        response.enable_compression(web.ContentCoding.gzip)
        response.headers[hdrs.VARY] = "Accept-Encoding"
    return response


def _decoder(kind: type[T]) -> msgspec.json.Decoder:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    return decoder


def validation_details(error: msgspec.ValidationError) -> list[dict[str, str]]:
    """msgspec says "Expected `int`, got `str` - at `$.seats`": split the path out."""
    message, _, path = str(error).partition(" - at `")
    return [{"path": path.rstrip("`") or "$", "message": message}]


def holds_nul(body: bytes) -> bool:
    """Whether a JSON string in `body` holds U+0000 (`\\u0000`), which PostgreSQL text cannot."""
    at = body.find(b"\\u0000")
    while at != -1:
        start = at
        while start > 0 and body[start - 1] == 0x5C:  # backslashes before it
            start -= 1
        if (at - start) % 2 == 0:  # the escape's own backslash is not itself escaped
            return True
        at = body.find(b"\\u0000", at + 1)
    return False


def parse_body(body: bytes, kind: type[T]) -> T:
    if not body.strip():
        raise ApiError(400, "invalid_json", "the request needs a JSON body")
    try:
        parsed = _decoder(kind).decode(body)
    except msgspec.ValidationError as error:
        details = validation_details(error)
        raise ApiError(422, "validation_failed", f"invalid body: {details[0]['message']}",
                       details) from None
    except msgspec.DecodeError as error:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {error}") from None
    except RecursionError:  # e.g. 100,000 `[`: msgspec gives up on the depth, not the syntax
        raise ApiError(400, "invalid_json", "the body is nested too deeply") from None
    except UnicodeDecodeError:  # msgspec checks UTF-8 inside strings this way
        raise ApiError(400, "invalid_json", "the body is not UTF-8") from None
    if holds_nul(body):
        raise ApiError(422, "validation_failed", "invalid body: text may not contain \\u0000",
                       [{"path": "$", "message": "text may not contain \\u0000"}])
    return parsed


async def decode(request: web.Request, kind: type[T]) -> T:
    """Read and validate a JSON body as `kind`; 400/413/415/422 with the JSON error shape."""
    if request.content_type not in ("application/json", "application/octet-stream") and request.body_exists:
        # application/octet-stream is what aiohttp reports when no Content-Type was sent.
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    return parse_body(await request.read(), kind)


def body_limits(max_bytes: int, read_seconds: float) -> Callable[[web.Request, Handler],
                                                                  Awaitable[web.StreamResponse]]:
    """Read each request's body before its handler, within bounds: a declared length over
    `max_bytes` is refused (413) before a byte is read, and a body that has not fully arrived
    after `read_seconds` (a client trickling it) is refused (408) instead of holding the
    handler forever. aiohttp itself bounds the size as it reads, but never the time."""
    async def read_then_handle(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > max_bytes:
            raise ApiError(413, "payload_too_large",
                           f"the request body is larger than this server accepts ({max_bytes} bytes)")
        try:
            async with asyncio.timeout(read_seconds):
                await request.read()  # kept by aiohttp: the handler's read() gets these bytes
        except TimeoutError:
            raise ApiError(408, "request_timeout",
                           f"the request body did not arrive within {read_seconds:g} s") from None
        return await handler(request)

    @web.middleware
    def bounded_body(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        if not request.body_exists or request.content_type.startswith("multipart/"):
            return handler(request)
        return read_then_handle(request, handler)
    return bounded_body


def unreadable_requests_in_json() -> None:
    """A request aiohttp cannot parse (a header or URL over 8190 bytes, over 128 headers, a
    control byte in a header, raw non-ASCII in the URL) never reaches the app: aiohttp answers it
    itself, in text, and closes the connection. Make that answer the one JSON error shape too.
    aiohttp offers no hook for it, so its handler's error page is wrapped (once per process)."""
    original = getattr(web_protocol.RequestHandler, "handle_error", None)
    if original is None or getattr(original, "in_json", False):
        return  # wrapped already (or an aiohttp without it: its text answers stay)

    def handle_error(self: web_protocol.RequestHandler, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None, message: str | None = None) -> web.StreamResponse:
        original(self, request, status, exc, message)  # logs, and refuses an answer already begun
        if status >= 500:
            text = "something went wrong on our side"
        elif isinstance(exc, LineTooLong):
            text = "the request line or a header is too long (over 8190 bytes)"
        else:
            first = ((message or "").strip().splitlines() or ["malformed"])[0].rstrip(": ")
            text = f"the request is not valid HTTP: {first}"
        response = error_response(status, HTTP_CODES.get(status, "bad_request"), text)
        response.force_close()
        return response

    handle_error.in_json = True  # type: ignore[attr-defined]
    web_protocol.RequestHandler.handle_error = handle_error  # type: ignore[method-assign]


def path_id(request: web.Request, name: str) -> int:
    """An integer id from the path; anything else is simply not found."""
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:  # not "²" or "١"
        raise ApiError(404, "not_found", f"no such {name.removesuffix('_id')}")
    return int(raw)


SEQ_HEADER = "X-Serveline-Seq"


def seq_headers(seq: int) -> dict[str, str]:
    return {SEQ_HEADER: str(seq)}


def written(body: Any, seq: int, status: int = 200) -> web.Response:
    """The answer to a write: the resource, and the seq its events reached."""
    return json_response(body, status=status, headers=seq_headers(seq))


def query_int(request: web.Request, name: str, *, default: int | None = None, low: int = 0,
              high: int = 2**53, required: bool = False) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        if required:
            raise ApiError(400, "invalid_query", f"{name} is required",
                           [{"path": f"query.{name}", "message": "required"}])
        return default
    digits = raw.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()) or len(raw) > 18 or not low <= int(raw) <= high:
        raise ApiError(400, "invalid_query", f"{name} must be a whole number from {low} to {high}",
                       [{"path": f"query.{name}", "message": f"not an integer in [{low}, {high}]"}])
    return int(raw)


def query_choice(request: web.Request, name: str, choices: Iterable[str],
                 default: str | None = None) -> str | None:
    raw = request.query.get(name, default)
    allowed = tuple(choices)
    if raw is not None and raw not in allowed:
        raise ApiError(400, "invalid_query", f"{name} must be one of {', '.join(allowed)}",
                       [{"path": f"query.{name}", "message": "not an allowed value"}])
    return raw


FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)


def query_date(request: web.Request, name: str, *, required: bool = False) -> date | None:
    raw = request.query.get(name)
    if raw is None:
        if required:
            raise ApiError(400, "invalid_query", f"{name} is required (YYYY-MM-DD)",
                           [{"path": f"query.{name}", "message": "required"}])
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "invalid_query", f"{name} must be a date like 2026-11-25",
                       [{"path": f"query.{name}", "message": "not a YYYY-MM-DD date"}]) from None
    if not FIRST_DAY <= day <= LAST_DAY:  # a day and its neighbours stay inside the calendar
        raise ApiError(400, "invalid_query", f"{name} must be from {FIRST_DAY} to {LAST_DAY}",
                       [{"path": f"query.{name}", "message": "out of range"}])
    return day


def page_limit(request: web.Request) -> int:
    return query_int(request, "limit", default=pages.DEFAULT_LIMIT, low=1, high=pages.MAX_LIMIT)


def after_id(request: web.Request) -> int:
    """The id a keyset page starts after (0: the first page)."""
    cursor = request.query.get("cursor")
    return pages.decode_cursor(cursor, tuple[pages.Key])[0] if cursor else 0


def page_response(page: pages.Page, seq: int) -> web.Response:
    return json_response(page, headers=seq_headers(seq))


def expected_version(request: web.Request) -> int | None:
    """The version named by If-Match (`"3"`, `3` or `W/"3"`); None when absent or `*`."""
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise ApiError(400, "invalid_if_match", 'If-Match must be a version, e.g. "3"')
    return int(value)
