"""Who a credential is, and their role in the restaurant a path names: shared by HTTP and sockets."""
from __future__ import annotations

from aiohttp import web

from server.errors import not_found, unauthorized
from server.keys import POOL
from store import credentials
from store.credentials import Principal


async def identify(app: web.Application, token: str) -> Principal:
    """The principal behind a token; 401 when unknown, revoked or expired."""
    principal = await credentials.resolve(app[POOL], token)
    if principal is None:
        raise unauthorized("this token is unknown or has been revoked")
    if principal.expired:
        raise unauthorized("this session has expired; sign in again")
    return principal


def restaurant_role(principal: Principal, raw_rid: str) -> tuple[int, str]:
    """(restaurant id, role) for a path's `{rid}`; another restaurant's is simply not found."""
    restaurant_id = int(raw_rid) if raw_rid.isdigit() and len(raw_rid) <= 18 else None
    role = principal.roles.get(restaurant_id) if restaurant_id is not None else None
    if restaurant_id is None or role is None:
        raise not_found("no such restaurant")
    return restaurant_id, role
