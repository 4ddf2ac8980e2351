"""The OpenAPI document covers every registered /api/v1 route, and the docs page is self-contained."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from cti_server.api.openapi import operation_of, route_templates
from cti_server.api.validation import SchemaError, check

Client = TestClient[Any, Any]
MY_AREAS = ("screenpop", "contacts", "accounts", "cases", "call-logs", "imports", "webhooks")


async def test_every_registered_api_route_is_in_the_document(
    api_client: Client, api_app: web.Application
) -> None:
    document = await (await api_client.get("/api/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    missing = []
    for method, template, _handler in route_templates(api_app):
        path = re.sub(r"\{([^}:]+)(:[^}]*)?\}", r"{\1}", template)
        if method.lower() not in document["paths"].get(path, {}):
            missing.append(f"{method} {path}")
    assert not missing, missing
    v1 = [t for _m, t, _h in route_templates(api_app) if t.startswith("/api/v1/")]
    assert len(v1) > 30


async def test_integrator_routes_carry_schemas_and_roles(
    api_client: Client, api_app: web.Application
) -> None:
    document = await (await api_client.get("/api/openapi.json")).json()
    for method, template, handler in route_templates(api_app):
        if not any(template.startswith(f"/api/v1/{area}") for area in MY_AREAS):
            continue
        assert operation_of(handler) is not None, f"{method} {template} has no @documented"
        operation = document["paths"][template][method.lower()]
        assert operation["security"], f"{method} {template} is public"
        assert "Roles:" in operation["description"]
        if method in ("POST", "PATCH") and not template.endswith(("/ping", "/rotate-secret")):
            assert "requestBody" in operation, f"{method} {template} has no request schema"
    screenpop = document["paths"]["/api/v1/screenpop"]["get"]
    assert [p["name"] for p in screenpop["parameters"]][:1] == ["number"]
    assert screenpop["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["late"]


async def test_docs_page_is_self_contained(api_client: Client) -> None:
    resp = await api_client.get("/api/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert "/api/openapi.json" in page
    assert not re.search(r"""(src|href)=["']https?://""", page), "the docs page loads something from outside"
    assert "<script src" not in page


def test_validator_names_the_field() -> None:
    schema = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "format": "uri"},
            "phones": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"number": {"type": "string"}},
                    "required": ["number"],
                },
            },
        },
        "required": ["url"],
        "additionalProperties": False,
    }
    cases = [
        ({}, "url", "is required"),
        ({"url": "ftp://x"}, "url", "http"),
        ({"url": "https://x.org", "phones": [{"number": 5}]}, "phones[0].number", "must be a string"),
        ({"url": "https://x.org", "phones": [{}]}, "phones[0].number", "is required"),
        ({"url": "https://x.org", "colour": 1}, "colour", "unknown field"),
    ]
    for value, field, reason in cases:
        try:
            check(schema, value)
        except SchemaError as exc:
            assert (exc.field, reason in exc.reason) == (field, True), (value, exc)
        else:
            raise AssertionError(f"{value} passed")
