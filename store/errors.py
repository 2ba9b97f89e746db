"""Domain errors raised by the store; the HTTP layer maps each to one status."""
from __future__ import annotations


class StoreError(Exception):
    code = "bad_request"

    def __init__(self, message: str, details: list[dict] | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        if code is not None:  # a more precise code of the same kind (`pacing_limit`, a Conflict)
            self.code = code


class NotFound(StoreError):
    code = "not_found"


class Conflict(StoreError):
    code = "conflict"


class Forbidden(StoreError):
    code = "forbidden"


class Invalid(StoreError):
    """Well-formed input that the domain rejects (422)."""
    code = "invalid"


class Stale(StoreError):
    """The caller's If-Match version is no longer current (412)."""
    code = "precondition_failed"


class BadCursor(StoreError):
    code = "invalid_cursor"
