"""Staff: users with a role in a restaurant."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import msgspec

from store import events
from store.errors import Conflict, Forbidden, Invalid, NotFound
from store.pages import Page, fetch_page, paged

Role = Literal["owner", "manager", "host", "server", "kitchen"]
Email = Annotated[str, msgspec.Meta(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=256)]


class StaffIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    email: Email
    name: Name
    role: Role
    password: Password | None = None  # required when the email is new to Serveline


class RoleIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    role: Role


class StaffMember(msgspec.Struct, frozen=True):
    user_id: int
    email: str
    name: str
    role: str
    created_at: datetime


# Which roles each role may give, change or take away.
GRANTABLE: dict[str, frozenset[str]] = {
    "owner": frozenset({"owner", "manager", "host", "server", "kitchen"}),
    "manager": frozenset({"host", "server", "kitchen"}),
}


def check_grant(actor_role: str, *roles: str) -> None:
    allowed = GRANTABLE.get(actor_role, frozenset())
    for role in roles:
        if role not in allowed:
            raise Forbidden(f"a {actor_role} cannot manage {role} staff")


LIST = paged("""
SELECT json_build_object('user_id', st.user_id, 'email', u.email, 'name', u.name, 'role', st.role,
                         'created_at', st.created_at) AS j,
       json_build_array(st.user_id) AS cursor, row_number() OVER (ORDER BY st.user_id) AS n
FROM staff st JOIN users u ON u.id = st.user_id
WHERE st.restaurant_id = $1 AND st.user_id > $3
ORDER BY st.user_id LIMIT $2 + 1""")

GET = """
SELECT st.user_id, u.email, u.name, st.role, st.created_at
FROM staff st JOIN users u ON u.id = st.user_id
WHERE st.restaurant_id = $1 AND st.user_id = $2
"""

USER_FOR_UPDATE = "SELECT id, name FROM users WHERE email = $1 FOR UPDATE"

INSERT_USER = """
INSERT INTO users (email, name, password_hash) VALUES ($1, $2, $3) RETURNING id, name
"""

INSERT_MEMBER = """
INSERT INTO staff (restaurant_id, user_id, role) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
RETURNING created_at
"""

ROLE_FOR_UPDATE = "SELECT role FROM staff WHERE restaurant_id = $1 AND user_id = $2 FOR UPDATE"

UPDATE_ROLE = "UPDATE staff SET role = $3 WHERE restaurant_id = $1 AND user_id = $2"

DELETE_MEMBER = "DELETE FROM staff WHERE restaurant_id = $1 AND user_id = $2"

# Lock the restaurant's owners so two concurrent demotions cannot leave none.
OWNERS = """
SELECT user_id FROM staff WHERE restaurant_id = $1 AND role = 'owner' FOR UPDATE
"""


async def list_staff(pool: asyncpg.Pool, restaurant_id: int, limit: int,
                     after: int) -> tuple[Page, int]:
    return await fetch_page(pool, LIST, restaurant_id, limit, after)


async def add(pool: asyncpg.Pool, restaurant_id: int, actor_role: str, body: StaffIn,
              password_hash: str | None) -> tuple[StaffMember, int]:
    """Put a person on staff, creating their user if the email is new."""
    check_grant(actor_role, body.role)
    email = body.email.lower()
    async with events.write(pool) as tx:
        user = await tx.conn.fetchrow(USER_FOR_UPDATE, email)
        if user is None:
            if password_hash is None:
                raise Invalid("a password is needed for someone new to Serveline",
                              [{"path": "$.password", "message": "required for a new user"}])
            user = await tx.conn.fetchrow(INSERT_USER, email, body.name, password_hash)
        created_at = await tx.conn.fetchval(INSERT_MEMBER, restaurant_id, user["id"], body.role)
        if created_at is None:
            raise Conflict(f"{email} is already on this restaurant's staff")
        tx.emit(restaurant_id, "manager", "staff.added",
                {"user_id": user["id"], "name": user["name"], "role": body.role})
    return StaffMember(user_id=user["id"], email=email, name=user["name"], role=body.role,
                       created_at=created_at), tx.last_seq[restaurant_id]


async def _keep_an_owner(conn: asyncpg.Connection, restaurant_id: int, user_id: int) -> None:
    owners = [row["user_id"] for row in await conn.fetch(OWNERS, restaurant_id)]
    if owners == [user_id]:
        raise Conflict("a restaurant needs at least one owner")


async def _current_role(conn: asyncpg.Connection, restaurant_id: int, user_id: int) -> str:
    role = await conn.fetchval(ROLE_FOR_UPDATE, restaurant_id, user_id)
    if role is None:
        raise NotFound("no such staff member")
    return role


async def change_role(pool: asyncpg.Pool, restaurant_id: int, actor_role: str, user_id: int,
                      role: str) -> tuple[StaffMember, int]:
    async with events.write(pool) as tx:
        old_role = await _current_role(tx.conn, restaurant_id, user_id)
        check_grant(actor_role, old_role, role)
        if role != "owner":
            await _keep_an_owner(tx.conn, restaurant_id, user_id)
        await tx.conn.execute(UPDATE_ROLE, restaurant_id, user_id, role)
        row = await tx.conn.fetchrow(GET, restaurant_id, user_id)
        tx.emit(restaurant_id, "manager", "staff.role_changed",
                {"user_id": user_id, "role": role, "old_role": old_role})
    return StaffMember(**row), tx.last_seq[restaurant_id]


async def remove(pool: asyncpg.Pool, restaurant_id: int, actor_role: str, user_id: int) -> int:
    async with events.write(pool) as tx:
        role = await _current_role(tx.conn, restaurant_id, user_id)
        check_grant(actor_role, role)
        await _keep_an_owner(tx.conn, restaurant_id, user_id)
        await tx.conn.execute(DELETE_MEMBER, restaurant_id, user_id)
        tx.emit(restaurant_id, "manager", "staff.removed", {"user_id": user_id, "role": role})
    return tx.last_seq[restaurant_id]
