"""OpenAPI 3.1 built from the routes and the msgspec Structs they decode and answer with.

Each handler says what it takes and gives with `@documented(...)`; the access
rule comes from `@requires`. The spec is the contract: tests validate real
responses against it, and a route missing from it fails them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
from aiohttp import web

from server.auth import Handler, access_of

T = TypeVar("T")
_ATTR = "__serveline_doc__"


class Page(msgspec.Struct, Generic[T]):
    """A keyset page: pass `next` back as `cursor` for the following page."""
    items: list[T]
    next: str | None


class ErrorDetail(msgspec.Struct):
    code: str
    message: str
    details: list[dict[str, Any]]


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


@dataclass(frozen=True)
class Query:
    name: str
    kind: Any = str
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class Doc:
    body: Any = None
    returns: Any = None
    status: int = 200
    query: tuple[Query, ...] = ()
    body_required: bool = True


def documented(*, body: Any = None, returns: Any = None, status: int = 200,
               query: tuple[Query, ...] = (), body_required: bool = True
               ) -> Callable[[Handler], Handler]:
    def mark(handler: Handler) -> Handler:
        setattr(handler, _ATTR, Doc(body=body, returns=returns, status=status, query=query,
                                    body_required=body_required))
        return handler
    return mark


def doc_of(handler: object) -> Doc | None:
    return getattr(handler, _ATTR, None)


PAGING = (Query("limit", int, description="page size, 1–200 (default 50)"),
          Query("cursor", str, description="the `next` of the previous page"))


def _path_params(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [{"name": name, "in": "path", "required": True,
             "schema": {"type": "integer", "minimum": 0}} for name in names]


def _operation(route: web.AbstractRoute, doc: Doc, schema_of: dict[Any, Any]) -> dict[str, Any]:
    handler = route.handler
    access = access_of(handler)
    summary = (handler.__doc__ or handler.__name__.replace("_", " ")).strip().splitlines()[0]
    path = route.resource.canonical if route.resource else ""
    operation: dict[str, Any] = {
        "operationId": handler.__name__,
        "summary": summary,
        "tags": [handler.__module__.rsplit(".", 1)[-1]],
        "parameters": _path_params(path) + [
            {"name": q.name, "in": "query", "required": q.required, "description": q.description,
             "schema": schema_of[q.kind]} for q in doc.query],
        "responses": {
            str(doc.status): ({"description": "switching protocols" if doc.status == 101
                               else "no content"} if doc.returns is None else
                              {"description": "success",
                               "content": {"application/json": {"schema": schema_of[doc.returns]}}}),
            "4XX": {"description": "the JSON error shape",
                    "content": {"application/json": {"schema": schema_of[ErrorBody]}}},
            "5XX": {"description": "the JSON error shape",
                    "content": {"application/json": {"schema": schema_of[ErrorBody]}}},
        },
    }
    if doc.body is not None:
        operation["requestBody"] = {"required": doc.body_required, "content": {
            "application/json": {"schema": schema_of[doc.body]}}}
    if access.public:
        operation["security"] = []
    else:
        operation["x-roles"] = sorted(access.roles)
        operation["x-api-key-scope"] = access.scope
    return operation


def build_spec(app: web.Application) -> dict[str, Any]:
    routes = [r for r in app.router.routes()
              if r.method != "HEAD" and r.resource is not None and doc_of(r.handler) is not None]
    kinds: list[Any] = [ErrorBody]
    for route in routes:
        doc = doc_of(route.handler)
        kinds += [k for k in (doc.body, doc.returns) if k is not None] + [q.kind for q in doc.query]
    unique = list(dict.fromkeys(kinds))
    schemas, components = msgspec.json.schema_components(
        unique, ref_template="#/components/schemas/{name}")
    schema_of = dict(zip(unique, schemas))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.resource.canonical, {})[route.method.lower()] = _operation(
            route, doc_of(route.handler), schema_of)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Serveline API", "version": "1",
                 "description": "The restaurant's live service: floor, waitlist, reservations, "
                                "menu, orders and kitchen tickets. See docs/api.md."},
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "staff session (sls_), device (sld_) or API key (slk_)"},
                "session": {"type": "apiKey", "in": "cookie", "name": "serveline_session"},
            },
        },
        "security": [{"bearer": []}, {"session": []}],
    }
