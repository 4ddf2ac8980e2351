"""Request bodies checked against JSON Schema (draft 2020-12 subset), with a 400 naming the field.

The schemas live beside the handlers and also go into the OpenAPI document (cti_server/api/openapi.py),
so what the document promises is what the server checks. The subset: ``type`` (one or a list),
``properties``, ``required``, ``additionalProperties: false``, ``enum``, ``minLength``/``maxLength``,
``minimum``/``maximum``, ``items``, ``maxItems``, ``format: email|uri``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from cti_server.api.errors import api_error

Schema = Mapping[str, Any]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


class SchemaError(ValueError):
    """``value`` does not satisfy the schema; ``field`` is its dotted path (``phones[0].number``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _is(value: Any, type_name: str) -> bool:
    if isinstance(value, bool) and type_name in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[type_name])


def check(schema: Schema, value: Any, where: str = "body") -> None:
    """Raise SchemaError at the first part of ``value`` that ``schema`` refuses."""
    wanted = schema.get("type")
    if wanted is not None:
        names = [wanted] if isinstance(wanted, str) else list(wanted)
        if not any(_is(value, name) for name in names):
            raise SchemaError(where, f"must be {' or '.join(_article(n) for n in names)}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(where, f"must be one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, str):
        _check_string(schema, value, where)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise SchemaError(where, f"must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise SchemaError(where, f"must be <= {schema['maximum']}")
    elif isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise SchemaError(where, f"must have at most {schema['maxItems']} items")
        if "items" in schema:
            for index, item in enumerate(value):
                check(schema["items"], item, f"{where}[{index}]")
    elif isinstance(value, dict):
        _check_object(schema, value, where)


def _check_string(schema: Schema, value: str, where: str) -> None:
    if len(value) < schema.get("minLength", 0):
        raise SchemaError(where, "must not be empty" if schema["minLength"] == 1 else "is too short")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise SchemaError(where, f"must be at most {schema['maxLength']} characters")
    kind = schema.get("format")
    if kind == "email" and value and not _email(value):
        raise SchemaError(where, "must be an e-mail address")
    if kind == "uri" and not _http_uri(value):
        raise SchemaError(where, "must be an http:// or https:// URL")


def _check_object(schema: Schema, value: dict[str, Any], where: str) -> None:
    prefix = "" if where == "body" else f"{where}."
    properties: Mapping[str, Schema] = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in value:
            raise SchemaError(prefix + name, "is required")
    for name, item in value.items():
        if name in properties:
            check(properties[name], item, prefix + name)
        elif schema.get("additionalProperties") is False:
            raise SchemaError(prefix + name, "unknown field")
        elif isinstance(schema.get("additionalProperties"), Mapping):
            check(schema["additionalProperties"], item, prefix + name)


def _article(type_name: str) -> str:
    return {"object": "an object", "array": "a list", "integer": "an integer", "null": "null"}.get(
        type_name, f"a {type_name}"
    )


def _email(text: str) -> bool:
    local, at, domain = text.rpartition("@")
    return bool(at and local and "." in domain and " " not in text)


def _http_uri(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


async def read_body(request: web.Request, schema: Schema) -> dict[str, Any]:
    """The JSON object body checked against ``schema``; 400 ``{"error", "field"}`` when it is not."""
    try:
        data = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise api_error(400, "request body is not valid JSON", field="body") from None
    try:
        check(schema, data)
    except SchemaError as exc:
        raise api_error(400, exc.reason, field=exc.field) from None
    if not isinstance(data, dict):
        raise api_error(400, "must be an object", field="body")
    return data
