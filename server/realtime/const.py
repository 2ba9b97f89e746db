"""Close codes, error codes and limits of the socket protocol (docs/protocol.md)."""
from __future__ import annotations

CLOSE_RESUME = 4000  # fell behind or server going away: reconnect with `since`
CLOSE_UNAUTHORIZED = 4001
CLOSE_NOT_FOUND = 4004
CLOSE_POLICY = 4008  # too many errors in a row
CLOSE_BINARY = 1003  # unsupported data
CLOSE_TOO_BIG = 1009

INVALID_FORMAT = "invalid_format"
UNKNOWN_TYPE = "unknown_type"
UNKNOWN_CHANNEL = "unknown_channel"
FORBIDDEN_CHANNEL = "forbidden_channel"
NOT_SUBSCRIBED = "not_subscribed"

MAX_FRAME_BYTES = 64 * 1024
AUTH_TIMEOUT_SECONDS = 5.0
MAX_ERRORS_IN_A_ROW = 64
RECONNECT_JITTER_MS = 5000
REPLAY_BATCH = 1000

FAMILIES = ("manager", "floor", "menu", "orders", "kitchen")
EVERYTHING = frozenset(FAMILIES)
ROLE_CHANNELS: dict[str, frozenset[str]] = {
    "owner": EVERYTHING,
    "manager": EVERYTHING,
    "integration": EVERYTHING,
    "host": frozenset({"floor", "menu"}),
    "server": frozenset({"floor", "menu", "orders", "kitchen"}),
    "kitchen": frozenset({"menu", "orders", "kitchen"}),
}


def family(channel: str) -> str:
    """`kitchen:grill` belongs to `kitchen`."""
    return channel.partition(":")[0]
