"""The busy hour's service in one restaurant: who does what, and how fast.

Each restaurant's `Crew` is its devices: the servers' iPads (one open order per
table of their section: placed with 2-4 lines, some courses held and fired
later, lines added), a kitchen screen per station (every ticket fired there is
often started, then bumped after a cook time), the expo screen (when an order
is ready it serves what is ready and closes the order once all is out), the host
stand (parties join the waitlist, are seated, their tables turn back to free)
and the manager's dashboard. Think and work times are drawn from the ranges
below; nothing new starts after the deadline.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine
from typing import Any

import aiohttp
import msgspec

from bench.devices import (
    BASE,
    CONNECT_TIMEOUT_SECONDS,
    Device,
    DiningTable,
    Frame,
    Restaurant,
    Screen,
    Tally,
)

# Think and work times, seconds (low, high), drawn uniformly.
IPAD_THINK = (1.0, 3.0)
HOST_THINK = (0.5, 1.5)
MANAGER_POLL = (2.0, 4.0)
TO_START = (0.2, 1.0)  # a ticket on the screen until the cook starts it
COOK = (1.0, 4.0)
TO_PASS = (0.3, 1.0)  # an order ready until the expo runs it

ORDERS = BASE + "/orders"
ORDER = ORDERS + "/{order_id}"
TICKET = BASE + "/kitchen/tickets/{ticket_id}"
PARTY = BASE + "/waitlist/{party_id}"
NEXT_STATUS = {"seated": "ordering", "ordering": "waiting_food", "waiting_food": "eating",
               "eating": "paying", "paying": "dirty", "dirty": "free"}


class _TicketData(msgspec.Struct):
    ticket: dict[str, Any]


class _ClosedData(msgspec.Struct):
    order: dict[str, Any]


class _ReadyData(msgspec.Struct):
    order_id: int


class Crew:
    """A restaurant's devices in this process, and the tasks they spawn (cooking, running food)."""

    def __init__(self, http: aiohttp.ClientSession, tally: Tally, place: Restaurant,
                 rng: random.Random) -> None:
        self.http, self.tally, self.place, self.rng = http, tally, place, rng
        self.deadline = float("inf")
        self.chores: set[asyncio.Task[None]] = set()
        self.screens: list[Screen] = []
        share = [place.tables[i::len(place.ipads)] for i in range(len(place.ipads))]
        self.ipads = [Ipad(self, Device(http, tally, place, token), share[n], n)
                      for n, token in enumerate(place.ipads)]
        self.cooks = [Cook(self, Device(http, tally, place, token), station)
                      for station, token in place.kitchen.items()]
        self.expo = Expo(self, Device(http, tally, place, place.expo))
        self.host = HostStand(self, Device(http, tally, place, place.host))
        self.manager = Device(http, tally, place, place.manager)

    def serving(self) -> bool:
        """Before the deadline: new work may start."""
        return time.monotonic() < self.deadline

    async def pause(self, span: tuple[float, float]) -> bool:
        """Sleep a drawn while; False when the deadline comes first (nothing more to start)."""
        await asyncio.sleep(self.rng.uniform(*span))
        return self.serving()

    async def every(self, span: tuple[float, float]) -> AsyncIterator[None]:
        """Until the deadline, once per drawn while; the first comes anywhere up to the
        longest, so the devices do not all start in step."""
        if await self.pause((0.0, span[1])):
            yield
            while await self.pause(span):
                yield

    def chore(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a device's follow-up (cook a ticket, run food) unless service is over."""
        if not self.serving():
            work.close()
            return
        task = asyncio.ensure_future(work)
        self.chores.add(task)
        task.add_done_callback(self.chores.discard)

    async def connect(self) -> None:
        for ipad in self.ipads:
            self.screens.append(Screen(ipad.device, f"r{self.place.rid} ipad {ipad.number}",
                                       ["orders"], ipad.heard))
        for cook in self.cooks:
            self.screens.append(Screen(cook.device, f"r{self.place.rid} kitchen {cook.station}",
                                       [f"kitchen:{cook.station}"], cook.heard))
        self.screens.append(Screen(self.expo.device, f"r{self.place.rid} expo", ["orders"],
                                   self.expo.heard))
        self.screens.append(Screen(self.host.device, f"r{self.place.rid} host", ["floor"]))
        for screen in self.screens:
            await asyncio.wait_for(screen.open(), CONNECT_TIMEOUT_SECONDS)

    def listeners(self) -> list[Awaitable[None]]:
        return [screen.listen() for screen in self.screens]

    def actors(self) -> list[Awaitable[None]]:
        return [*(ipad.run() for ipad in self.ipads), self.host.run(), self.poll_dashboard()]

    async def poll_dashboard(self) -> None:
        async for _ in self.every(MANAGER_POLL):
            await self.manager.call("GET", BASE + "/dashboard")


class _Open(msgspec.Struct):
    """An order an iPad placed and has not seen closed."""
    id: int
    table_id: int
    held: bool  # some course waits to be fired
    fired: bool  # some course went to the kitchen (added lines of course 1 go at once)
    tickets: set[int]


class Ipad:
    """A server's iPad: one open order per table of its section, fired, added to, seen closed."""

    def __init__(self, crew: Crew, device: Device, tables: list[DiningTable], number: int) -> None:
        self.crew, self.device, self.tables, self.number = crew, device, tables, number
        self.rng = crew.rng
        self.orders: dict[int, _Open] = {}

    def heard(self, frame: Frame) -> None:
        if frame.name == "order.closed":
            self.orders.pop(msgspec.json.decode(frame.data, type=_ClosedData).order["id"], None)

    def _lines(self, count: int, course: int = 1) -> list[dict[str, Any]]:
        lines = []
        for item in self.rng.sample(self.crew.place.menu, count):
            line: dict[str, Any] = {"menu_item_id": item.id, "qty": self.rng.randint(1, 2),
                                    "course": course}
            if item.modifiers and self.rng.random() < 0.4:
                line["modifiers"] = [self.rng.choice(item.modifiers)]
            lines.append(line)
        return lines

    def _sent_to_kitchen(self, order: dict[str, Any], route: str, started: float,
                         known: set[int]) -> set[int]:
        """Stamp the tickets this request fired (the ones the order did not have before)."""
        tickets = {item["ticket_id"] for item in order["items"] if item["ticket_id"] is not None}
        for ticket_id in tickets - known:
            self.crew.tally.fired.setdefault(ticket_id, (route, started))
        return tickets

    async def run(self) -> None:
        async for _ in self.crew.every(IPAD_THINK):
            held = [o for o in self.orders.values() if o.held]
            fired = [o for o in self.orders.values() if o.fired]
            free = [t for t in self.tables if all(o.table_id != t.id for o in self.orders.values())]
            chance = self.rng.random()
            if held and (chance < 0.5 or not free):
                await self.fire(self.rng.choice(held))
            elif fired and chance < 0.65:
                await self.add_items(self.rng.choice(fired))
            elif free:
                await self.place_order(self.rng.choice(free))
            else:  # a full section: look at what is open
                await self.device.call("GET", ORDERS, query="?status=open&limit=20")

    async def place_order(self, table: DiningTable) -> None:
        """2-4 lines; most fire at once, some with a second course held, some held whole."""
        lines = self._lines(self.rng.randint(2, 4))
        style = self.rng.random()
        if 0.6 <= style < 0.85:
            lines[-1]["course"] = 2
        body = {"table_id": table.id, "guests": self.rng.randint(1, table.seats), "items": lines,
                "hold": style >= 0.85}
        started, status, order = await self.device.call("POST", ORDERS, body, keyed=True)
        if status != 201:
            return
        tickets = self._sent_to_kitchen(order, f"POST {ORDERS}", started, set())
        self.orders[order["id"]] = _Open(
            order["id"], table.id, held=any(i["status"] == "new" for i in order["items"]),
            fired=bool(tickets), tickets=tickets)

    async def fire(self, order: _Open) -> None:
        started, status, body = await self.device.call("POST", ORDER + "/fire", {}, keyed=True,
                                                       order_id=order.id)
        if status == 200:
            order.tickets = self._sent_to_kitchen(body, f"POST {ORDER}/fire", started,
                                                  order.tickets)
            order.held, order.fired = False, True
        elif status == 409:  # closed meanwhile, or nothing left to fire
            self.orders.pop(order.id, None)

    async def add_items(self, order: _Open) -> None:
        started, status, body = await self.device.call(
            "POST", ORDER + "/items", {"items": self._lines(self.rng.randint(1, 2))}, keyed=True,
            order_id=order.id)
        if status == 200:
            order.tickets = self._sent_to_kitchen(body, f"POST {ORDER}/items", started,
                                                  order.tickets)
        elif status == 409:  # the expo closed it meanwhile
            self.orders.pop(order.id, None)


class Cook:
    """A station's kitchen screen: every ticket fired there is started (often) and bumped."""

    def __init__(self, crew: Crew, device: Device, station: str) -> None:
        self.crew, self.device, self.station = crew, device, station

    def heard(self, frame: Frame) -> None:
        if frame.name != "ticket.fired":
            return
        ticket_id = msgspec.json.decode(frame.data, type=_TicketData).ticket["id"]
        self.crew.tally.arrived.setdefault(ticket_id, time.monotonic())
        self.crew.chore(self.cook(ticket_id))

    async def cook(self, ticket_id: int) -> None:
        if not await self.crew.pause(TO_START):
            return
        if self.crew.rng.random() < 0.5:
            await self.device.call("POST", TICKET + "/start", ticket_id=ticket_id)
        if await self.crew.pause(COOK):
            await self.device.call("POST", TICKET + "/bump", ticket_id=ticket_id)


class Expo:
    """The pass: when an order is ready, serve what is ready and close the order once all is out."""

    def __init__(self, crew: Crew, device: Device) -> None:
        self.crew, self.device = crew, device
        self.running: dict[int, asyncio.Lock] = {}  # one run per order at a time

    def heard(self, frame: Frame) -> None:
        if frame.name == "order.ready":
            order_id = msgspec.json.decode(frame.data, type=_ReadyData).order_id
            self.crew.chore(self.run_food(order_id))

    async def run_food(self, order_id: int) -> None:
        if not await self.crew.pause(TO_PASS):
            return
        async with self.running.setdefault(order_id, asyncio.Lock()):
            _, status, order = await self.device.call("GET", ORDER, order_id=order_id)
            if status != 200 or order["status"] != "open":
                return
            for item in order["items"]:
                if item["status"] == "ready" and self.crew.serving():
                    _, status, served = await self.device.call(
                        "POST", ORDER + "/items/{item_id}/serve", keyed=True, order_id=order_id,
                        item_id=item["id"])
                    if status == 200:
                        order = served
            if self.crew.serving() and all(i["status"] in ("served", "void") for i in order["items"]):
                # Paid as the check showed it: an iPad adding a line meanwhile makes this a 412.
                total = order["total_minor"]
                payment = {"method": "card", "amount_minor": total, "tip_minor": total // 5}
                await self.device.call("POST", ORDER + "/close", {"payment": payment},
                                       keyed=True, version=order["version"], order_id=order_id)


class HostStand:
    """The host: parties join the waitlist, are seated at the smallest free table that fits,
    and their tables step through the service back to free."""

    def __init__(self, crew: Crew, device: Device) -> None:
        self.crew, self.device, self.rng = crew, device, crew.rng
        self.status = {t.id: "free" for t in crew.place.tables}
        self.seats = {t.id: t.seats for t in crew.place.tables}
        self.waiting: list[tuple[int, int]] = []  # (party id, size), first come first
        self.joined = 0

    def _table_for(self, size: int) -> int | None:
        fitting = [t for t, s in self.status.items() if s == "free" and self.seats[t] >= size]
        return min(fitting, key=lambda t: (self.seats[t], t), default=None)

    async def run(self) -> None:
        async for _ in self.crew.every(HOST_THINK):
            busy = [t for t, s in self.status.items() if s != "free"]
            table = self._table_for(self.waiting[0][1]) if self.waiting else None
            chance = self.rng.random()
            if table is not None and chance < 0.5:
                await self.seat(table)
            elif len(self.waiting) < 4 and chance < 0.75:
                await self.join()
            elif busy:
                await self.turn(self.rng.choice(busy))
            else:
                await self.device.call("GET", BASE + "/waitlist/estimate", query="?size=2")

    async def join(self) -> None:
        self.joined += 1
        size = self.rng.randint(1, 6)
        _, status, party = await self.device.call(
            "POST", BASE + "/waitlist", {"name": f"Party {self.joined}", "size": size,
                                         "quoted_minutes": 15}, keyed=True)
        if status == 201:
            self.waiting.append((party["id"], size))

    async def seat(self, table: int) -> None:
        party_id, _ = self.waiting.pop(0)
        _, status, _ = await self.device.call("POST", PARTY + "/seat", {"table_id": table},
                                              keyed=True, party_id=party_id)
        if status == 200:
            self.status[table] = "seated"

    async def turn(self, table: int) -> None:
        step = NEXT_STATUS[self.status[table]]
        _, status, _ = await self.device.call("POST", BASE + "/tables/{table_id}/status",
                                              {"status": step}, keyed=True, table_id=table)
        if status == 200:
            self.status[table] = step
