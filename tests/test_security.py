"""Security over plain HTTP (docs/security.md): credentials at rest and on the wire, CSRF, CORS,
the headers of every answer, and what logs and errors never carry."""
from __future__ import annotations

import asyncio
import hashlib
import inspect
import io
import logging
import re
import shutil
import ssl
import subprocess
from pathlib import Path

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import PASSWORD, bearer, error_of, login, table_counts

from handlers.pages import login_form
from server.app import create_app
from server.config import Config, load
from server.keys import CREDENTIALS
from server.logs import AccessLog, JsonFormatter, RequestContext
from server.metrics import metrics_page
from server.security import allowed_origins
from store import credentials

ROOT = Path(__file__).resolve().parent.parent
PAGE = {"Accept": "text/html,application/xhtml+xml"}
POS = "https://pos.example.com"  # an integrator's web app, allowed by cors_origins in some tests
EVIL = "https://evil.example"


def set_cookies(response: aiohttp.ClientResponse) -> dict[str, str]:
    """Each Set-Cookie line of an answer, by cookie name, as sent."""
    return {line.split("=", 1)[0]: line for line in response.headers.getall("Set-Cookie", [])}


async def csrf_of(session) -> str:
    page = await (await session.get("/login")).text()
    return re.search(r'name="csrf" value="([^"]+)"', page)[1]


@pytest.fixture
async def browser_session(client):
    """A second browser with its own cookie jar (cookies for 127.0.0.1 kept)."""
    async with aiohttp.ClientSession(str(client.make_url("")),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


# Credentials

async def test_passwords_are_argon2id_hashes(client, db, rid, tokens):
    added = await client.post(f"/api/v1/restaurants/{rid}/staff", headers=bearer(await tokens("owner")),
                              json={"email": "new@demo.test", "name": "New", "role": "host",
                                    "password": "a long enough password"})
    assert added.status == 201
    hashes = [row["password_hash"] for row in await db.fetch("SELECT password_hash FROM users")]
    assert len(hashes) > 10 and all(h.startswith("$argon2id$") for h in hashes)


async def test_tokens_keys_and_pairing_secrets_are_stored_only_as_their_sha256(
        client, db, rid, tokens, browser_session):
    manager = bearer(await tokens("manager"))
    session = (await login(client, "host@demo.test"))["token"]
    client.session.cookie_jar.clear()
    device = (await (await client.post(f"/api/v1/restaurants/{rid}/devices", headers=manager, json={
        "name": "Till", "kind": "ipad", "role": "server"})).json())["token"]
    key = (await (await client.post(f"/api/v1/restaurants/{rid}/api-keys", headers=manager, json={
        "name": "Books", "scopes": ["read"]})).json())["key"]
    waiting = await browser_session.get("/pair", headers=PAGE)
    assert waiting.status == 200
    secret = waiting.cookies["serveline_pairing"].value
    tables = [r["tablename"] for r in await db.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    for name, token in {"session": session, "device": device, "key": key, "pairing": secret}.items():
        for table in tables:
            assert await db.fetchval(f'SELECT count(*) FROM "{table}" t WHERE strpos(t::text, $1) > 0',
                                     token) == 0, (name, table)
    digest = hashlib.sha256
    assert await db.fetchval("SELECT count(*) FROM sessions WHERE token_hash = $1",
                             digest(session.encode()).digest()) == 1
    assert await db.fetchval("SELECT count(*) FROM devices WHERE token_hash = $1",
                             digest(device.encode()).digest()) == 1
    assert await db.fetchval("SELECT count(*) FROM api_keys WHERE key_hash = $1",
                             digest(key.encode()).digest()) == 1
    assert await db.fetchval("SELECT count(*) FROM pairings WHERE secret_hash = $1",
                             digest(secret.encode()).digest()) == 1


def test_secrets_are_looked_up_by_hash_or_compared_in_constant_time():
    """Tokens are found by their SHA-256 (an index lookup: nothing to time); the two secrets
    compared in Python (the sign-in form's CSRF token, the metrics token) use compare_digest."""
    for sql in (credentials.SESSION_BY_HASH, credentials.DEVICE_BY_HASH, credentials.API_KEY_BY_HASH):
        assert re.search(r"\b(token|key)_hash = \$1", sql)
    assert "token_hash(token)" in inspect.getsource(credentials.resolve)
    assert "hmac.compare_digest" in inspect.getsource(login_form)
    assert "hmac.compare_digest" in inspect.getsource(metrics_page)


async def test_each_sign_in_is_a_new_session_and_a_planted_cookie_is_not_upgraded(
        client, browser_session):
    first = (await login(client, "manager@demo.test"))["token"]
    second = (await login(client, "manager@demo.test"))["token"]
    assert first != second
    client.session.cookie_jar.clear()
    # Someone plants a session they know in a browser; then its owner signs in there.
    planted = (await login(client, "kitchen@demo.test"))["token"]
    client.session.cookie_jar.clear()
    browser_session.cookie_jar.update_cookies({"serveline_session": planted})
    signed_in = await browser_session.post("/login", allow_redirects=False, data={
        "csrf": await csrf_of(browser_session), "email": "owner@demo.test", "password": PASSWORD})
    assert signed_in.status == 303
    fresh = signed_in.cookies["serveline_session"].value
    assert fresh != planted
    me = {token: await (await client.get("/api/v1/auth/me", headers=bearer(token))).json()
          for token in (planted, fresh)}
    assert me[planted]["restaurants"][0]["role"] == "kitchen"  # still only what it was
    assert me[fresh]["restaurants"][0]["role"] == "owner"


async def test_cookies_are_httponly_and_samesite_and_secure_when_asked(make_client, config, base,
                                                                      tokens):
    for secure in (False, True):
        client = await make_client(msgspec.structs.replace(config, cookie_secure=secure))
        signed_in = set_cookies(await client.post("/api/v1/auth/login", json={
            "email": "host@demo.test", "password": PASSWORD}))["serveline_session"]
        form = set_cookies(await client.get("/login"))["serveline_csrf"]
        waiting = await client.get("/pair", headers=PAGE)
        pairing = set_cookies(waiting)["serveline_pairing"]
        code = re.search(r'id="code">([A-Z0-9]{3}-[A-Z0-9]{3})<', await waiting.text())[1]
        manager = (await login(client, "manager@demo.test"))["token"]
        claimed = await client.post(base + "/devices/pair", headers=bearer(manager), json={
            "code": code, "name": "Pass", "screen": "kitchen"})
        assert claimed.status == 201, await claimed.text()
        secret = waiting.cookies["serveline_pairing"].value  # a jar keeps Secure ones from http
        device = set_cookies(await client.post("/pair/collect", headers={
            "Cookie": f"serveline_pairing={secret}"}))["serveline_session"]
        for line, same_site in ((signed_in, "Lax"), (form, "Strict"), (pairing, "Strict"),
                                (device, "Lax")):
            assert "HttpOnly" in line and f"SameSite={same_site}" in line, line
            assert ("Secure" in line) is secure, line


@pytest.fixture
def tls(tmp_path) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_over_tls_the_session_cookie_is_secure_without_being_told(config, aiohttp_server,
                                                                        aiohttp_client, tls):
    assert config.cookie_secure is False
    server = await aiohttp_server(create_app(config), ssl=tls)
    client = await aiohttp_client(server, connector=aiohttp.TCPConnector(ssl=False))
    response = await client.post("/api/v1/auth/login", json={"email": "host@demo.test",
                                                              "password": PASSWORD})
    assert response.status == 200
    assert "Secure" in set_cookies(response)["serveline_session"]
    assert "Secure" in set_cookies(await client.get("/login"))["serveline_csrf"]


# CSRF

async def test_a_cookie_write_needs_this_sites_origin_or_none(client, db, rid):
    await login(client, "host@demo.test")  # the session cookie is in the jar from here on
    waitlist = f"/api/v1/restaurants/{rid}/waitlist"
    party = {"name": "Ode", "size": 2}
    site = str(client.make_url("")).rstrip("/")
    before = await table_counts(db)
    for origin in (EVIL, "null", site.rsplit(":", 1)[0] + ":1", "http://127.0.0.1.evil.example"):
        refused = await client.post(waitlist, json=party, headers={"Origin": origin})
        assert refused.status == 403, origin
        assert (await error_of(refused))["message"] == "cross-site request refused"
    assert (await client.post("/api/v1/auth/logout", headers={"Origin": EVIL})).status == 403
    assert await table_counts(db) == before
    # The site's own pages send their origin; a request with neither Origin nor Referer is not a
    # browser's cross-site request (browsers send Origin on every cross-site write): both pass.
    assert (await client.post(waitlist, json=party, headers={"Origin": site})).status == 201
    assert (await client.post(waitlist, json=party)).status == 201
    # A cross-site form can only send form bodies: the API takes JSON alone.
    form = await client.post(waitlist, data={"name": "Ode", "size": "2"})
    assert form.status == 415
    # A bearer token is no ambient credential: any origin may send one.
    token = (await login(client, "host@demo.test"))["token"]
    assert (await client.post(waitlist, json=party,
                              headers={**bearer(token), "Origin": EVIL})).status == 201


async def test_a_socket_opened_with_the_cookie_from_another_site_is_refused(client, rid):
    await login(client, "kitchen@demo.test")
    socket = f"/api/v1/restaurants/{rid}/ws"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(socket, headers={"Origin": EVIL})
    assert refused.value.status == 403
    site = str(client.make_url("")).rstrip("/")
    ws = await client.ws_connect(socket, headers={"Origin": site})
    assert (await ws.receive_json())["type"] == "welcome"
    await ws.close()


async def test_the_sign_in_form_needs_the_token_its_cookie_holds(client, browser_session, db):
    before = await table_counts(db)
    token = await csrf_of(browser_session)
    other = "A" if token[-1] != "A" else "B"  # differs from the token, whatever it ends with
    forged = await browser_session.post("/login", allow_redirects=False, data={
        "csrf": token[:-1] + other, "email": "owner@demo.test", "password": PASSWORD})
    assert forged.status == 403
    # The right token from a browser without the cookie (another site's form): refused too.
    without = await client.post("/login", allow_redirects=False, data={
        "csrf": token, "email": "owner@demo.test", "password": PASSWORD})
    assert without.status == 403
    assert await table_counts(db) == before


async def test_the_sign_in_form_goes_only_to_this_sites_screens(browser_session):
    hostile = '"><script>window.__xss=1</script>'
    page = await (await browser_session.get("/login", params={"next": hostile})).text()
    assert "<script>window.__xss" not in page and "&#34;&gt;&lt;script&gt;" in page
    for target in ("javascript:alert(1)", "//evil.example/r/demo/kitchen", "https://evil.example",
                   "/\\evil.example"):
        signed_in = await browser_session.post("/login", allow_redirects=False, data={
            "csrf": await csrf_of(browser_session), "email": "kitchen@demo.test",
            "password": PASSWORD, "next": target})
        assert signed_in.status == 303 and signed_in.headers["Location"] == "/r/demo/kitchen", target


# CORS

async def test_cors_is_closed_by_default(client, rid, tokens):
    menu = f"/api/v1/restaurants/{rid}/menu"
    read = await client.get(menu, headers={**bearer(await tokens("server")), "Origin": POS})
    assert read.status == 200
    assert "Access-Control-Allow-Origin" not in read.headers
    for path, method in ((menu, "GET"), (f"/api/v1/restaurants/{rid}/orders", "POST")):
        preflight = await client.options(path, headers={
            "Origin": POS, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert preflight.status == 403
        assert (await error_of(preflight))["code"] == "forbidden"
        assert not any(h.startswith("Access-Control-") for h in preflight.headers)


@pytest.fixture
async def cors_client(make_client, config):
    return await make_client(msgspec.structs.replace(
        config, cors_origins=f"{POS}, https://kds.example.com:8443"))


async def test_an_allowed_origin_gets_cors_for_the_api_with_bearer_tokens_only(cors_client, rid,
                                                                              tokens):
    client = cors_client
    orders = f"/api/v1/restaurants/{rid}/orders"
    preflight = await client.options(orders, headers={
        "Origin": POS, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"})
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == POS
    assert set(preflight.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST"}
    allowed = {h.lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(", ")}
    assert {"authorization", "content-type", "idempotency-key", "if-match",
            "x-serveline-min-seq"} <= allowed
    assert "Origin" in preflight.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in preflight.headers

    token = (await login(client, "server@demo.test"))["token"]
    client.session.cookie_jar.clear()
    read = await client.get(orders, headers={**bearer(token), "Origin": POS})
    assert read.status == 200
    assert read.headers["Access-Control-Allow-Origin"] == POS
    exposed = set(read.headers["Access-Control-Expose-Headers"].split(", "))
    assert {"X-Serveline-Seq", "ETag", "Retry-After"} <= exposed
    assert "Access-Control-Allow-Credentials" not in read.headers
    refused = await client.get(orders, headers={"Origin": POS})  # the page may read why
    assert refused.status == 401 and refused.headers["Access-Control-Allow-Origin"] == POS

    # Another origin, or anything outside the API: nothing.
    other = await client.get(orders, headers={**bearer(token), "Origin": EVIL})
    assert "Access-Control-Allow-Origin" not in other.headers
    for path, method, origin in ((orders, "POST", EVIL), ("/login", "POST", POS),
                                 ("/api/health/db", "GET", POS)):
        assert (await client.options(path, headers={
            "Origin": origin, "Access-Control-Request-Method": method})).status == 403, path
    assert "Access-Control-Allow-Origin" not in (
        await client.get("/api/health", headers={"Origin": POS})).headers


async def test_an_allowed_origin_never_writes_with_the_cookie(cors_client, db, rid):
    await login(cors_client, "host@demo.test")
    before = await table_counts(db)
    response = await cors_client.post(f"/api/v1/restaurants/{rid}/waitlist", headers={"Origin": POS},
                                      json={"name": "Ode", "size": 2})
    assert response.status == 403
    assert await table_counts(db) == before


def test_cors_origins_are_exact_origins():
    assert allowed_origins("") == frozenset()
    assert allowed_origins(" https://POS.example.com , http://localhost:5173,") == {
        "https://pos.example.com", "http://localhost:5173"}
    for bad in ("*", "https://pos.example.com/", "pos.example.com", "https://pos.example.com/app",
                "ftp://pos.example.com", "https://*.example.com"):
        with pytest.raises(ValueError, match="cors_origins"):
            allowed_origins(bad)
    with pytest.raises(ValueError):
        create_app(Config(database_url="postgresql://unused/none", cors_origins="*"))
    config, _ = load([], {"SERVELINE_CORS_ORIGINS": POS})
    assert config.cors_origins == POS
    config, _ = load(["--cors-origins", "https://a.example,https://b.example"], {})
    assert allowed_origins(config.cors_origins) == {"https://a.example", "https://b.example"}


# Headers

def policy(response: aiohttp.ClientResponse) -> dict[str, str]:
    directives = (d.strip().split(" ", 1) for d in response.headers["Content-Security-Policy"].split(";"))
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives}


async def test_every_page_carries_the_policy_and_frame_and_referrer_headers(client, tokens):
    await login(client, "host@demo.test")
    pages = {"/login": 200, "/pair": 200, "/r/demo/floor": 200, "/api/v1/docs": 200,
             "/r/demo/manager": 403, "/r/nowhere/kitchen": 404, "/no/such/screen": 404}
    for path, status in pages.items():
        response = await client.get(path, headers=PAGE, allow_redirects=False)
        assert response.status == status and response.content_type == "text/html", path
        csp = policy(response)
        assert csp["script-src"] == "'self'" and csp["default-src"] == "'self'", path
        assert csp["object-src"] == "'none'" and csp["base-uri"] == "'none'", path
        assert csp["frame-ancestors"] == "'none'" and csp["form-action"] == "'self'", path
        assert "unsafe-eval" not in response.headers["Content-Security-Policy"]
        assert csp["style-src-elem"] == "'self'"  # only style attributes are inline
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_every_answer_says_nosniff(client, rid, tokens):
    manager = bearer(await tokens("manager"))
    answers = [
        await client.get("/api/health"),
        await client.get(f"/api/v1/restaurants/{rid}/menu", headers=manager),
        await client.get(f"/api/v1/restaurants/{rid}/menu"),  # 401
        await client.get("/api/v1/nothing"),  # 404
        await client.get("/r/demo/kitchen", allow_redirects=False),  # 303 to sign in
        await client.get("/static/css/screens.css"),
        await client.get("/metrics"),
        await client.get("/r/demo/reports.csv",
                         headers={"Cookie": f"serveline_session={await tokens('manager')}"}),
    ]
    for response in answers:
        assert response.headers.get("X-Content-Type-Options") == "nosniff", response.url
    api = answers[1]
    assert "Content-Security-Policy" not in api.headers  # JSON is not a page


def test_templates_hold_no_inline_script_and_scripts_no_html_sinks():
    """What the policy enforces in the browser, checked in the source too: no inline script or
    handler in a template; screens' scripts build text with textContent, never as HTML."""
    for template in (ROOT / "templates").glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert not re.search(r"\son[a-z]+\s*=", text), template.name
        assert "javascript:" not in text and "|safe" not in text, template.name
    for script in (ROOT / "static" / "js").glob("*.js"):
        text = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                     "new Function"):
            assert sink not in text, (script.name, sink)


# Logs and errors

@pytest.fixture
def everything_logged():
    """Every record of every logger, at DEBUG, as run.py's JSON formatter writes it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestContext())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


async def test_secrets_never_reach_the_logs_and_a_500_carries_no_internals(
        config, aiohttp_client, aiohttp_server, db, rid, everything_logged):
    hooks: list[bytes] = []

    async def receiver(request: web.Request) -> web.Response:
        hooks.append(await request.read())
        return web.Response(status=500)  # a failed delivery is logged too
    hook_app = web.Application()
    hook_app.router.add_post("/hook", receiver)
    hook = await aiohttp_server(hook_app)

    config = msgspec.structs.replace(config, slow_query_ms=0, access_log=True,
                                     webhook_allow_private=True, webhook_poll_seconds=0.1)
    server = TestServer(create_app(config))  # with the access log on, as run.py starts it
    await server.start_server(access_log_class=AccessLog,
                              access_log=logging.getLogger("serveline.access"))
    client = await aiohttp_client(server)
    base = f"/api/v1/restaurants/{rid}"
    secrets: dict[str, str] = {"password": PASSWORD}

    wrong = await client.post("/api/v1/auth/login", json={"email": "owner@demo.test",
                                                            "password": "wrong but secret 7731"})
    assert wrong.status == 401
    secrets["wrong password"] = "wrong but secret 7731"
    signed_in = await client.post("/api/v1/auth/login", json={"email": "owner@demo.test",
                                                               "password": PASSWORD})
    secrets["session"] = (await signed_in.json())["token"]
    owner = bearer(secrets["session"])
    client.session.cookie_jar.clear()
    secrets["csrf"] = await csrf_of(client)
    form = await client.post("/login", allow_redirects=False, data={
        "csrf": secrets["csrf"], "email": "manager@demo.test", "password": PASSWORD})
    secrets["form session"] = form.cookies["serveline_session"].value
    client.session.cookie_jar.clear()

    key = await (await client.post(base + "/api-keys", headers=owner, json={
        "name": "Books", "scopes": ["read", "write", "events"]})).json()
    secrets["api key"] = key["key"]
    device = await (await client.post(base + "/devices", headers=owner, json={
        "name": "Host iPad", "kind": "ipad", "role": "host"})).json()
    secrets["device token"] = device["token"]
    waiting = await client.get("/pair", headers=PAGE)
    secrets["pairing secret"] = waiting.cookies["serveline_pairing"].value
    code = re.search(r'id="code">([A-Z0-9]{3}-[A-Z0-9]{3})<', await waiting.text())[1]
    assert (await client.post(base + "/devices/pair", headers=owner, json={
        "code": code, "name": "Grill pass", "screen": "kitchen"})).status == 201
    collected = await client.post("/pair/collect")
    secrets["paired screen token"] = collected.cookies["serveline_session"].value
    client.session.cookie_jar.clear()
    webhook = await (await client.post(base + "/webhooks", headers=owner, json={
        "url": str(hook.make_url("/hook")), "events": ["waitlist.*"]})).json()
    rotated = await (await client.post(f"{base}/webhooks/{webhook['webhook']['id']}/rotate-secret",
                                       headers=owner)).json()
    secrets["webhook secret"], secrets["rotated webhook secret"] = webhook["secret"], rotated["secret"]

    # Each credential used, in headers, cookies and the socket's first message.
    for token in (secrets["api key"], secrets["device token"], secrets["paired screen token"]):
        assert (await client.get(base + "/menu", headers=bearer(token))).status == 200
    assert (await client.get("/r/demo/manager", headers={
        "Cookie": f"serveline_session={secrets['form session']}"})).status == 200
    ws = await client.ws_connect(base + "/ws")
    await ws.send_json({"type": "auth", "token": secrets["device token"]})
    assert (await ws.receive_json())["type"] == "welcome"
    await ws.close()
    assert (await client.post(base + "/waitlist", headers=bearer(secrets["api key"]),
                              json={"name": "Ode", "size": 2})).status == 201
    for _ in range(100):  # the webhook is sent (and refused by the receiver)
        if hooks:
            break
        await asyncio.sleep(0.05)
    assert hooks

    # A fault: the table behind API keys is gone. The caller gets the request id, nothing else.
    await db.execute("ALTER TABLE api_keys RENAME TO api_keys_elsewhere")
    client.app[CREDENTIALS].forget_all()  # the key was resolved a moment ago and is kept
    failed = await client.get(base + "/menu", headers=bearer(secrets["api key"]))
    assert failed.status == 500
    body = await failed.text()
    assert failed.headers["X-Request-Id"] in body
    for internal in ("Traceback", "asyncpg", "api_keys", "SELECT", "File \"", ".py"):
        assert internal not in body, internal
    page = await client.get("/r/demo/kitchen", headers={
        **PAGE, "Cookie": f"serveline_session={secrets['api key']}"})
    assert page.status == 500 and "Traceback" not in await page.text()

    await asyncio.sleep(0.2)  # the access log writes once the answer has gone
    logged = everything_logged.getvalue()
    assert "Traceback" in logged and failed.headers["X-Request-Id"] in logged  # the 500 is logged
    assert "serveline.access" in logged and "serveline.sql" in logged  # and everything else was
    for name, secret in secrets.items():
        assert secret not in logged, f"the {name} was logged"


# Revocation reaches open sockets

async def test_revoking_a_device_or_key_or_signing_out_closes_its_open_socket(client, rid, tokens,
                                                                              open_socket):
    manager = bearer(await tokens("manager"))
    base = f"/api/v1/restaurants/{rid}"
    device = await (await client.post(base + "/devices", headers=manager, json={
        "name": "Stolen iPad", "kind": "ipad", "role": "server"})).json()
    key = await (await client.post(base + "/api-keys", headers=manager, json={
        "name": "Leaked", "scopes": ["events"]})).json()
    session = (await login(client, "host@demo.test"))["token"]
    client.session.cookie_jar.clear()
    bystander = await open_socket(rid, await tokens("kitchen"))
    sockets = {name: await open_socket(rid, token) for name, token in (
        ("device", device["token"]), ("key", key["key"]), ("session", session))}

    await client.post(base + "/devices", headers=manager, json={  # a change that revokes nothing
        "name": "New till", "kind": "ipad", "role": "server"})
    await asyncio.sleep(0.3)
    for sock in (bystander, *sockets.values()):
        await sock.send(type="ping")
        assert (await sock.until("pong"))["type"] == "pong"

    assert (await client.delete(f"{base}/devices/{device['device']['id']}", headers=manager)).status == 200
    assert await sockets["device"].closed() == 4001
    assert (await client.delete(f"{base}/api-keys/{key['api_key']['id']}", headers=manager)).status == 200
    assert await sockets["key"].closed() == 4001
    assert (await client.post("/api/v1/auth/logout", headers=bearer(session))).status == 204
    assert await sockets["session"].closed() == 4001
    await bystander.send(type="ping")
    assert (await bystander.until("pong"))["type"] == "pong"  # everyone else stays


async def test_a_staff_change_reaches_the_persons_open_socket(client, db, rid, tokens, open_socket):
    owner = bearer(await tokens("owner"))
    staff = f"/api/v1/restaurants/{rid}/staff"
    host_id = await db.fetchval("SELECT id FROM users WHERE email = 'host@demo.test'")
    host = await open_socket(rid, await tokens("host"))
    moved = await client.patch(f"{staff}/{host_id}", headers=owner, json={"role": "kitchen"})
    assert moved.status == 200
    assert await host.closed() == 4000  # connect again, with the new role's channels
    kitchen = await open_socket(rid, await tokens("host"))
    assert (await client.delete(f"{staff}/{host_id}", headers=owner)).status == 204
    assert await kitchen.closed() == 4001


async def test_a_socket_closes_when_its_session_ends(make_client, config, rid):
    short = await make_client(msgspec.structs.replace(config, session_hours=1.5 / 3600))
    token = (await login(short, "host@demo.test"))["token"]
    short.session.cookie_jar.clear()
    ws = await short.ws_connect(f"/api/v1/restaurants/{rid}/ws", headers=bearer(token))
    assert (await ws.receive_json())["type"] == "welcome"
    closing = await ws.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 4001
