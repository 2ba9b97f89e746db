"""What clients send (a msgspec tagged union, one decoder) and what the server sends (bytes)."""
from __future__ import annotations

import struct
from typing import Annotated, Any

import msgspec


class Auth(msgspec.Struct, tag_field="type", tag="auth", forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(max_length=200)]


Seq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]  # a bigint


class Subscribe(msgspec.Struct, tag_field="type", tag="subscribe", forbid_unknown_fields=True):
    channels: Annotated[list[Annotated[str, msgspec.Meta(max_length=40)]],
                        msgspec.Meta(min_length=1, max_length=20)]
    epoch: str | None = None
    since: Seq | None = None


class Ack(msgspec.Struct, tag_field="type", tag="ack", forbid_unknown_fields=True):
    seq: Seq


class Ping(msgspec.Struct, tag_field="type", tag="ping", forbid_unknown_fields=True):
    pass


ClientMessage = Auth | Subscribe | Ack | Ping
decoder = msgspec.json.Decoder(ClientMessage)
_encode = msgspec.json.encode
# What decoding a client's frame may raise besides msgspec's own errors: invalid UTF-8 inside
# a string (UnicodeDecodeError), and nesting deeper than the interpreter allows.
UNREADABLE = (msgspec.MsgspecError, ValueError, RecursionError)


class Kind(msgspec.Struct):
    """Just the type, to tell an unknown type from a malformed known one."""
    type: str


kind_decoder = msgspec.json.Decoder(Kind)


def event(seq: int, channel: str, name: str, at: str, data: Any) -> bytes:
    """One event, encoded once and sent as the same bytes to every subscriber."""
    return _encode({"type": "event", "seq": seq, "channel": channel, "name": name, "at": at,
                    "data": data})


def welcome(role: str, device_id: int | None, epoch: str, seq: int, heartbeat: float) -> bytes:
    return _encode({"type": "welcome", "role": role, "device_id": device_id, "epoch": epoch,
                    "seq": seq, "heartbeat_s": heartbeat})


def subscribed(channels: list[str], epoch: str, seq: int) -> bytes:
    return _encode({"type": "subscribed", "channels": channels, "epoch": epoch, "seq": seq})


def reset(epoch: str, seq: int, snapshot: Any) -> bytes:
    return _encode({"type": "reset", "epoch": epoch, "seq": seq, "snapshot": snapshot})


def error(code: str, message: str) -> bytes:
    return _encode({"type": "error", "code": code, "message": message})


def reconnect(after_ms: int) -> bytes:
    return _encode({"type": "reconnect", "after_ms": after_ms})


PONG = _encode({"type": "pong"})


def raw(json_text: str) -> msgspec.Raw:
    """JSON text from PostgreSQL, to be sent as it is."""
    return msgspec.Raw(json_text.encode())


def frame(payload: bytes) -> bytes:
    """An unmasked server-to-client text frame (RFC 6455 §5.2).

    Built once per broadcast so that every subscriber gets the very same bytes;
    sockets run without compression, so a frame is just this header and the payload.
    """
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload
