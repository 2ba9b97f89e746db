"""Screens over plain HTTP: sign-in needs its CSRF token, screens need a session and the right role."""
from __future__ import annotations

import re

from conftest import PASSWORD, error_of, table_counts


async def test_a_screen_without_a_session_redirects_to_sign_in(client):
    response = await client.get("/r/demo/kitchen?station=grill", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/login?next=/r/demo/kitchen?station=grill"


async def test_sign_in_form_without_its_csrf_token_is_refused_and_writes_nothing(client, db):
    before = await table_counts(db)
    response = await client.post("/login", data={"email": "kitchen@demo.test", "password": PASSWORD},
                                 allow_redirects=False)
    assert response.status == 403
    assert (await error_of(response))["code"] == "forbidden"
    assert await table_counts(db) == before


async def test_sign_in_form_sets_the_session_and_opens_the_screen(client):
    page = await (await client.get("/login")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', page)[1]
    response = await client.post("/login", allow_redirects=False, data={
        "csrf": token, "email": "kitchen@demo.test", "password": PASSWORD,
        "next": "/r/demo/kitchen?station=grill"})
    assert response.status == 303 and response.headers["Location"] == "/r/demo/kitchen?station=grill"
    screen = await client.get("/r/demo/kitchen?station=grill")
    assert screen.status == 200
    html = await screen.text()
    assert 'data-seq="' in html and "Grill" in html


async def test_a_host_may_not_open_the_kitchen_display(client):
    page = await (await client.get("/login")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', page)[1]
    await client.post("/login", data={"csrf": token, "email": "host@demo.test", "password": PASSWORD})
    assert (await client.get("/r/demo/kitchen", allow_redirects=False)).status == 403
    assert (await client.get("/r/other/kitchen", allow_redirects=False)).status == 404


async def test_the_host_stand_is_for_hosts_and_managers(client):
    page = await (await client.get("/login")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', page)[1]
    await client.post("/login", data={"csrf": token, "email": "kitchen@demo.test", "password": PASSWORD})
    assert (await client.get("/r/demo/floor", allow_redirects=False)).status == 403
    await client.post("/login", data={"csrf": token, "email": "host@demo.test", "password": PASSWORD})
    floor = await client.get("/r/demo/floor")
    assert floor.status == 200 and "D12" in await floor.text()


async def test_the_manager_screen_is_for_managers(client):
    page = await (await client.get("/login")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', page)[1]
    await client.post("/login", data={"csrf": token, "email": "server@demo.test", "password": PASSWORD})
    assert (await client.get("/r/demo/manager", allow_redirects=False)).status == 403
    await client.post("/login", data={"csrf": token, "email": "owner@demo.test", "password": PASSWORD})
    desk = await client.get("/r/demo/manager")
    assert desk.status == 200 and "86 board" in await desk.text()
