"""schemathesis against GET /api/v1/openapi.json: generated requests to every operation, over a
real socket, signed in as the demo owner. No answer may be a 5xx, and every answer must be what
the document says (a documented status, its content type, a body matching its schema).

Path ids are sometimes generated and sometimes real rows of the demo restaurant (a table, a
party, a booking, an order with a ticket, a webhook with a delivery …), so both the 404s and the
answers about real things are exercised. The run is bounded for CI (about 30 s on 2 cores);
`SERVELINE_FUZZ_EXAMPLES=200 pytest tests/test_schemathesis.py -s` generates more for a person
with time, and `SERVELINE_FUZZ_SEED=<n>` other cases (the default seed keeps CI reproducible).
"""
from __future__ import annotations

import asyncio
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
import schemathesis
from conftest import bearer, login
from hypothesis import strategies as st
from schemathesis.engine import Status, events, from_schema

EXAMPLES = int(os.environ.get("SERVELINE_FUZZ_EXAMPLES", "8"))
SEED = int(os.environ.get("SERVELINE_FUZZ_SEED", "20261125"))  # the same cases every run by default
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance")
UNLIMITED = "100000/minute"


@dataclass
class Findings:
    """What a run did and what it found."""
    operations: set[str] = field(default_factory=set)
    examples: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)  # 2xx answers per operation
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)


def fuzz_config(token: str, logout_token: str, rid: int, cook: int) -> schemathesis.Config:
    """Every operation as the owner, in the demo restaurant."""
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "headers": {"Authorization": f"Bearer {token}"},
        "continue-on-failure": True,
        "parameters": {"path.rid": rid},
        "generation": {"max-examples": EXAMPLES, "mode": "all", "deterministic": True,
                       "database": "none"},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True},
                   "fuzzing": {"enabled": True}, "stateful": {"enabled": True, "max-steps": 20}},
        "operations": [
            # Signing out ends the session it is sent with: give it one of its own.
            {"include-operation-id": "logout", "headers": {"Authorization": f"Bearer {logout_token}"}},
            # Staff changes go to the kitchen member: the owner keeps its role throughout.
            {"include-path-regex": r"/staff/\{user_id\}$", "parameters": {"path.user_id": cook}},
        ],
    })


async def demo_rows(client, rid: int, owner: dict[str, str]) -> dict[str, int]:
    """Real rows of the demo restaurant for each path id, made through the API."""
    base = f"/api/v1/restaurants/{rid}"

    async def made(path: str, body: dict[str, Any]) -> Any:
        response = await client.post(base + path, headers=owner, json=body)
        assert response.status in (200, 201), (path, await response.text())
        return await response.json()
    tables = (await (await client.get(base + "/tables", headers=owner)).json())["items"]
    menu = await (await client.get(base + "/menu", headers=owner)).json()
    burger = next(i for c in menu["categories"] for i in c["items"] if i["name"] == "Burger")
    restaurant = (await (await client.get(base, headers=owner)).json())["restaurant"]
    zone = ZoneInfo(restaurant["timezone"])
    start = datetime.now(zone).replace(hour=19, minute=0, second=0, microsecond=0) + timedelta(days=3)
    booking = await made("/reservations", {"name": "Fuzz", "size": 2, "starts_at": start.isoformat()})
    party = await made("/waitlist", {"name": "Fuzz", "size": 2})
    order = await made("/orders", {"table_id": tables[0]["id"], "items": [
        {"menu_item_id": burger["id"], "qty": 1}, {"menu_item_id": burger["id"], "qty": 2}]})
    tickets = (await (await client.get(base + "/kitchen/tickets", headers=owner)).json())["items"]
    hook = await made("/webhooks", {"url": "https://hooks.example.com/fuzz", "events": ["*"]})
    device = await made("/devices", {"name": "Fuzz", "kind": "screen", "role": "kitchen"})
    key = await made("/api-keys", {"name": "Fuzz", "scopes": ["read"]})
    deliveries: list[dict] = []
    for _ in range(100):  # the webhook's first deliveries are queued within a poll
        deliveries = (await (await client.get(
            base + f"/webhooks/{hook['webhook']['id']}/deliveries", headers=owner)).json())["items"]
        if deliveries:
            break
        await asyncio.sleep(0.1)
    return {"table_id": tables[1]["id"], "party_id": party["id"], "reservation_id": booking["id"],
            "order_id": order["id"], "item_id": order["items"][0]["id"],
            "menu_item_id": burger["id"], "ticket_id": tickets[0]["id"],
            "webhook_id": hook["webhook"]["id"], "delivery_id": deliveries[0]["id"],
            "device_id": device["device"]["id"], "key_id": key["api_key"]["id"]}


def real_ids_sometimes(schema: Any, rows: dict[str, int]) -> None:
    """A schema hook: each generated set of path ids, or the same with real rows' ids."""
    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        path = context.operation.path
        real = {name: rows["menu_item_id"] if name == "item_id" and "/menu/" in path else rows[name]
                for name in path_parameters or () if name in rows}
        return st.sampled_from([path_parameters, {**path_parameters, **real}]) if real \
            else st.just(path_parameters)


def collect(stream: events.EventStream) -> Findings:
    """Run the engine to the end (in a thread: the server answers on the test's loop)."""
    found = Findings()
    for event in stream:
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            found.operations.add(recorder.label)
            found.examples += len(recorder.cases)
            for case_id, node in recorder.cases.items():
                response = recorder.find_response(case_id=case_id)
                if response is not None:
                    found.statuses[response.status_code] += 1
                    if response.status_code < 300:
                        found.answered[node.value.operation.label] += 1
            for checks in recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        found.failures.append(f"{recorder.label} [{check.name}] {failure.title}: "
                                              f"{failure.message}\n  {check.failure_info.code_sample}")
        elif isinstance(event, events.PhaseStarted) and event.payload is not None:
            found.phases.append(f"{event.phase.name.value}: {event.payload}")
        elif isinstance(event, events.PhaseFinished):
            found.phases.append(f"{event.phase.name.value} {event.status.value}"
                                f" {event.phase.skip_reason or ''}".rstrip())
        elif isinstance(event, events.NonFatalError):
            found.errors.append(f"{event.label}: {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            found.errors.append(f"fatal: {event.exception!r}")
    return found


@pytest.fixture
async def fuzzed(make_client, config):
    """The server with request limits out of the way: the fuzzer is one caller sending thousands."""
    return await make_client(msgspec.structs.replace(
        config, rate_limit_session=UNLIMITED, rate_limit_address=UNLIMITED,
        rate_limit_api_key=UNLIMITED, rate_limit_device=UNLIMITED,
        login_failure_limit=UNLIMITED, login_address_limit=UNLIMITED,
        login_failures_before_delay=1_000_000, webhook_poll_seconds=0.1))


async def test_generated_requests_get_no_5xx_and_answers_match_the_document(fuzzed, db, rid):
    owner = (await login(fuzzed, "owner@demo.test"))["token"]
    other = (await login(fuzzed, "host@demo.test"))["token"]
    fuzzed.session.cookie_jar.clear()
    cook = await db.fetchval("SELECT id FROM users WHERE email = 'kitchen@demo.test'")
    rows = await demo_rows(fuzzed, rid, bearer(owner))
    url = str(fuzzed.make_url("/api/v1/openapi.json"))
    schema = await asyncio.to_thread(schemathesis.openapi.from_url, url,
                                     config=fuzz_config(owner, other, rid, cook))
    real_ids_sometimes(schema, rows)
    found = await asyncio.to_thread(collect, from_schema(schema).execute())
    print(f"\n{len(found.operations)} operations, {found.examples} requests, "
          f"statuses {dict(sorted(found.statuses.items()))}")
    print("phases:", "; ".join(found.phases))
    print("never answered 2xx:", sorted(found.operations - set(found.answered) - {"Stateful tests"}))
    assert not found.errors, "\n".join(found.errors)
    assert not found.failures, "\n\n".join(found.failures)
    assert len(found.operations - {"Stateful tests"}) == len(schema)  # every operation
    # The owner token held to the end: most answers were real ones, not sign-in refusals.
    assert found.statuses[401] < found.examples // 10
