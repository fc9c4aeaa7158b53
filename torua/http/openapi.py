"""``GET /openapi.json``: each service describes its own routes.

The document is built from the app's real URL map, so it cannot list a route
that does not exist or miss one that does; request bodies come from the same
pydantic models that validate them. What the URL map cannot know (raw-byte
bodies, the summary line) is passed in by the app factory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from quart import Quart, Response, jsonify

from torua.limits import MAX_KEY_BYTES

__all__ = ["Doc", "build_openapi", "install_openapi"]

_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}


@dataclass(frozen=True, slots=True)
class Doc:
    """What a route's URL rule does not say about it."""

    summary: str
    body: type[BaseModel] | None = None
    raw_body: bool = False  # application/octet-stream request body
    optional_body: bool = False  # the JSON body may be left out (its defaults apply)
    raw_response: bool = False  # application/octet-stream 200 response
    success: int = 200
    content_type: str | None = None  # a non-JSON success body (HTML, Prometheus text)


def _path_and_params(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params: list[dict[str, Any]] = []

    def convert(match: re.Match[str]) -> str:
        converter, name = match.group(1) or "string", match.group(2)
        schema: dict[str, Any]
        if converter == "int":
            schema = {"type": "integer", "minimum": 0}
        elif converter == "path":
            schema = {"type": "string", "minLength": 1, "maxLength": MAX_KEY_BYTES}
        else:
            schema = {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,64}$"}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _PARAM.sub(convert, rule), params


def build_openapi(
    app: Quart, title: str, version: str, docs: Mapping[tuple[str, str], Doc]
) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path, params = _path_and_params(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            doc = docs.get((method, rule.rule))
            if doc is None:
                continue  # undocumented helper routes (e.g. explicit 400s) stay out
            operation: dict[str, Any] = {
                "operationId": f"{method.lower()}_{rule.endpoint}",
                "summary": doc.summary,
                "parameters": params,
                "responses": {
                    str(doc.success): _success(doc),
                    "4XX": {
                        "description": "invalid request",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    },
                    "5XX": {
                        "description": "a node failed or no copy is available",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    },
                },
            }
            if doc.body is not None:
                name = doc.body.__name__
                schema = doc.body.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[name] = schema
                operation["requestBody"] = {
                    "required": not doc.optional_body,
                    "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}
                    },
                }
            elif doc.raw_body:
                operation["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                }
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",  # pydantic writes JSON Schema 2020-12, which 3.1 uses
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }


def _success(doc: Doc) -> dict[str, Any]:
    if doc.success == 204:
        return {"description": "done, no content"}
    if doc.content_type is not None:
        return {"description": "ok", "content": {doc.content_type: {"schema": {"type": "string"}}}}
    if doc.raw_response:
        return {
            "description": "the stored bytes",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    return {"description": "ok", "content": {"application/json": {"schema": {}}}}


def install_openapi(
    app: Quart, title: str, version: str, docs: Mapping[tuple[str, str], Doc]
) -> None:
    cache: dict[str, Any] = {}

    @app.get("/openapi.json")
    async def openapi() -> Response:
        if not cache:
            cache.update(build_openapi(app, title, version, docs))
        return jsonify(cache)
