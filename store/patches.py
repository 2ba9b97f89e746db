"""What a PATCH body says: each field's value, or None when the client did not send it."""
from __future__ import annotations

from msgspec import UNSET


def sent(field: object) -> object:
    """The field's value, or None when it was left out (SQL then keeps the column: coalesce)."""
    return None if field is UNSET else field
