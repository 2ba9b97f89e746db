"""Reservations and the open slots of a day."""
from __future__ import annotations

from datetime import date, datetime

from aiohttp import web

from server.auth import FRONT_OF_HOUSE, HOSTS, requires
from server.cache import AVAILABILITY, min_seq
from server.http import (
    decode,
    encode,
    expected_version,
    json_response,
    page_limit,
    page_response,
    path_id,
    query_choice,
    query_date,
    query_int,
    written,
)
from server.keys import CACHE, POOL, PRINCIPAL, READS, RESTAURANT_ID
from server.openapi import PAGING, Page, Query, documented
from store import pacing, reservations
from store.pages import Key, decode_cursor
from store.waitlist import SeatIn

routes = web.RouteTableDef()
BASE = "/api/v1/restaurants/{rid}"
STATUSES = ("booked", "confirmed", "seated", "completed", "cancelled", "no_show")


@routes.get(BASE + "/reservations")
@requires(FRONT_OF_HOUSE, scope="read")
@documented(returns=Page[reservations.Reservation],
            query=PAGING + (Query("date", date, description="the restaurant's local day"),
                            Query("status", reservations.ReservationStatus)))
async def list_reservations(request: web.Request) -> web.Response:
    cursor = request.query.get("cursor")
    page, seq = await reservations.list_reservations(
        request.app[POOL], request[RESTAURANT_ID], page_limit(request),
        decode_cursor(cursor, tuple[datetime, Key]) if cursor else None,
        query_date(request, "date"), query_choice(request, "status", STATUSES))
    return page_response(page, seq)


@routes.post(BASE + "/reservations")
@requires(HOSTS, scope="write")
@documented(body=reservations.ReservationIn, returns=reservations.Reservation, status=201)
async def create_reservation(request: web.Request) -> web.Response:
    body = await decode(request, reservations.ReservationIn)
    made = await reservations.create(request.app[POOL], request[RESTAURANT_ID], body,
                                     request[PRINCIPAL])
    return written(*made, 201)


@routes.get(BASE + "/reservations/{reservation_id}")
@requires(FRONT_OF_HOUSE, scope="read")
@documented(returns=reservations.Reservation)
async def get_reservation(request: web.Request) -> web.Response:
    return json_response(await reservations.get(request.app[POOL], request[RESTAURANT_ID],
                                                path_id(request, "reservation_id")))


@routes.patch(BASE + "/reservations/{reservation_id}")
@requires(HOSTS, scope="write")
@documented(body=reservations.ReservationPatch, returns=reservations.Reservation)
async def patch_reservation(request: web.Request) -> web.Response:
    body = await decode(request, reservations.ReservationPatch)
    changed = await reservations.patch(request.app[POOL], request[RESTAURANT_ID],
                                       path_id(request, "reservation_id"), body,
                                       expected_version(request), request[PRINCIPAL])
    return written(*changed)


@routes.post(BASE + "/reservations/{reservation_id}/status")
@requires(HOSTS, scope="write")
@documented(body=reservations.ReservationStatusIn, returns=reservations.Reservation)
async def set_reservation_status(request: web.Request) -> web.Response:
    body = await decode(request, reservations.ReservationStatusIn)
    return written(*await reservations.move(request.app[POOL], request[RESTAURANT_ID],
                                            path_id(request, "reservation_id"), body.status,
                                            expected_version(request)))


@routes.post(BASE + "/reservations/{reservation_id}/seat")
@requires(HOSTS, scope="write")
@documented(body=SeatIn, returns=reservations.Reservation, body_required=False)
async def seat_reservation(request: web.Request) -> web.Response:
    body = await decode(request, SeatIn) if request.body_exists else SeatIn()
    return written(*await reservations.seat(request.app[POOL], request[RESTAURANT_ID],
                                            path_id(request, "reservation_id"), body.table_id,
                                            expected_version(request)))


@routes.get(BASE + "/availability")
@requires(FRONT_OF_HOUSE, scope="read")
@documented(returns=reservations.Availability,
            query=(Query("date", date, required=True), Query("size", int, required=True)))
async def availability(request: web.Request) -> web.Response:
    day = query_date(request, "date", required=True)
    size = query_int(request, "size", low=1, high=100, required=True)
    rid, cache = request[RESTAURANT_ID], request.app[CACHE]
    # At least as new as the last change the cache knows of, or the answer could not be kept.
    least = max(min_seq(request), cache.last_change(rid, AVAILABILITY))
    # Tickets turn late with the clock, not with an event: the kitchen's state is read each
    # time (one count) and is part of the cache key.
    kitchen = await pacing.kitchen_state(request.app[POOL], rid)

    async def compute() -> tuple[bytes, int]:
        slots, seq = await request.app[READS].run(
            lambda pool: reservations.availability(pool, rid, day, size, kitchen), least)
        return encode(slots), seq
    key = f"{day}:{size}:{int(kitchen.behind)}:{kitchen.late_tickets}"
    return await cache.answer(request, rid, AVAILABILITY, key, compute)
