"""Webhook subscriptions REST API: integrators register endpoints, see deliveries and every attempt.

The signing secret is shown when a subscription is created (or its secret rotated) and never again;
receivers verify ``X-CTI-Signature`` as documented in cti_server/webhooks/signing.py.
``setup(app)`` also puts the app's ``WebhookDispatcher`` under ``WEBHOOKS_KEY``; the server starts it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from cti_server.api.auth import db_session, principal_of, requires
from cti_server.api.crm_scope import (
    CALL_CENTER_PARAMETER,
    MANAGER_ROLES,
    PAGE_PARAMETERS,
    fetch_page,
    get_scoped,
    iso,
    page,
    target_call_center,
)
from cti_server.api.errors import api_error
from cti_server.api.keys import BUS_KEY, CONFIG_KEY, STORE_KEY
from cti_server.api.openapi import QueryParameter, documented
from cti_server.api.validation import Schema, read_body
from cti_server.store.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from cti_server.webhooks.delivery import WEBHOOK_TOPICS, WebhookDispatcher, topic_allowed
from cti_server.webhooks.signing import new_secret

routes = web.RouteTableDef()
WEBHOOKS_KEY = web.AppKey("webhooks", WebhookDispatcher)
TAG = ("webhooks",)

_EVENTS: Schema = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": 120},
    "maxItems": 50,
    "description": f"topic globs, e.g. {', '.join(WEBHOOK_TOPICS)} or call.ended",
}
_FIELDS: dict[str, Schema] = {
    "url": {"type": "string", "format": "uri", "maxLength": 2000},
    "events": _EVENTS,
    "description": {"type": "string", "maxLength": 200},
    "active": {"type": "boolean"},
}
SUBSCRIPTION_CREATE: Schema = {
    "type": "object",
    "properties": {
        **_FIELDS,
        "secret": {"type": "string", "minLength": 16, "maxLength": 128, "description": "default: generated"},
        "call_center_id": {"type": "string"},
    },
    "required": ["url", "events"],
    "additionalProperties": False,
}
SUBSCRIPTION_UPDATE: Schema = {"type": "object", "properties": _FIELDS, "additionalProperties": False}
SUBSCRIPTION: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "call_center_id": {"type": "string"},
        **_FIELDS,
        "secret": {"type": "string", "description": "only in the answer to create and rotate-secret"},
        "created_at": {"type": "string", "format": "date-time"},
        "created_by": {"type": "string"},
    },
}
SUBSCRIPTION_LIST: Schema = {
    "type": "object",
    "properties": {"webhooks": {"type": "array", "items": SUBSCRIPTION}},
}
ATTEMPT: Schema = {
    "type": "object",
    "properties": {
        "number": {"type": "integer"},
        "attempted_at": {"type": "string", "format": "date-time"},
        "response_status": {"type": ["integer", "null"]},
        "response_body": {"type": "string"},
        "error": {"type": "string"},
        "duration_ms": {"type": "number"},
    },
}
DELIVERY: Schema = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "event_id": {"type": "string"},
        "topic": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "delivered", "failed"]},
        "attempts": {"type": "integer"},
        "response_status": {"type": ["integer", "null"]},
        "last_error": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "next_attempt_at": {"type": ["string", "null"], "format": "date-time"},
        "delivered_at": {"type": ["string", "null"], "format": "date-time"},
        "payload": {"type": "object"},
        "attempt_log": {"type": "array", "items": ATTEMPT},
    },
}
DELIVERY_LIST: Schema = {
    "type": "object",
    "properties": {"deliveries": {"type": "array", "items": DELIVERY}, "total": {"type": "integer"}},
}


def subscription_json(subscription: WebhookSubscription, with_secret: bool = False) -> dict[str, Any]:
    """JSON of a subscription; the secret only when just created or rotated."""
    body = {
        "id": subscription.id,
        "call_center_id": subscription.call_center_id,
        "url": subscription.url,
        "events": list(subscription.events),
        "description": subscription.description,
        "active": subscription.active,
        "created_at": iso(subscription.created_at),
        "created_by": subscription.created_by,
    }
    if with_secret:
        body["secret"] = subscription.secret
    return body


def delivery_json(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> dict[str, Any]:
    """JSON of a delivery with its attempts."""
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "topic": delivery.topic,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "response_status": delivery.response_status,
        "last_error": delivery.last_error,
        "created_at": iso(delivery.created_at),
        "next_attempt_at": iso(delivery.next_attempt_at),
        "delivered_at": iso(delivery.delivered_at),
        "payload": delivery.payload,
        "attempt_log": [
            {
                "number": a.number,
                "attempted_at": iso(a.attempted_at),
                "response_status": a.response_status,
                "response_body": a.response_body,
                "error": a.error,
                "duration_ms": a.duration_ms,
            }
            for a in attempts
        ],
    }


def _check_events(events: list[str] | None) -> None:
    if events is None:
        return
    if not events:
        raise api_error(400, "name at least one topic", field="events")
    for index, pattern in enumerate(events):
        if not topic_allowed(pattern):
            raise api_error(400, f"topics are {', '.join(WEBHOOK_TOPICS)}", field=f"events[{index}]")


@routes.get("/api/v1/webhooks")
@documented("List webhook subscriptions", tags=TAG, response=SUBSCRIPTION_LIST)
@requires(*MANAGER_ROLES)
async def list_webhooks(request: web.Request) -> web.Response:
    """Webhook subscriptions of the caller's call center (secrets not shown)."""
    async with db_session(request) as db:
        rows = (await db.scalars(select(WebhookSubscription).order_by(WebhookSubscription.created_at))).all()
    return web.json_response({"webhooks": [subscription_json(s) for s in rows]})


@routes.post("/api/v1/webhooks")
@documented(
    "Subscribe an endpoint to events",
    tags=TAG,
    query=(CALL_CENTER_PARAMETER,),
    request=SUBSCRIPTION_CREATE,
    response=SUBSCRIPTION,
    status=201,
    errors=(400, 401, 403, 404),
)
@requires(*MANAGER_ROLES)
async def create_webhook(request: web.Request) -> web.Response:
    """Subscribe ``url`` to ``events`` of the caller's call center; the answer shows the secret once."""
    body = await read_body(request, SUBSCRIPTION_CREATE)
    _check_events(body["events"])
    async with db_session(request) as db:
        center = await target_call_center(request, db, body)
        subscription = WebhookSubscription(
            call_center_id=center.id,
            url=body["url"],
            secret=body.get("secret") or new_secret(),
            events=body["events"],
            description=body.get("description", ""),
            active=body.get("active", True),
            created_by=principal_of(request).name,
        )
        db.add(subscription)
        await db.commit()
        request.app[WEBHOOKS_KEY].forget(center.id)
        return web.json_response(subscription_json(subscription, with_secret=True), status=201)


@routes.get("/api/v1/webhooks/{webhook_id}")
@documented("Get a webhook subscription", tags=TAG, response=SUBSCRIPTION, errors=(401, 403, 404))
@requires(*MANAGER_ROLES)
async def get_webhook(request: web.Request) -> web.Response:
    """One subscription of the caller's call center."""
    async with db_session(request) as db:
        found = await get_scoped(db, WebhookSubscription, request.match_info["webhook_id"], "webhook")
    return web.json_response(subscription_json(found))


@routes.patch("/api/v1/webhooks/{webhook_id}")
@documented(
    "Change a webhook subscription",
    tags=TAG,
    request=SUBSCRIPTION_UPDATE,
    response=SUBSCRIPTION,
    errors=(400, 401, 403, 404),
)
@requires(*MANAGER_ROLES)
async def update_webhook(request: web.Request) -> web.Response:
    """Change the URL, topics, description or active flag of a subscription."""
    body = await read_body(request, SUBSCRIPTION_UPDATE)
    _check_events(body.get("events"))
    async with db_session(request) as db:
        found = await get_scoped(db, WebhookSubscription, request.match_info["webhook_id"], "webhook")
        for name, value in body.items():
            setattr(found, name, value)
        await db.commit()
        request.app[WEBHOOKS_KEY].forget(found.call_center_id)
        return web.json_response(subscription_json(found))


@routes.post("/api/v1/webhooks/{webhook_id}/rotate-secret")
@documented("Replace the signing secret", tags=TAG, response=SUBSCRIPTION, errors=(401, 403, 404))
@requires(*MANAGER_ROLES)
async def rotate_secret(request: web.Request) -> web.Response:
    """A new signing secret, shown once in the answer; deliveries are signed with it from now on."""
    async with db_session(request) as db:
        found = await get_scoped(db, WebhookSubscription, request.match_info["webhook_id"], "webhook")
        found.secret = new_secret()
        await db.commit()
        return web.json_response(subscription_json(found, with_secret=True))


@routes.post("/api/v1/webhooks/{webhook_id}/ping")
@documented("Send a webhook.ping delivery to the endpoint", tags=TAG, status=202, errors=(401, 403, 404))
@requires(*MANAGER_ROLES)
async def ping_webhook(request: web.Request) -> web.Response:
    """Queue a signed ``webhook.ping`` to the subscription's URL; watch it in the deliveries list."""
    async with db_session(request) as db:
        found = await get_scoped(db, WebhookSubscription, request.match_info["webhook_id"], "webhook")
    delivery_id = await request.app[WEBHOOKS_KEY].enqueue_ping(found)
    return web.json_response({"delivery_id": delivery_id}, status=202)


@routes.delete("/api/v1/webhooks/{webhook_id}")
@documented("Delete a webhook subscription", tags=TAG, status=204, errors=(401, 403, 404))
@requires(*MANAGER_ROLES)
async def delete_webhook(request: web.Request) -> web.Response:
    """Delete a subscription and its delivery history."""
    async with db_session(request) as db:
        found = await get_scoped(db, WebhookSubscription, request.match_info["webhook_id"], "webhook")
        call_center_id = found.call_center_id
        await db.delete(found)
        await db.commit()
    request.app[WEBHOOKS_KEY].forget(call_center_id)
    return web.Response(status=204)


@routes.get("/api/v1/webhooks/{webhook_id}/deliveries")
@documented(
    "Deliveries of a subscription with every attempt",
    tags=TAG,
    query=(
        QueryParameter(
            "status",
            "only deliveries in this state",
            {"type": "string", "enum": ["pending", "delivered", "failed"]},
        ),
        *PAGE_PARAMETERS,
    ),
    response=DELIVERY_LIST,
    errors=(400, 401, 403, 404),
)
@requires(*MANAGER_ROLES)
async def list_deliveries(request: web.Request) -> web.Response:
    """Deliveries to one subscription, newest first, each with its attempts."""
    limit, offset = page(request)
    async with db_session(request) as db:
        found = await get_scoped(db, WebhookSubscription, request.match_info["webhook_id"], "webhook")
        query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == found.id)
        status = request.query.get("status")
        if status:
            if status not in ("pending", "delivered", "failed"):
                raise api_error(400, "must be pending, delivered or failed", field="status")
            query = query.where(WebhookDelivery.status == status)
        total, deliveries = await fetch_page(db, query, (WebhookDelivery.id.desc(),), limit, offset)
        attempts: dict[int, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
        if deliveries:
            rows = await db.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id.in_(list(attempts)))
                .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
            )
            for attempt in rows:
                attempts[attempt.delivery_id].append(attempt)
    return web.json_response(
        {"deliveries": [delivery_json(d, attempts[d.id]) for d in deliveries], "total": total}
    )


def setup(app: web.Application) -> None:
    """Register the routes and the app's dispatcher (started by the server's ScreenPopComponent)."""
    if WEBHOOKS_KEY not in app:
        app[WEBHOOKS_KEY] = WebhookDispatcher(
            app[STORE_KEY], app[BUS_KEY], app[CONFIG_KEY].screenpop.webhooks
        )
    app.add_routes(routes)
