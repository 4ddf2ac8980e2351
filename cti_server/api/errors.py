"""JSON error answers of the REST API: ``{"error": "...", "field": "..."}`` with the right status.

Handlers ``raise api_error(400, "must be a string", field="name")``; a client always learns which field
of its body was wrong instead of seeing a traceback or an HTML error page.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cti_server.store.engine import ScopeViolation
from cti_server.store.errors import Conflict, InvalidField, NotFound

_EXCEPTIONS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    413: web.HTTPRequestEntityTooLarge,
    415: web.HTTPUnsupportedMediaType,
    422: web.HTTPUnprocessableEntity,
    429: web.HTTPTooManyRequests,
    503: web.HTTPServiceUnavailable,
}


def api_error(status: int, error: str, field: str | None = None, **headers: str) -> web.HTTPException:
    """An aiohttp HTTP exception for ``status`` whose body is the JSON error (``field`` when known)."""
    body: dict[str, Any] = {"error": error}
    if field is not None:
        body["field"] = field
    cls = _EXCEPTIONS.get(status, web.HTTPBadRequest)
    return cls(text=json.dumps(body), content_type="application/json", headers=headers or None)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 naming ``body`` when it is not one."""
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise api_error(400, "request body is not valid JSON", field="body") from None
    if not isinstance(data, dict):
        raise api_error(400, "request body must be a JSON object", field="body")
    return data


def field_value(data: dict[str, Any], name: str, kind: type, *, required: bool = False,
                default: Any = None) -> Any:
    """``data[name]`` checked to be of ``kind`` (400 naming the field otherwise); ``default`` if absent."""
    if name not in data or data[name] is None:
        if required:
            raise api_error(400, "is required", field=name)
        return default
    value = data[name]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise api_error(400, f"must be {_KIND_NAMES.get(kind, kind.__name__)}", field=name)
    if kind is str and required and isinstance(value, str) and not value.strip():
        raise api_error(400, "must not be empty", field=name)
    return value


_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false", dict: "an object", list: "a list"}


@web.middleware
async def store_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer the store's expected errors as JSON: InvalidField 400, NotFound 404, Conflict 409,
    a write outside the caller's call center 403."""
    try:
        return await handler(request)
    except InvalidField as exc:
        raise api_error(400, exc.message, field=exc.field) from None
    except Conflict as exc:
        raise api_error(409, exc.message, field=exc.field) from None
    except NotFound as exc:
        raise api_error(404, str(exc)) from None
    except ScopeViolation:
        raise api_error(403, "that record belongs to another call center") from None
