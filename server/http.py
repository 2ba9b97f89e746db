"""JSON in and out: msgspec decoding with clear errors, encoding once to bytes."""
from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from aiohttp import web

from server.errors import ApiError

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder] = {}


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_encoder.encode(obj), status=status,
                        content_type="application/json", headers=headers)


def _decoder(kind: type[T]) -> msgspec.json.Decoder:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    return decoder


def validation_details(error: msgspec.ValidationError) -> list[dict[str, str]]:
    """msgspec says "Expected `int`, got `str` - at `$.seats`": split the path out."""
    message, _, path = str(error).partition(" - at `")
    return [{"path": path.rstrip("`") or "$", "message": message}]


def parse_body(body: bytes, kind: type[T]) -> T:
    if not body.strip():
        raise ApiError(400, "invalid_json", "the request needs a JSON body")
    try:
        return _decoder(kind).decode(body)
    except msgspec.ValidationError as error:
        details = validation_details(error)
        raise ApiError(422, "validation_failed", f"invalid body: {details[0]['message']}",
                       details) from None
    except msgspec.DecodeError as error:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {error}") from None


async def decode(request: web.Request, kind: type[T]) -> T:
    """Read and validate a JSON body as `kind`; 400/413/415/422 with the JSON error shape."""
    if request.content_type not in ("application/json", "application/octet-stream") and request.body_exists:
        # application/octet-stream is what aiohttp reports when no Content-Type was sent.
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    return parse_body(await request.read(), kind)


def path_id(request: web.Request, name: str) -> int:
    """An integer id from the path; anything else is simply not found."""
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(404, "not_found", f"no such {name.removesuffix('_id')}")
    return int(raw)
