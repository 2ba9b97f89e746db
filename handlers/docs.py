"""The API's contract: OpenAPI 3.1 as JSON, and a readable reference page."""
from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from server.auth import public
from server.keys import OPENAPI

routes = web.RouteTableDef()


@routes.get("/api/v1/openapi.json")
@public
async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI].encoded, content_type="application/json")


def _type_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type_name(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(map(str, schema["enum"]))
    if schema.get("type") == "array":
        return f"list of {_type_name(schema.get('items', {}))}"
    return schema.get("format") or schema.get("type") or "any"


@routes.get("/api/v1/docs")
@public
@aiohttp_jinja2.template("api_reference.html")
async def api_reference(request: web.Request) -> dict[str, Any]:
    spec = request.app[OPENAPI].spec
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            groups.setdefault(op["tags"][0], []).append({"method": method.upper(), "path": path, **op})
    return {"spec": spec, "groups": sorted(groups.items()), "type_name": _type_name}
