"""The tenant matrix: every route of the live route table × every kind of caller (each staff role,
each device role, each API-key scope) × its own restaurant or another one × no credential × a
revoked one. Refusals must be exact and leak nothing (docs/security.md)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp import web
from conftest import ROLES, bearer, error_of, login, table_counts

from server.app import create_app
from server.auth import access_of
from server.config import Config

ALL = frozenset(ROLES)
MANAGERS = frozenset({"owner", "manager"})
FRONT = MANAGERS | {"host", "server"}
HOSTS = MANAGERS | {"host"}
SERVERS = MANAGERS | {"server"}
KITCHEN = MANAGERS | {"kitchen"}
TICKETS = KITCHEN | {"server"}
R = "/api/v1/restaurants/{rid}"

# The documented access of every route under a restaurant (docs/api.md). A new
# route must be added here (or to GLOBAL, SCREENS or OPEN_PAGES below), or
# test_every_route_of_the_app_is_in_the_matrix fails.
MATRIX: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/api/v1/restaurants/{rid}"): ALL,
    ("PATCH", "/api/v1/restaurants/{rid}"): MANAGERS,
    ("GET", R + "/settings"): ALL,
    ("GET", R + "/areas"): FRONT,
    ("POST", R + "/areas"): MANAGERS,
    ("GET", R + "/tables"): FRONT,
    ("POST", R + "/tables"): MANAGERS,
    ("GET", R + "/tables/{table_id}"): FRONT,
    ("PATCH", R + "/tables/{table_id}"): MANAGERS,
    ("POST", R + "/tables/{table_id}/status"): FRONT,
    ("POST", R + "/tables/{table_id}/move"): FRONT,
    ("POST", R + "/tables/{table_id}/merge"): FRONT,
    ("POST", R + "/tables/{table_id}/unmerge"): FRONT,
    ("GET", R + "/waitlist"): FRONT,
    ("POST", R + "/waitlist"): HOSTS,
    ("GET", R + "/waitlist/estimate"): FRONT,
    ("GET", R + "/waitlist/{party_id}"): FRONT,
    ("PATCH", R + "/waitlist/{party_id}"): HOSTS,
    ("POST", R + "/waitlist/{party_id}/notify"): HOSTS,
    ("POST", R + "/waitlist/{party_id}/seat"): HOSTS,
    ("POST", R + "/waitlist/{party_id}/leave"): HOSTS,
    ("GET", R + "/reservations"): FRONT,
    ("POST", R + "/reservations"): HOSTS,
    ("GET", R + "/reservations/{reservation_id}"): FRONT,
    ("PATCH", R + "/reservations/{reservation_id}"): HOSTS,
    ("POST", R + "/reservations/{reservation_id}/status"): HOSTS,
    ("POST", R + "/reservations/{reservation_id}/seat"): HOSTS,
    ("GET", R + "/availability"): FRONT,
    ("GET", R + "/menu"): ALL,
    ("POST", R + "/menu/categories"): MANAGERS,
    ("POST", R + "/menu/items"): MANAGERS,
    ("PATCH", R + "/menu/items/{item_id}"): MANAGERS,
    ("POST", R + "/menu/items/{item_id}/availability"): KITCHEN,
    ("GET", R + "/orders"): SERVERS,
    ("POST", R + "/orders"): SERVERS,
    ("GET", R + "/orders/{order_id}"): SERVERS,
    ("POST", R + "/orders/{order_id}/items"): SERVERS,
    ("POST", R + "/orders/{order_id}/fire"): SERVERS,
    ("POST", R + "/orders/{order_id}/courses/{course}/hold"): SERVERS,
    ("POST", R + "/orders/{order_id}/courses/{course}/fire"): SERVERS,
    ("POST", R + "/orders/{order_id}/items/{item_id}/void"): SERVERS,
    ("POST", R + "/orders/{order_id}/items/{item_id}/serve"): SERVERS,
    ("PATCH", R + "/orders/{order_id}/items/{item_id}"): SERVERS,
    ("POST", R + "/orders/{order_id}/close"): SERVERS,
    ("POST", R + "/orders/{order_id}/transfer"): SERVERS,
    ("POST", R + "/orders/{order_id}/items/transfer"): SERVERS,
    ("GET", R + "/orders/{order_id}/checks"): SERVERS,
    ("POST", R + "/orders/{order_id}/checks/split"): SERVERS,
    ("POST", R + "/orders/{order_id}/checks/{check_id}/pay"): SERVERS,
    ("GET", R + "/kitchen/tickets"): TICKETS,
    ("GET", R + "/kitchen/expo"): TICKETS,
    ("GET", R + "/kitchen/tickets/recent"): TICKETS,
    ("POST", R + "/kitchen/tickets/{ticket_id}/start"): KITCHEN,
    ("POST", R + "/kitchen/tickets/{ticket_id}/bump"): KITCHEN,
    ("POST", R + "/kitchen/tickets/{ticket_id}/recall"): KITCHEN,
    ("POST", R + "/kitchen/tickets/{ticket_id}/items/{item_id}/ready"): KITCHEN,
    ("GET", R + "/dashboard"): MANAGERS,
    ("GET", R + "/alerts"): MANAGERS,
    ("GET", R + "/dashboard/hourly"): MANAGERS,
    ("GET", R + "/ops"): MANAGERS,
    ("GET", R + "/ws"): ALL,
    ("GET", R + "/events"): MANAGERS,
    ("GET", R + "/reports/daily"): MANAGERS,
    ("GET", R + "/reports/hourly"): MANAGERS,
    ("GET", "/api/v1/restaurants/{rid}/staff"): MANAGERS,
    ("POST", "/api/v1/restaurants/{rid}/staff"): MANAGERS,
    ("PATCH", "/api/v1/restaurants/{rid}/staff/{user_id}"): MANAGERS,
    ("DELETE", "/api/v1/restaurants/{rid}/staff/{user_id}"): MANAGERS,
    ("GET", "/api/v1/restaurants/{rid}/devices"): MANAGERS,
    ("POST", "/api/v1/restaurants/{rid}/devices"): MANAGERS,
    ("DELETE", "/api/v1/restaurants/{rid}/devices/{device_id}"): MANAGERS,
    ("PATCH", "/api/v1/restaurants/{rid}/devices/{device_id}"): MANAGERS,
    ("POST", "/api/v1/restaurants/{rid}/devices/pair"): MANAGERS,
    ("GET", "/api/v1/restaurants/{rid}/api-keys"): MANAGERS,
    ("POST", "/api/v1/restaurants/{rid}/api-keys"): MANAGERS,
    ("DELETE", "/api/v1/restaurants/{rid}/api-keys/{key_id}"): MANAGERS,
    ("GET", R + "/webhooks"): MANAGERS,
    ("POST", R + "/webhooks"): MANAGERS,
    ("GET", R + "/webhooks/{webhook_id}"): MANAGERS,
    ("PATCH", R + "/webhooks/{webhook_id}"): MANAGERS,
    ("DELETE", R + "/webhooks/{webhook_id}"): MANAGERS,
    ("POST", R + "/webhooks/{webhook_id}/rotate-secret"): MANAGERS,
    ("GET", R + "/webhooks/{webhook_id}/deliveries"): MANAGERS,
    ("POST", R + "/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"): MANAGERS,
}



PUBLIC = "anyone"  # no credential needed
SESSIONS = "staff sessions"  # any signed-in person; not devices, not API keys
# Routes outside a restaurant. Roles here are held in any restaurant.
GLOBAL: dict[tuple[str, str], object] = {
    ("GET", "/api/health"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,  # loopback callers, or the metrics_token (tests/test_metrics.py)
    ("GET", "/api/v1/openapi.json"): PUBLIC,
    ("GET", "/api/v1/docs"): PUBLIC,
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("POST", "/api/v1/auth/logout"): SESSIONS,
    ("GET", "/api/v1/auth/me"): ALL,  # and API keys with the read scope
    ("GET", "/api/health/db"): MANAGERS,
    ("GET", "/api/health/realtime"): MANAGERS,
    ("GET", "/api/health/cache"): MANAGERS,
    ("POST", "/api/health/cache/clear"): frozenset({"owner"}),
    ("GET", "/api/health/performance"): MANAGERS,
}
# Screens: opened with the session cookie (a person's or a paired screen's) by these roles.
SCREENS: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/r/{slug}/kitchen"): TICKETS,  # also ?station=expo
    ("GET", "/r/{slug}/floor"): HOSTS,
    ("GET", "/r/{slug}/manager"): MANAGERS,
    ("GET", "/r/{slug}/reports"): MANAGERS,
    ("GET", "/r/{slug}/reports.csv"): MANAGERS,
    ("GET", "/r/{slug}/ops"): MANAGERS,
}
# Pages anyone may open: signing in and pairing a screen (tests/test_pages.py, test_pairing.py).
OPEN_PAGES = {("GET", "/login"), ("POST", "/login"), ("GET", "/pair"), ("POST", "/pair/collect")}
WEBSOCKET = ("GET", R + "/ws")  # public to the middleware: the socket checks its credential itself
DEVICE_ROLES = ("manager", "host", "server", "kitchen")
SCOPES = ("read", "write", "events")
# What only a restaurant's own callers may ever see of it.
MARKERS = {"demo": ("Demo Bistro", "@demo.test", "canary-demo"),
           "other": ("Other Diner", "@other.test", "canary-other")}


def app_routes() -> dict[tuple[str, str], object]:
    """The live route table: (method, path template) → handler."""
    app = create_app(Config(database_url="postgresql://unused/none"))
    return {(route.method, route.resource.canonical): route.handler for route in app.router.routes()
            if route.method != "HEAD" and not isinstance(route.resource, web.StaticResource)}


def test_every_route_of_the_app_is_in_the_matrix():
    assert set(app_routes()) == set(MATRIX) | set(GLOBAL) | set(SCREENS) | OPEN_PAGES


def test_only_the_listed_routes_skip_the_credential_check():
    """A route marked public must be listed as such: open, a screen, or the socket."""
    listed = {route for route, rule in GLOBAL.items() if rule == PUBLIC} | set(SCREENS) | OPEN_PAGES
    public = {route for route, handler in app_routes().items() if access_of(handler).public}
    assert public == listed | {WEBSOCKET}


def key_scope(method: str, path: str) -> str | None:
    """The scope an API key needs for a route (None: keys never reach it), as docs/api.md says."""
    if path.endswith(("/ws", "/events")):
        return "events"
    if any(part in path for part in ("/staff", "/devices", "/api-keys", "/webhooks", "/ops")) \
            or path == R:
        return "read" if (method, path) == ("GET", R) else None
    return "read" if method == "GET" else "write"


@dataclass(frozen=True)
class Caller:
    label: str
    kind: str  # "session" | "device" | "api_key" | "none"
    home: str | None = None  # the restaurant it belongs to
    role: str | None = None  # a session's or device's role there
    scope: str | None = None  # an API key's one scope
    token: str | None = None
    revoked: bool = False


@dataclass
class Tally:
    cells: int = 0
    leaks: list[str] = None  # type: ignore[assignment]
    wrong: list[str] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.leaks, self.wrong = [], []


def ident(body: dict) -> int:
    """The id in a create's answer: the thing itself, or the one object it carries."""
    if "id" in body:
        return body["id"]
    return next(value["id"] for value in body.values() if isinstance(value, dict) and "id" in value)


async def plant(client, rid: int, owner: dict, home: str) -> dict[str, int]:
    """Real things in a restaurant, named with its canary; their ids by path parameter."""
    canary = f"canary-{home}"
    base = f"/api/v1/restaurants/{rid}"

    async def made(path: str, body: dict) -> dict:
        response = await client.post(base + path, headers=owner, json=body)
        assert response.status == 201, (path, await response.text())
        return await response.json()

    async def items(path: str) -> list[dict]:
        response = await client.get(base + path, headers=owner)
        assert response.status == 200, (path, await response.text())
        return (await response.json())["items"]

    table = (await items("/tables"))[0]["id"]
    menu = await (await client.get(base + "/menu", headers=owner)).json()
    dish = next(item for category in menu["categories"] for item in category["items"]
                if item["available"])
    order = await made("/orders", {"table_id": table, "note": f"{canary} order", "items": [
        {"menu_item_id": dish["id"], "qty": 1, "note": f"{canary} item"}]})
    starts = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    return {
        "table_id": table,
        "menu_item_id": dish["id"],
        "order_id": order["id"],
        "order_item_id": order["items"][0]["id"],
        "ticket_id": (await items("/kitchen/tickets"))[0]["id"],
        "party_id": ident(await made("/waitlist", {"name": f"{canary} party", "size": 2,
                                                   "note": f"{canary} note"})),
        "reservation_id": ident(await made("/reservations", {
            "name": f"{canary} booking", "size": 2, "starts_at": starts.isoformat(),
            "note": f"{canary} note"})),
        "device_id": ident(await made("/devices", {"name": f"{canary} iPad", "kind": "ipad",
                                                   "role": "host"})),
        "key_id": ident(await made("/api-keys", {"name": f"{canary} key", "scopes": ["read"]})),
        "webhook_id": ident(await made("/webhooks", {
            "url": "https://receiver.example/hook", "events": ["alert.raised"],
            "description": f"{canary} hook"})),
        "user_id": next(m["user_id"] for m in await items("/staff") if m["role"] == "host"),
    }


def concrete(path: str, rid: int, ids: dict[str, int] | None = None) -> str:
    """A path of the template: real ids of `ids`' restaurant, or ids of nothing (access is
    decided before a resource is looked up, so an allowed caller gets a 404 or a 422)."""
    def real(name: str) -> str:
        return str(ids[name]) if ids else "999999"
    path = path.replace("{rid}", str(rid))
    path = path.replace("/menu/items/{item_id}", "/menu/items/" + real("menu_item_id"))
    path = path.replace("{item_id}", real("order_item_id"))
    for name in ("user_id", "device_id", "key_id", "webhook_id", "table_id", "party_id",
                 "reservation_id", "order_id", "ticket_id"):
        path = path.replace("{" + name + "}", real(name))
    path = path.replace("{delivery_id}", "999999")  # this webhook never delivered anything
    path = path.replace("{check_id}", "999999")  # that order has no split: a 404 when allowed
    path = path.replace("{course}", "2")  # a course (1–9), not an id
    return path + ("?size=2&date=2030-01-01" if path.endswith(("/estimate", "/availability")) else "")


async def callers_of(client, tokens, restaurant_ids) -> tuple[list[Caller], dict[str, dict[str, int]]]:
    """Every kind of caller of both restaurants, nobody, and revoked ones; and the planted ids."""
    callers: list[Caller] = []
    planted = {}
    for home in ("demo", "other"):
        rid = restaurant_ids[home]
        owner = bearer(await tokens("owner", home))
        planted[home] = await plant(client, rid, owner, home)
        for role in ROLES:
            callers.append(Caller(f"{home} {role}", "session", home, role, token=await tokens(role, home)))
        for role in DEVICE_ROLES:
            response = await client.post(f"/api/v1/restaurants/{rid}/devices", headers=owner, json={
                "name": f"{role} device", "kind": "ipad", "role": role})
            callers.append(Caller(f"{home} {role} device", "device", home, role,
                                  token=(await response.json())["token"]))
        for scope in SCOPES:
            response = await client.post(f"/api/v1/restaurants/{rid}/api-keys", headers=owner, json={
                "name": f"{scope} key", "scopes": [scope]})
            callers.append(Caller(f"{home} {scope} key", "api_key", home, scope=scope,
                                  token=(await response.json())["key"]))
    callers.append(Caller("no credential", "none"))
    callers.extend(await revoked_callers(client, tokens, restaurant_ids["demo"]))
    return callers, planted


async def revoked_callers(client, tokens, rid: int) -> list[Caller]:
    """An owner's session that signed out, a manager device and an all-scopes key, both revoked."""
    owner = bearer(await tokens("owner"))
    session = (await login(client, "owner@demo.test"))["token"]
    client.session.cookie_jar.clear()
    assert (await client.post("/api/v1/auth/logout", headers=bearer(session))).status == 204
    device = await (await client.post(f"/api/v1/restaurants/{rid}/devices", headers=owner, json={
        "name": "stolen iPad", "kind": "ipad", "role": "manager"})).json()
    assert (await client.delete(f"/api/v1/restaurants/{rid}/devices/{device['device']['id']}",
                                headers=owner)).status == 200
    key = await (await client.post(f"/api/v1/restaurants/{rid}/api-keys", headers=owner, json={
        "name": "leaked key", "scopes": list(SCOPES)})).json()
    assert (await client.delete(f"/api/v1/restaurants/{rid}/api-keys/{key['api_key']['id']}",
                                headers=owner)).status == 200
    return [Caller("revoked owner session", "session", "demo", "owner", token=session, revoked=True),
            Caller("revoked manager device", "device", "demo", "manager", token=device["token"],
                   revoked=True),
            Caller("revoked key", "api_key", "demo", scope="read", token=key["key"], revoked=True)]


def api_refusal(method: str, path: str, caller: Caller, home: str | None) -> int | None:
    """The exact refusal a caller gets on an API route (None: allowed). `home`: the path's
    restaurant, None for routes outside one."""
    rule = MATRIX[method, path] if home else GLOBAL[method, path]
    if rule == PUBLIC:
        return None
    if caller.kind == "none" or caller.revoked:
        return 401
    if home and caller.home != home:
        return 404
    if rule == SESSIONS:
        return None if caller.kind == "session" else 403
    if caller.kind == "api_key":
        needed = key_scope(method, path) if home else ("read" if path.endswith("/me") else None)
        return None if caller.scope == needed else 403
    return None if caller.role in rule else 403


def screen_refusal(path: str, caller: Caller, home: str) -> int | None:
    """The exact refusal on a screen (None: it opens): sign in first, not yours, not your role."""
    if caller.kind == "none" or caller.revoked:
        return 303
    if caller.home != home:
        return 404
    return None if caller.kind != "api_key" and caller.role in SCREENS["GET", path] else 403


def foreign_markers(caller: Caller) -> list[str]:
    """What this caller must never read: every other restaurant's data."""
    return [m for home, marks in MARKERS.items() if home != caller.home for m in marks]


def judge(tally: Tally, cell: str, caller: Caller, status: int, text: str, refusal: int | None,
          location: str = "", has_ids: bool = True) -> None:
    """Count a cell; note a leak (a refused caller got an answer, or anyone read another
    restaurant's data) or a wrong answer (a refusal other than the documented one)."""
    tally.cells += 1
    seen = [m for m in foreign_markers(caller) if m in text]
    if refusal is None:
        if status in (401, 403) or (status == 404 and not has_ids):
            tally.wrong.append(f"{cell}: allowed but answered {status} {text[:200]}")
    elif 200 <= status < 400 and not (refusal == 303 and status == 303
                                      and location.startswith("/login?next=")):
        tally.leaks.append(f"{cell}: answered {status} where {refusal} was due")
    elif status != refusal:
        tally.wrong.append(f"{cell}: answered {status} where {refusal} was due: {text[:200]}")
    if seen:
        tally.leaks.append(f"{cell}: the body holds {seen}")


async def socket_cell(client, tally: Tally, rid: int, caller: Caller, refusal: int | None) -> None:
    """The restaurant's socket, by a real handshake: welcome, or the documented refusal."""
    cell = f"WS /ws as {caller.label}"
    headers = bearer(caller.token) if caller.token else {}
    try:
        ws = await client.ws_connect(f"/api/v1/restaurants/{rid}/ws", headers=headers)
    except aiohttp.WSServerHandshakeError as error:
        judge(tally, cell, caller, error.status, error.message, refusal)
        return
    try:
        if caller.kind == "none":  # signed in by its first message, or closed
            await ws.send_json({"type": "subscribe", "channels": ["floor"]})
        message = await ws.receive(timeout=5)
        if message.type == aiohttp.WSMsgType.TEXT:
            judge(tally, cell, caller, 101, message.data, refusal)  # 101: the socket is open
        elif caller.kind == "none" and ws.close_code == 4001:
            judge(tally, cell, caller, 401, "", 401)
        else:
            judge(tally, cell, caller, ws.close_code or 0, str(message.data), refusal)
    finally:
        await ws.close()


async def api_cell(client, tally: Tally, method: str, path: str, caller: Caller, rid: int | None,
                   home: str | None, ids: dict[str, int] | None, refusal: int | None) -> None:
    if (method, path) == WEBSOCKET:
        await socket_cell(client, tally, rid, caller, refusal)
        return
    url = concrete(path, rid, ids) if rid else path
    headers = bearer(caller.token) if caller.token else {}
    if method != "GET":
        headers["Content-Type"] = "application/json"
    response = await client.request(method, url, headers=headers, data=b"{}" if method != "GET" else None)
    text = await response.text()
    judge(tally, f"{method} {url} as {caller.label}", caller, response.status, text, refusal,
          has_ids="{" in path.removeprefix(R))
    if refusal == 404 and response.status == 404:  # no hint that the restaurant exists
        error = await error_of(response)
        if error != {"code": "not_found", "message": "no such restaurant", "details": []}:
            tally.wrong.append(f"{method} {url} as {caller.label}: a hint: {error}")


async def screen_cell(client, tally: Tally, url: str, path: str, caller: Caller,
                      home: str) -> None:
    headers = {"Accept": "text/html"}
    if caller.token:
        headers["Cookie"] = f"serveline_session={caller.token}"
    response = await client.get(url, headers=headers, allow_redirects=False)
    refusal = screen_refusal(path, caller, home)
    judge(tally, f"GET {url} as {caller.label}", caller, response.status, await response.text(),
          refusal, response.headers.get("Location", ""), has_ids=False)
    if refusal is None and response.status != 200:
        tally.wrong.append(f"GET {url} as {caller.label}: a screen that should open answered "
                           f"{response.status}")


async def test_the_matrix_leaks_nothing(client, db, tokens, restaurant_ids, capsys):
    """Every route × every caller: refusals exact, nothing read across restaurants, and the
    refused and cross-restaurant requests write nothing."""
    callers, planted = await callers_of(client, tokens, restaurant_ids)
    rid, other_rid = restaurant_ids["demo"], restaurant_ids["other"]
    owner = next(c for c in callers if c.label == "demo owner")
    tally = Tally()
    before = await table_counts(db)

    # 1. Refusals, at the demo restaurant's real things: every one exact, none writes.
    for (method, path) in sorted(MATRIX):
        for caller in callers:
            refusal = api_refusal(method, path, caller, "demo")
            if refusal is not None:
                await api_cell(client, tally, method, path, caller, rid, "demo", planted["demo"],
                               refusal)
        # The same answer as for a restaurant that does not exist at all.
        await api_cell(client, tally, method, path, owner, 987654, None, None, 404)
        # A restaurant's own manager naming another restaurant's things under their own id.
        if "{" in path.removeprefix(R) and (method, path) != WEBSOCKET:
            url = concrete(path, rid, planted["other"])
            response = await client.request(method, url, headers={
                **bearer(owner.token), "Content-Type": "application/json"},
                data=b"{}" if method != "GET" else None)
            text = await response.text()
            judge(tally, f"{method} {url} (other's ids) as demo owner", owner, response.status,
                  text, 404 if method == "GET" else response.status)
            if not 400 <= response.status < 500:
                tally.leaks.append(f"{method} {url} (other's ids): answered {response.status}")
    for (method, path) in sorted(GLOBAL):
        for caller in callers:
            refusal = api_refusal(method, path, caller, None)
            if refusal is not None:
                await api_cell(client, tally, method, path, caller, None, None, None, refusal)
    for (_, path) in sorted(SCREENS):
        for variant in ([path, path + "?station=expo"] if path.endswith("/kitchen") else [path]):
            for caller in callers:
                if screen_refusal(path, caller, "demo") is not None:
                    await screen_cell(client, tally, variant.replace("{slug}", "demo"), path,
                                      caller, "demo")
            tally.cells += 1  # a slug that names no restaurant: as not found as another's
            missing = await client.get(variant.replace("{slug}", "nowhere"), allow_redirects=False,
                                       headers={"Cookie": f"serveline_session={owner.token}"})
            if missing.status != 404:
                tally.wrong.append(f"GET {variant} of no restaurant: {missing.status}")
    after = await table_counts(db)
    if after != before:
        tally.leaks.append(f"refused requests wrote: {sorted(k for k in after if after[k] != before[k])}")

    # 2. Allowed callers: never refused, never shown another restaurant's data.
    for (method, path) in sorted(MATRIX):
        for caller in callers:
            if api_refusal(method, path, caller, "demo") is None:
                await api_cell(client, tally, method, path, caller, rid, "demo", None, None)
    for (method, path) in sorted(GLOBAL):
        for caller in callers:
            if api_refusal(method, path, caller, None) is None:
                if (method, path) == ("POST", "/api/v1/auth/logout"):  # on a session of its own
                    fresh = (await login(client, f"{caller.role}@{caller.home}.test"))["token"]
                    client.session.cookie_jar.clear()
                    caller = Caller(caller.label + " (fresh)", "session", caller.home, caller.role,
                                    token=fresh)
                await api_cell(client, tally, method, path, caller, None, None, None, None)
    for (_, path) in sorted(SCREENS):
        for caller in callers:
            if screen_refusal(path, caller, "demo") is None:
                await screen_cell(client, tally, path.replace("{slug}", "demo"), path, caller, "demo")
            if screen_refusal(path, caller, "other") is None:
                await screen_cell(client, tally, path.replace("{slug}", "other"), path, caller,
                                  "other")
    assert other_rid != rid

    with capsys.disabled():
        print(f"\ntenancy matrix: {tally.cells} cells checked, {len(tally.leaks)} leaks, "
              f"{len(tally.wrong)} wrong answers")
    assert tally.leaks == [], tally.leaks
    assert tally.wrong == [], tally.wrong
    assert tally.cells > 2000


async def test_non_numeric_restaurant_id_is_not_found(client, tokens):
    response = await client.get("/api/v1/restaurants/demo", headers=bearer(await tokens("owner")))
    assert response.status == 404


async def test_health_db_is_for_managers_of_any_restaurant(client, tokens):
    for role in ROLES:
        response = await client.get("/api/health/db", headers=bearer(await tokens(role)))
        assert response.status == (200 if role in MANAGERS else 403), role
    assert (await client.get("/api/health/db")).status == 401
    assert (await client.get("/api/health")).status == 200
