"""The OpenAPI 3.1 document of the REST API, built from the live route table, and its docs page.

Handlers describe themselves with ``@documented(...)`` (summary, query parameters, request and response
JSON Schemas) right where they are defined; ``build_document(app)`` walks ``app.router`` so every
registered ``/api/`` route is in the document, described or not (an undescribed one is listed from its
docstring and ``@requires`` roles). The request schema is the same object ``read_body`` validates
against, so the document cannot drift from what the server accepts.

``GET /api/openapi.json`` serves the document; ``GET /api/docs`` is a self-contained page (no CDN)
that renders it. Both are public: they hold no data.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from cti_server.api.auth import required_roles
from cti_server.api.validation import Schema

OPENAPI_ATTR = "__cti_openapi__"
API_PREFIX = "/api/"
_PATH_PARAMETER = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")

_F = TypeVar("_F", bound=Callable[..., Any])

routes = web.RouteTableDef()


@dataclass(frozen=True)
class QueryParameter:
    """One query-string parameter of an operation (OpenAPI 3.1 section 4.8.12)."""

    name: str
    description: str
    schema: Schema = field(default_factory=lambda: {"type": "string"})
    required: bool = False

    def to_openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "query",
            "required": self.required,
            "description": self.description,
            "schema": dict(self.schema),
        }


@dataclass(frozen=True)
class Operation:
    """What the document says about one handler (OpenAPI 3.1 section 4.8.10 Operation Object)."""

    summary: str
    tags: tuple[str, ...] = ()
    query: tuple[QueryParameter, ...] = ()
    request: Schema | None = None
    request_media_types: tuple[str, ...] = ("application/json",)
    response: Schema | None = None
    status: int = 200
    errors: tuple[int, ...] = (400, 401, 403)


def documented(
    summary: str,
    *,
    tags: Sequence[str] = (),
    query: Sequence[QueryParameter] = (),
    request: Schema | None = None,
    request_media_types: Sequence[str] = ("application/json",),
    response: Schema | None = None,
    status: int = 200,
    errors: Sequence[int] = (400, 401, 403),
) -> Callable[[_F], _F]:
    """Attach an OpenAPI description to a handler (put it above ``@requires``)."""
    operation = Operation(
        summary=summary,
        tags=tuple(tags),
        query=tuple(query),
        request=request,
        request_media_types=tuple(request_media_types),
        response=response,
        status=status,
        errors=tuple(errors),
    )

    def attach(handler: _F) -> _F:
        setattr(handler, OPENAPI_ATTR, operation)
        return handler

    return attach


def operation_of(handler: object) -> Operation | None:
    """The ``@documented`` description of ``handler``, if any."""
    found = getattr(handler, OPENAPI_ATTR, None)
    return found if isinstance(found, Operation) else None


def route_templates(app: web.Application) -> list[tuple[str, str, Any]]:
    """(method, path template, handler) of every registered ``/api/`` route except HEAD."""
    found = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method in ("HEAD", "*"):
            continue
        info = resource.get_info()
        template = info.get("formatter") or info.get("path") or resource.canonical
        if template.startswith(API_PREFIX):
            found.append((route.method, template, route.handler))
    return found


_ERROR_SCHEMA: Schema = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
    "required": ["error"],
}
_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No content",
    400: "Bad request: the body or a parameter is wrong; `field` names it",
    401: "No credentials, or unknown ones",
    403: "The principal's role may not do this, or the record belongs to another call center",
    404: "No such record in the principal's call center",
    409: "Conflicts with an existing record",
    415: "Unsupported content type",
}


def _operation_object(method: str, template: str, handler: Any) -> dict[str, Any]:
    described = operation_of(handler)
    doc = inspect.getdoc(handler) or ""
    roles = required_roles(handler)
    path_parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAMETER.findall(template)
    ]
    summary = described.summary if described else (doc.splitlines()[0] if doc else f"{method} {template}")
    body: dict[str, Any] = {
        "operationId": f"{getattr(handler, '__module__', 'api').rsplit('.', 1)[-1]}.{handler.__name__}",
        "summary": summary,
        "description": doc + (f"\n\nRoles: {', '.join(sorted(roles))}." if roles else "\n\nPublic."),
        "tags": list(described.tags) if described and described.tags else [_tag_of(template)],
        "parameters": path_parameters + [q.to_openapi() for q in (described.query if described else ())],
        "security": [{"bearer": []}, {"session": []}] if roles else [],
    }
    status = described.status if described else 200
    success: dict[str, Any] = {"description": _STATUS_TEXT.get(status, "Success")}
    if described and described.response is not None:
        success["content"] = {"application/json": {"schema": dict(described.response)}}
    responses: dict[str, Any] = {str(status): success}
    for code in described.errors if described else ((401, 403) if roles else ()):
        responses[str(code)] = {
            "description": _STATUS_TEXT.get(code, "Error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    body["responses"] = responses
    if described and described.request is not None:
        body["requestBody"] = {
            "required": True,
            "content": {
                media: {"schema": dict(described.request)} for media in described.request_media_types
            },
        }
    return body


def _tag_of(template: str) -> str:
    parts = [p for p in template.split("/") if p and not p.startswith("{")]
    return parts[2] if len(parts) > 2 else parts[-1]


def build_document(app: web.Application, title: str = "cti-server REST API") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every ``/api/`` route registered on ``app``."""
    paths: dict[str, dict[str, Any]] = {}
    for method, template, handler in sorted(route_templates(app), key=lambda r: (r[1], r[0])):
        openapi_path = _PATH_PARAMETER.sub(lambda m: "{" + m.group(1) + "}", template)
        paths.setdefault(openapi_path, {})[method.lower()] = _operation_object(method, template, handler)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": "1",
            "description": "Integrators' and admin REST API of cti-server. Authenticate with "
            "`Authorization: Bearer <API key or session token>`; every record is scoped to the "
            "principal's call center.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR_SCHEMA},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "API key or session token"},
                "session": {"type": "apiKey", "in": "cookie", "name": "cti_session"},
            },
        },
    }


@routes.get("/api/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this server's REST API."""
    return web.json_response(build_document(request.app))


@routes.get("/api/docs")
async def docs_page(request: web.Request) -> web.Response:
    """A self-contained HTML page listing every operation of /api/openapi.json with its schemas."""
    return web.Response(text=DOCS_PAGE, content_type="text/html")


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cti-server REST API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:980px;padding:1rem 1.5rem;color:#1d232a}
h1{font-size:1.5rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
details{border:1px solid #e1e4e8;border-radius:6px;margin:.4rem 0;padding:.3rem .6rem}
summary{cursor:pointer} code,pre{font:13px ui-monospace,monospace}
pre{background:#f6f8fa;padding:.5rem;overflow:auto;border-radius:4px}
.m{display:inline-block;min-width:4.2rem;font-weight:600;text-transform:uppercase}
.get{color:#0a7} .post{color:#07c} .put,.patch{color:#b70} .delete{color:#c33}
#filter{width:100%;padding:.4rem;font-size:1rem;margin:.5rem 0}
</style></head><body>
<h1 id="title">cti-server REST API</h1>
<p id="intro"></p>
<p>The machine-readable document is at <a href="/api/openapi.json"><code>/api/openapi.json</code></a>.</p>
<input id="filter" placeholder="Filter by path, tag or summary">
<div id="ops">Loading&hellip;</div>
<script>
"use strict";
function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children || []) node.append(c);
  return node;
}
function block(title, value) {
  return el("div", {}, [el("strong", {}, [title]), el("pre", {}, [JSON.stringify(value, null, 2)])]);
}
function render(doc, filter) {
  const ops = document.getElementById("ops");
  ops.replaceChildren();
  const byTag = {};
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const text = (path + " " + (op.tags || []).join(" ") + " " + op.summary).toLowerCase();
      if (filter && !text.includes(filter)) continue;
      (byTag[(op.tags || ["other"])[0]] ||= []).push([path, method, op]);
    }
  }
  for (const tag of Object.keys(byTag).sort()) {
    ops.append(el("h2", {}, [tag]));
    for (const [path, method, op] of byTag[tag]) {
      const head = el("summary", {}, [el("span", {class: "m " + method}, [method]),
                                      el("code", {}, [path]), " \\u2014 " + op.summary]);
      const body = [el("p", {}, [op.description || ""])];
      if (op.parameters && op.parameters.length) body.push(block("Parameters", op.parameters));
      if (op.requestBody) body.push(block("Request body", op.requestBody.content));
      body.push(block("Responses", op.responses));
      ops.append(el("details", {}, [head, ...body]));
    }
  }
  if (!ops.children.length) ops.append("No operation matches.");
}
fetch("/api/openapi.json").then(r => r.json()).then(doc => {
  document.getElementById("title").textContent = doc.info.title;
  document.getElementById("intro").textContent = doc.info.description;
  const filter = document.getElementById("filter");
  filter.addEventListener("input", () => render(doc, filter.value.trim().toLowerCase()));
  render(doc, "");
}).catch(err => { document.getElementById("ops").textContent = "Could not load the document: " + err; });
</script></body></html>
"""
